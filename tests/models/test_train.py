import datetime as dt

import numpy as np
import pandas as pd
import pytest

from features.catalogue import catalogue_hash
from features.errors import InputError
from models.evaluate import classification_metrics
from models.train import (
    Calibrator,
    ChurnModel,
    Windows,
    fit_model,
    lightgbm_params,
    model_matrix,
    positive_weight,
    split_out_of_time,
    thin_weeks,
    thin_windows,
    train_model,
)
from pipelines.config import load_settings
from tests.models.conftest import SPECS, WINDOWS, truth_probability, with_tuning


@pytest.fixture(scope="module")
def params():
    return load_settings("params.yaml").train


@pytest.fixture(scope="module")
def trained(synthetic_parts, synthetic_model):
    """The synthetic split and the model trained on it with params.yaml (shared: trained once per session)."""
    return synthetic_parts, synthetic_model


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


# ---------------------------------------------------------------- helpers of training, with known answers


def test_test_end_bounds_the_test_window(synthetic):
    frame, _ = synthetic
    bounded = Windows(
        WINDOWS.train_end, WINDOWS.valid_start, WINDOWS.valid_end, WINDOWS.test_start, dt.date(2026, 4, 27)
    )
    test = split_out_of_time(frame, bounded)["test"]
    assert test["snapshot_date"].min() == np.datetime64("2026-03-30")
    assert test["snapshot_date"].max() == np.datetime64("2026-04-27")


def test_auto_positive_weight_is_negatives_over_positives_of_the_train_window():
    y = pd.Series([1, 0, 0, 0, 0, 0, 1, 0])
    assert positive_weight(y, "auto") == pytest.approx(6 / 2)
    assert positive_weight(y, 1.5) == 1.5
    assert positive_weight(pd.Series([0, 0]), "auto") == 2.0  # no churner: no division by zero


def test_early_stopping_watches_log_loss_unless_churners_are_reweighted(params):
    candidate = params.tuning.candidates[0]
    assert lightgbm_params(params, candidate, 1000, 1.0)["metric"] == ["binary_logloss"]
    assert lightgbm_params(params, candidate, 1000, 7.0)["metric"] == ["auc"]
    assert lightgbm_params(params, candidate, 1000, 7.0)["scale_pos_weight"] == 7.0


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrator_is_monotone_bounded_and_survives_its_json(method):
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 2, 2000)
    labels = (rng.random(2000) < 1 / (1 + np.exp(-raw))).astype(int)
    calibrator = Calibrator.fit(raw, labels, method)
    grid = np.linspace(-10, 10, 201)
    p = calibrator.transform(grid)
    assert np.all(np.diff(p) >= 0) and p.min() >= 0 and p.max() <= 1
    again = Calibrator.from_json(calibrator.to_json())
    np.testing.assert_array_equal(again.transform(grid), p)
    if method == "sigmoid":  # the labels were drawn from exactly this curve
        assert (calibrator.a, calibrator.b) == pytest.approx((1.0, 0.0), abs=0.15)


def test_model_matrix_names_missing_features_and_encodes_categories_on_training_levels():
    frame = pd.DataFrame({"x": ["1.5", "oops"], "segment": ["SMB", "Galactic"]})
    X = model_matrix(frame, ["x", "segment"], {"segment": ["Enterprise", "SMB"]})
    assert X["x"].dtype == "float64" and X["x"].iloc[0] == 1.5 and np.isnan(X["x"].iloc[1])
    assert list(X["segment"].cat.categories) == ["Enterprise", "SMB"]
    assert X["segment"].iloc[0] == "SMB" and pd.isna(X["segment"].iloc[1])
    with pytest.raises(InputError, match="missing model feature column.*renewal, tenure"):
        model_matrix(frame, ["x", "renewal", "tenure"], {})


def test_every_directional_feature_moves_risk_only_its_way(synthetic_model, synthetic_parts):
    rows = synthetic_parts["test"].head(300)
    for spec in SPECS:
        if spec.dtype == "category" or spec.risk_direction == 0:
            continue
        low, high = rows.copy(), rows.copy()
        values = synthetic_parts["train"][spec.name]
        low[spec.name], high[spec.name] = values.quantile(0.05), values.quantile(0.95)
        delta = spec.risk_direction * (synthetic_model.predict_proba(high) - synthetic_model.predict_proba(low))
        assert (delta >= -1e-12).all(), spec.name


