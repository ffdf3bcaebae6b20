"""Logging a training run and the registry gate, on a real SQLite MLflow store in the test's folder.

The store's tables are created once per session and the empty database copied for each test
(the ``store`` fixture of tests/models/conftest.py), so a test pays only for what it logs.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from features.catalogue import Catalogue
from models import evaluate, scoring, tracking
from models.evaluate import classification_metrics
from models.tracking import CHALLENGER, CHAMPION, TrainingRun, decide_alias
from models.train import EVALUATION_FILE, ChurnModel, fit_model, split_out_of_time
from pipelines.config import load_settings
from tests.models.conftest import ROOT, SPECS, WINDOWS, synthetic_features, with_tuning

NAME = "churn-test"


@pytest.fixture(scope="module")
def small(train_params):
    """A small synthetic table, a good model and a worse one (trained on shuffled labels)."""
    from features.catalogue import catalogue_to_json

    catalog = catalogue_to_json(SPECS, {})
    parts = split_out_of_time(synthetic_features(accounts=150, seed=3), WINDOWS)
    params = with_tuning(train_params, num_boost_round=60)
    good = fit_model(parts, catalog, params, WINDOWS)
    rng = np.random.default_rng(0)
    shuffled = {
        k: v.assign(label=rng.permutation(v["label"].to_numpy())) if k != "test" else v for k, v in parts.items()
    }
    worse = fit_model(shuffled, catalog, params, WINDOWS)
    return parts["test"], Catalogue.from_json(catalog), good, worse


def metrics_on(model: ChurnModel, test, catalogue) -> dict:
    y = test["label"].astype(int).to_numpy()
    return classification_metrics(y, model.predict_proba(test), evaluate.arr_values(test, catalogue))


def log(uri: str, model: ChurnModel, fingerprint: str, small, folder, name: str = NAME) -> dict:
    """What the train stage does after fitting: save the folder, then log the run."""
    test, catalogue, _, _ = small
    model.save(folder)
    evaluation = {"test": {"model": metrics_on(model, test, catalogue)}}
    (folder / EVALUATION_FILE).write_text(json.dumps(evaluation))
    run = TrainingRun(
        tracking_uri=uri,
        experiment="churn",
        registered_model=name,
        params={"train.seed": 42},
        tags={"catalog_hash": model.catalog_hash},
        model_fingerprint=fingerprint,
        test_window="2026-03-30..last",
    )
    return tracking.log_training_run(run, model, test, evaluation, folder, evaluate.arr_values(test, catalogue))


def versions(uri: str) -> dict[str, object]:
    client = tracking.connect(uri)
    found = client.search_model_versions(f"name='{NAME}'")
    return {str(v.version): client.get_model_version(NAME, v.version) for v in found}


def test_the_good_model_beats_the_worse_one_on_the_test_window(small):
    test, catalogue, good, worse = small
    assert metrics_on(good, test, catalogue)["roc_auc"] > metrics_on(worse, test, catalogue)["roc_auc"] + 0.1


def test_forced_rerun_of_the_same_model_registers_no_new_version(store, small, tmp_path):
    _, _, good, _ = small
    first = log(store, good, "fp-good", small, tmp_path / "model")
    assert (first["version"], first["alias"], first["reason"]) == ("1", CHAMPION, "no champion yet")
    second = log(store, good, "fp-good", small, tmp_path / "model")
    assert second == first
    assert list(versions(store)) == ["1"]
    client = tracking.connect(store)
    experiment = client.get_experiment_by_name("churn")
    assert len(client.search_runs([experiment.experiment_id])) == 1
    tags = versions(store)["1"].tags
    assert tags[tracking.MODEL_SHA_TAG] == "fp-good" and tags[tracking.GATE_TAG] == CHAMPION


def test_a_new_model_is_a_new_version_gated_against_the_champion_on_the_same_window(store, small, tmp_path):
    test, catalogue, good, worse = small
    good_metrics, worse_metrics = metrics_on(good, test, catalogue), metrics_on(worse, test, catalogue)
    first = log(store, good, "fp-good", small, tmp_path / "good")

    second = log(store, worse, "fp-worse", small, tmp_path / "worse")
    assert second["version"] == "2" and second["run_id"] != first["run_id"]
    assert second["alias"] == decide_alias(worse_metrics, good_metrics).alias == CHALLENGER
    client = tracking.connect(store)
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == "1"
    assert str(client.get_model_version_by_alias(NAME, CHALLENGER).version) == "2"
    run = client.get_run(second["run_id"])
    assert run.data.metrics["champion_roc_auc"] == pytest.approx(good_metrics["roc_auc"])
    assert run.data.tags["champion_version_before"] == "1" and run.data.tags["gate_decision"] == CHALLENGER
    tags = versions(store)["2"].tags
    assert float(tags["test_roc_auc"]) == pytest.approx(worse_metrics["roc_auc"], abs=1e-6)
    assert tags[tracking.GATE_TAG] == CHALLENGER and tags[tracking.GATE_REASON_TAG] == second["reason"]

    # the same files under another fingerprint: no worse than the champion, so the champion moves
    third = log(store, good, "fp-good-again", small, tmp_path / "again")
    assert (third["version"], third["alias"]) == ("3", CHAMPION)
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == "3"

    # forced reruns still return exactly what their first run returned, whichever version is champion now
    assert log(store, worse, "fp-worse", small, tmp_path / "worse") == second
    assert log(store, good, "fp-good", small, tmp_path / "good") == first
    assert sorted(versions(store), key=int) == ["1", "2", "3"]


def test_champion_is_scored_on_the_test_window_it_is_compared_on(store, small, tmp_path):
    test, catalogue, good, _ = small
    client = tracking.connect(store)
    assert tracking.score_champion_on_test(client, NAME, test, good.features, None) == (None, None)
    log(store, good, "fp-good", small, tmp_path / "good")

    part = test.iloc[::3]  # another window: the champion is scored again on it, not its logged figures
    metrics, version = tracking.score_champion_on_test(
        client, NAME, part, good.features, evaluate.arr_values(part, catalogue)
    )
    assert str(version) == "1" and metrics["rows"] == len(part)
    for key, value in metrics_on(good, part, catalogue).items():
        assert metrics[key] == pytest.approx(value), key

    # a champion with another feature list cannot score this window: its logged test figures are used
    metrics, version = tracking.score_champion_on_test(client, NAME, test, ["other_feature"], None)
    logged = metrics_on(good, test, catalogue)
    assert str(version) == "1" and set(metrics) == {"roc_auc", "brier"}
    assert metrics["roc_auc"] == pytest.approx(logged["roc_auc"], abs=1e-6)
    assert metrics["brier"] == pytest.approx(logged["brier"], abs=1e-6)


def test_registered_champion_scores_like_the_trained_model_and_is_labelled_by_version(store, small, tmp_path):
    test, _, good, _ = small
    run = log(store, good, "fp-good", small, tmp_path / "good")
    loaded, label = scoring.load_model(f"models:/{NAME}@{CHAMPION}", tmp_path / "unused", store)
    assert label == f"{NAME}/1"
    np.testing.assert_allclose(loaded.predict_proba(test), good.predict_proba(test), rtol=0, atol=1e-12)

    report = tmp_path / "metrics.json"
    report.write_text("{}")
    tracking.log_artifacts_to_run(run, [report])
    files = [f.path for f in tracking.connect(store).list_artifacts(run["run_id"], "evaluation")]
    assert "evaluation/metrics.json" in files and f"evaluation/{EVALUATION_FILE}" in files


def test_the_run_records_every_candidate_of_the_search(store, small, tmp_path):
    _, _, good, _ = small
    run = log(store, good, "fp-good", small, tmp_path / "good")
    client = tracking.connect(store)
    metrics = client.get_run(run["run_id"]).data.metrics
    tuning = good.metadata["tuning"]
    for candidate in tuning["candidates"]:
        name = candidate["name"]
        assert metrics[f"search.{name}.valid_roc_auc"] == pytest.approx(candidate["valid_roc_auc"])
        assert metrics[f"search.{name}.best_iteration"] == candidate["best_iteration"]
        assert metrics[f"search.{name}.fit_seconds"] >= 0
    local = client.download_artifacts(run["run_id"], tracking.SEARCH_FILE, str(tmp_path))
    table = json.loads(Path(local).read_text())
    assert table["chosen"] == tuning["chosen"] and table["candidates"] == tuning["candidates"]
    assert set(table["fit_seconds"]) == {c["name"] for c in tuning["candidates"]}


def test_two_data_sources_get_two_registered_names_and_two_champions(store, small, tmp_path):
    """The demo's models and another export's never compete for one champion, whichever is better."""
    demo = load_settings(ROOT / "params.yaml")
    assert demo.data.source == "auto" and demo.data.export_dir == demo.paths.demo_export
    data = demo.data.model_copy(update={"export_dir": Path("data/raw/Acme CRM_2026-11")})
    other = demo.model_copy(update={"data": data})
    names = {source: s.registered_names() for source, s in (("demo", demo), ("other", other))}
    assert names["demo"] == {"horizon": "churn-lgbm-demo", "renewal": "churn-renewal-demo"}
    assert names["other"] == {"horizon": "churn-lgbm-acme-crm-2026-11", "renewal": "churn-renewal-acme-crm-2026-11"}

    _, _, good, worse = small
    on_demo = log(store, good, "fp-good", small, tmp_path / "demo", names["demo"]["horizon"])
    # worse on the demo's test window, so under the demo's name it would only be a challenger
    on_other = log(store, worse, "fp-worse", small, tmp_path / "other", names["other"]["horizon"])
    assert (on_demo["version"], on_demo["alias"]) == ("1", CHAMPION)
    assert (on_other["version"], on_other["alias"], on_other["reason"]) == ("1", CHAMPION, "no champion yet")
    client = tracking.connect(store)
    for which, run in (("demo", on_demo), ("other", on_other)):
        champion = client.get_model_version_by_alias(names[which]["horizon"], CHAMPION)
        assert (str(champion.version), champion.run_id) == ("1", run["run_id"])
