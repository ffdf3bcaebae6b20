"""The search over LightGBM's settings (``train.tuning``): known answers on synthetic worlds, the
deterministic sample of large train windows, what the model's metadata records, strict params."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from features.catalogue import catalogue_hash, catalogue_to_json
from models.params import REFIT
from models.tracking import search_metrics
from models.train import best_candidate, fit_model, min_data_in_leaf, search_sample, split_out_of_time, train_model
from pipelines.config import ConfigError, load_settings
from tests.models.conftest import ROOT, SPECS, WINDOWS, with_tuning

CATALOG = catalogue_to_json(SPECS, {})


def world(logit_of, accounts: int, seed: int) -> pd.DataFrame:
    """Weekly snapshots as in ``synthetic_features``, labelled from ``logit_of(frame)`` instead of its fixed logit."""
    rng = np.random.default_rng(seed)
    snaps = pd.date_range("2024-10-07", "2026-07-20", freq="7D")
    n = accounts * len(snaps)
    frame = pd.DataFrame(
        {
            "account_id": pd.array(np.repeat([f"A{i:04d}" for i in range(accounts)], len(snaps)), dtype="string"),
            "snapshot_date": np.tile(snaps, accounts),
            "churn_date": pd.NaT,
            "reply_latency_median_hours_90d": rng.gamma(2.0, 12.0, n),
            "qbr_since_last_days": rng.uniform(0, 200, n),
            "usage_trend_ratio_30d": rng.normal(1.0, 0.25, n),
            "tenure_first_year_flag": (rng.random(n) < 0.2).astype(float),
            "renewal_days_to_next_days": rng.uniform(0, 365, n),
            "arr_current_currency": rng.lognormal(10, 1, n),
            "segment": pd.Categorical(rng.choice(["SMB", "Mid-Market", "Enterprise"], n)),
        }
    )
    logit = logit_of(frame).to_numpy(dtype=float)
    frame["label"] = pd.array((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int), dtype="Int8")
    frame.loc[frame["snapshot_date"] > "2026-07-01", "label"] = pd.NA
    return frame


def weak_additive(f: pd.DataFrame) -> pd.Series:
    """A weak signal, a sum of one smooth term per feature: no interaction for deeper trees to find."""

    def z(column: str) -> pd.Series:
        return (f[column] - f[column].mean()) / f[column].std()

    return (
        -3.0
        + 0.35 * z("reply_latency_median_hours_90d")
        + 0.35 * z("qbr_since_last_days")
        - 0.35 * z("usage_trend_ratio_30d")
    )


def interactions(f: pd.DataFrame) -> pd.Series:
    """Risk only where several signals are bad at once: a three-way and a two-way AND, which stumps cannot express."""
    latency, qbr = f["reply_latency_median_hours_90d"], f["qbr_since_last_days"]
    trend, renewal = f["usage_trend_ratio_30d"], f["renewal_days_to_next_days"]
    return -4.5 + 4.0 * ((latency > 30) & (qbr > 100) & (trend < 1.0)) + 3.0 * ((renewal < 120) & (latency > 24))


def aucs(model) -> dict[str, float]:
    return {c["name"]: c["valid_roc_auc"] for c in model.metadata["tuning"]["candidates"]}


# ---------------------------------------------------------------- the choice, where the answer is known


@pytest.mark.parametrize("seed", [0, 1])
def test_a_small_book_with_a_weak_additive_signal_gets_the_regularised_additive_candidate(train_params, seed):
    """100 accounts, ~200 churning snapshots to learn from: deeper trees only fit noise, stumps win on validation."""
    additive = train_params.tuning.candidates[0]
    assert additive.num_leaves == 2  # params.yaml lists the stumps first
    model = fit_model(split_out_of_time(world(weak_additive, 100, seed), WINDOWS), CATALOG, train_params, WINDOWS)
    assert model.metadata["tuning"]["chosen"] == additive.name
    assert model.metadata["lightgbm_params"]["num_leaves"] == 2
    trees = model.booster.dump_model()["tree_info"]
    assert all(tree["num_leaves"] <= 2 for tree in trees)  # one split per tree: an additive model
    assert aucs(model)[additive.name] == max(aucs(model).values())


def test_an_interaction_heavy_signal_gets_a_richer_candidate(train_params):
    model = fit_model(split_out_of_time(world(interactions, 400, 1), WINDOWS), CATALOG, train_params, WINDOWS)
    chosen, additive = model.metadata["tuning"]["chosen"], train_params.tuning.candidates[0].name
    assert chosen != additive and model.metadata["lightgbm_params"]["num_leaves"] > 2
    assert aucs(model)[chosen] == max(aucs(model).values())
    assert aucs(model)[chosen] > aucs(model)[additive] + 0.005  # stumps cannot express the ANDs


def test_the_best_validation_auc_wins_and_a_tie_goes_to_the_earlier_candidate():
    assert best_candidate({"additive": 0.70, "demo": 0.80, "rich": 0.79}) == "demo"
    assert best_candidate({"additive": 0.80, "demo": 0.80, "rich": 0.80}) == "additive"
    assert best_candidate({"rich": 0.80, "additive": 0.80}) == "rich"  # list order, not names


# ---------------------------------------------------------------- what the model records


def test_metadata_records_every_candidate_in_list_order(synthetic_model, synthetic_parts, train_params):
    meta = synthetic_model.metadata
    tuning = meta["tuning"]
    rows = len(synthetic_parts["train"])
    assert rows <= train_params.tuning.search_rows  # a small book: searched on everything, no refit
    assert tuning["searched_rows"] == rows and tuning["refit"] is None
    assert [c["name"] for c in tuning["candidates"]] == [c.name for c in train_params.tuning.candidates]
    for record, spec in zip(tuning["candidates"], train_params.tuning.candidates, strict=True):
        assert record["num_leaves"] == spec.num_leaves and record["lambda_l2"] == spec.lambda_l2
        assert record["learning_rate"] == spec.learning_rate and record["feature_fraction"] == spec.feature_fraction
        assert record["min_data_in_leaf"] == min_data_in_leaf(spec, rows, train_params.tuning.min_data_in_leaf_floor)
        assert 0.5 < record["valid_roc_auc"] <= 1 and record["valid_log_loss"] > 0
        assert 1 <= record["best_iteration"] <= train_params.tuning.num_boost_round
    best = max(tuning["candidates"], key=lambda c: c["valid_roc_auc"])
    assert tuning["chosen"] == best["name"]
    assert meta["lightgbm_params"]["num_leaves"] == best["num_leaves"]
    assert meta["best_iteration"] == best["best_iteration"] == synthetic_model.booster.current_iteration()
    # wall times are beside the metadata, never in it: the saved files stay byte-identical
    assert set(synthetic_model.fit_seconds) == {c.name for c in train_params.tuning.candidates}
    assert "seconds" not in json.dumps(meta)


def test_min_data_in_leaf_is_a_share_of_the_rows_fitted_on_with_a_floor(train_params):
    spec = train_params.tuning.candidates[0].model_copy(update={"min_data_in_leaf_share": 0.003})
    assert min_data_in_leaf(spec, 61_552, 20) == 185
    assert min_data_in_leaf(spec, 2_600_000, 20) == 7_800
    assert min_data_in_leaf(spec, 3_000, 20) == 20


def test_search_metrics_give_each_candidate_and_the_refit_their_own_keys():
    tuning = {
        "candidates": [
            {"name": "additive", "valid_roc_auc": 0.7, "valid_log_loss": 0.2, "best_iteration": 300},
            {"name": "demo", "valid_roc_auc": 0.8, "valid_log_loss": 0.1, "best_iteration": 120},
        ],
        "refit": {"valid_roc_auc": 0.81, "valid_log_loss": 0.09, "best_iteration": 150, "min_data_in_leaf": 900},
    }
    metrics = search_metrics(tuning, {"additive": 1.23456, "demo": 2.0, REFIT: 9.0})
    assert metrics["search.additive.valid_roc_auc"] == 0.7 and metrics["search.demo.best_iteration"] == 120.0
    assert metrics["search.refit.valid_log_loss"] == 0.09 and metrics["search.refit.fit_seconds"] == 9.0
    assert metrics["search.additive.fit_seconds"] == 1.235
    assert len(metrics) == 3 * 4


# ---------------------------------------------------------------- large train windows: a sample, then a refit


def keys_at(frame: pd.DataFrame, positions: np.ndarray) -> set:
    rows = frame.iloc[positions]
    return set(zip(rows["account_id"], rows["snapshot_date"], strict=True))


def test_the_search_sample_is_deterministic_bounded_and_spread(synthetic_parts):
    train = synthetic_parts["train"]
    picked = search_sample(train, 1_000)
    assert len(picked) == 1_000 and np.all(np.diff(picked) > 0)  # at most the bound, ascending, no repeats
    np.testing.assert_array_equal(picked, search_sample(train, 1_000))
    shuffled = train.sample(frac=1, random_state=0)  # the same rows in another order: the same sample
    assert keys_at(shuffled, search_sample(shuffled, 1_000)) == keys_at(train, picked)
    assert keys_at(train, search_sample(train, 500)) < keys_at(train, picked)  # a smaller bound: a subset
    np.testing.assert_array_equal(search_sample(train, len(train)), np.arange(len(train)))  # small: all rows
    sample = train.iloc[picked]
    assert sample["account_id"].nunique() > 0.9 * min(1_000, train["account_id"].nunique())  # not a block of accounts
    assert sample["snapshot_date"].nunique() == train["snapshot_date"].nunique()  # nor of weeks
    rate = train["label"].astype(int).mean()  # the churn rate of a uniform sample: within 4 standard errors
    assert abs(sample["label"].astype(int).mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / len(sample))


def test_a_large_train_window_is_searched_on_a_sample_and_the_winner_refitted_on_all(
    synthetic_parts, train_params, tmp_path
):
    params = with_tuning(train_params, search_rows=4_000)
    rows = len(synthetic_parts["train"])
    model = train_model(synthetic_parts, CATALOG, catalogue_hash(CATALOG), params, WINDOWS)
    meta, tuning = model.metadata, model.metadata["tuning"]
    floor = params.tuning.min_data_in_leaf_floor
    assert tuning["searched_rows"] == 4_000 < rows
    for record, spec in zip(tuning["candidates"], params.tuning.candidates, strict=True):
        assert record["min_data_in_leaf"] == min_data_in_leaf(spec, 4_000, floor)
    chosen = next(c for c in params.tuning.candidates if c.name == tuning["chosen"])
    refit = tuning["refit"]
    assert (
        refit["min_data_in_leaf"]
        == meta["lightgbm_params"]["min_data_in_leaf"]
        == min_data_in_leaf(chosen, rows, floor)
    )
    assert refit["best_iteration"] == meta["best_iteration"] == model.booster.current_iteration()
    assert REFIT in model.fit_seconds
    again = train_model(synthetic_parts, CATALOG, catalogue_hash(CATALOG), params, WINDOWS)
    model.save(tmp_path / "a")
    again.save(tmp_path / "b")
    for name in ("model.txt", "calibrator.json", "features.json", "metadata.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


# ---------------------------------------------------------------- params: every key required, none unknown


def params_with(tmp_path, edit) -> str:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(raw["train"])
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t["tuning"].pop("search_rows"), r"train\.tuning\.search_rows: missing"),
        (lambda t: t["tuning"].pop("candidates"), r"train\.tuning\.candidates: missing"),
        (lambda t: t["tuning"]["candidates"][0].pop("lambda_l2"), r"train\.tuning\.candidates\.0\.lambda_l2: missing"),
        (lambda t: t["tuning"]["candidates"][1].update(max_depth=3), r"candidates\.1\.max_depth: unknown key"),
        (lambda t: t.update(num_leaves=7), r"train\.num_leaves: unknown key"),  # the fixed setting of old
        (lambda t: t["tuning"]["candidates"][1].update(name="additive"), "additive given twice"),
        (lambda t: t["tuning"]["candidates"][1].update(name=REFIT), "'refit' is taken"),
        (lambda t: t["tuning"]["candidates"][1].update(name="demo setting"), r"candidates\.1\.name"),
        (lambda t: t["tuning"].update(candidates=[]), r"train\.tuning\.candidates"),
        (lambda t: t["tuning"]["candidates"][0].update(min_data_in_leaf_share=2), "min_data_in_leaf_share"),
    ],
)
def test_tuning_params_refuse_a_missing_unknown_or_invalid_key_in_one_line(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_settings(params_with(tmp_path, edit))
    assert "\n" not in str(error.value)