def test_metadata_records_windows_rows_and_retained_reference(synthetic_model, synthetic_parts, params):
    meta = synthetic_model.metadata
    assert meta["windows"]["train_end"] == "2025-06-30" and meta["windows"]["test_end"] is None
    assert meta["rows"] == {k: len(v) for k, v in synthetic_parts.items()}
    train = synthetic_parts["train"]
    retained = train[train["label"] == 0]
    assert meta["retained_reference"]["qbr_since_last_days"] == pytest.approx(retained["qbr_since_last_days"].median())
    assert meta["retained_reference"]["tenure_first_year_flag"] == pytest.approx(
        retained["tenure_first_year_flag"].mean()
    )
    assert "segment" not in meta["retained_reference"]
    assert meta["best_iteration"] == synthetic_model.booster.current_iteration() <= params.tuning.num_boost_round


def test_fit_model_takes_windows_and_fingerprint_from_params_and_catalogue(synthetic, params):
    frame, catalog = synthetic
    small = frame[frame["account_id"] < "A0100"]
    quick = with_tuning(params, num_boost_round=20)
    model = fit_model(split_out_of_time(small, WINDOWS), catalog, quick, WINDOWS)
    assert model.catalog_hash == catalogue_hash(catalog)
    assert {k: v for k, v in model.metadata["windows"].items() if k != "rule"} == WINDOWS.as_dict()


def test_a_window_larger_than_the_limit_keeps_every_kth_week_counted_back_from_its_latest(synthetic_parts):
    train = synthetic_parts["train"]
    whole, stride = thin_weeks(train, len(train))
    assert stride == 1 and whole is train
    weeks = train["snapshot_date"].value_counts().sort_index(ascending=False)
    kept, stride = thin_weeks(train, int(weeks.iloc[::3].sum()) - 1)  # one row too many for every 3rd week
    assert stride == 4
    weeks = np.sort(train["snapshot_date"].unique())[::-1]
    assert list(np.sort(kept["snapshot_date"].unique())[::-1]) == list(weeks[::4])  # the latest week is kept
    assert set(kept["account_id"]) == set(train["account_id"])  # a stride drops repetition, not accounts
    assert len(kept) <= len(train) // 3


def test_thinning_leaves_the_test_window_whole(synthetic_parts):
    parts, strides = thin_windows(synthetic_parts, 2_000)
    assert strides["train"] > 1 and strides["valid"] > 1 and "test" not in strides
    assert parts["test"] is synthetic_parts["test"]
    assert len(parts["train"]) <= 2_000 and len(parts["valid"]) <= 2_000


def test_a_model_fitted_on_every_fourth_week_finds_the_known_signal_as_well(synthetic, synthetic_parts, params):
    """Ground truth known: thinning train and validation to every 4th week moves test ROC AUC and Brier by noise only."""
    _, catalog = synthetic
    test = synthetic_parts["test"]
    y = test["label"].astype(int).to_numpy()
    full = fit_model(synthetic_parts, catalog, params, WINDOWS)
    weeks = synthetic_parts["train"]["snapshot_date"].value_counts().sort_index(ascending=False)
    parts, strides = thin_windows(synthetic_parts, int(weeks.iloc[::4].sum()))  # exactly what every 4th week holds
    thinned = fit_model(parts, catalog, params, WINDOWS, strides)
    assert strides["train"] == 4 and thinned.metadata["week_stride"] == strides
    m_full, m_thin = (classification_metrics(y, m.predict_proba(test)) for m in (full, thinned))
    truth = classification_metrics(y, truth_probability(test))
    print(
        f"test ROC AUC: truth {truth['roc_auc']:.4f}, all weeks {m_full['roc_auc']:.4f}, every 4th {m_thin['roc_auc']:.4f}"
    )
    assert m_thin["roc_auc"] > truth["roc_auc"] - 0.03 and abs(m_thin["roc_auc"] - m_full["roc_auc"]) < 0.02
    assert abs(m_thin["brier"] - m_full["brier"]) < 0.1 * m_full["brier"]
