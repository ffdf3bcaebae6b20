import datetime as dt

import numpy as np
import pytest

from features.catalogue import catalogue_hash
from features.errors import InputError
from models.evaluate import classification_metrics
from models.train import ChurnModel, Windows, split_out_of_time, train_model
from pipelines.config import load_settings

WINDOWS = Windows(dt.date(2025, 6, 30), dt.date(2025, 9, 29), dt.date(2025, 12, 29), dt.date(2026, 3, 30))


@pytest.fixture(scope="module")
def params():
    return load_settings("params.yaml").train


@pytest.fixture(scope="module")
def trained(synthetic, params):
    frame, catalog = synthetic
    parts = split_out_of_time(frame, WINDOWS)
    return parts, train_model(parts, catalog, catalogue_hash(catalog), params, WINDOWS)


def test_windows_are_separated_by_the_horizon_and_unlabelled_rows_are_left_out(trained):
    parts, _ = trained
    assert parts["train"]["snapshot_date"].max() <= np.datetime64("2025-06-30")
    assert (parts["valid"]["snapshot_date"].min() - parts["train"]["snapshot_date"].max()).days >= 90
    assert (parts["test"]["snapshot_date"].min() - parts["valid"]["snapshot_date"].max()).days >= 90
    assert all(p["label"].notna().all() for p in parts.values())


def test_model_finds_the_known_signal_and_is_calibrated(trained):
    parts, model = trained
    test = parts["test"]
    m = classification_metrics(test["label"].astype(int).to_numpy(), model.predict_proba(test))
    print(f"synthetic test ROC AUC {m['roc_auc']:.3f}, Brier {m['brier']:.4f}, base rate {m['base_rate']:.3f}")
    assert m["roc_auc"] > 0.75
    # calibrated: the mean predicted probability is close to the observed churn rate
    assert abs(model.predict_proba(test).mean() - m["base_rate"]) < 0.25 * m["base_rate"] + 0.005


def test_same_data_and_params_give_byte_identical_model_files(synthetic, params, trained, tmp_path):
    frame, catalog = synthetic
    parts, first = trained
    second = train_model(split_out_of_time(frame, WINDOWS), catalog, catalogue_hash(catalog), params, WINDOWS)
    first.save(tmp_path / "a")
    second.save(tmp_path / "b")
    for name in ("model.txt", "calibrator.json", "features.json", "metadata.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_saved_model_scores_exactly_as_the_trained_one(trained, tmp_path):
    parts, model = trained
    model.save(tmp_path)
    again = ChurnModel.load(tmp_path)
    test = parts["test"].head(500)
    assert np.allclose(again.predict_proba(test), model.predict_proba(test), rtol=0, atol=1e-12)


def test_direction_more_latency_more_risk(trained):
    parts, model = trained
    rows = parts["test"].head(300).copy()
    slow = rows.copy()
    slow["reply_latency_median_hours_90d"] = 96.0
    fast = rows.copy()
    fast["reply_latency_median_hours_90d"] = 4.0
    assert (model.predict_proba(slow) >= model.predict_proba(fast) - 1e-12).all()
    assert model.predict_proba(slow).mean() > model.predict_proba(fast).mean()


def test_a_window_without_churners_is_a_clear_error(synthetic):
    frame, _ = synthetic
    frame = frame.copy()
    frame.loc[frame["snapshot_date"] <= "2025-06-30", "label"] = 0
    with pytest.raises(InputError, match="no churned accounts in the train window"):
        split_out_of_time(frame, WINDOWS)


def test_unknown_category_at_scoring_becomes_missing_not_an_error(trained):
    parts, model = trained
    rows = parts["test"].head(5).copy()
    rows["segment"] = "Galactic"
    assert np.isfinite(model.predict_proba(rows)).all()
