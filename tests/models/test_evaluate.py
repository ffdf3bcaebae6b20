"""Evaluation on the test window: metrics with answers worked out by hand, predictions, curves, metrics.json."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from features.catalogue import Catalogue, catalogue_from_json
from models import evaluate  # the module, not its test_* functions (pytest would collect them)
from models.baselines import fit_baselines

# ---------------------------------------------------------------- known answers on ten rows

Y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
P = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
ARR = np.array([100.0, 5.0, 300.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])


def test_classification_metrics_known_answers():
    m = evaluate.classification_metrics(Y, P, ARR)
    assert m["roc_auc"] == pytest.approx(15 / 16)  # 0.9 beats all 8 retained, 0.7 beats 7 of them
    assert m["brier"] == pytest.approx(1.6525 / 10)
    assert m["base_rate"] == pytest.approx(0.2)
    assert (m["rows"], m["positives"]) == (10, 2)
    assert m["lift_top10"] == pytest.approx(5.0)  # top row is a churner: 100% / 20%
    assert m["recall_top10"] == pytest.approx(0.5)
    assert m["lift_top20"] == pytest.approx(2.5)  # one churner in the top two
    assert m["recall_top20"] == pytest.approx(0.5)
    assert m["churned_arr_captured_top10"] == pytest.approx(100 / 400)  # of the 400 churned ARR, 100 called


def test_classification_metrics_without_arr_has_no_arr_metric():
    assert "churned_arr_captured_top10" not in evaluate.classification_metrics(Y, P)


def test_top_share_breaks_ties_by_position():
    mask = evaluate.top_share_mask(np.full(10, 0.3), 0.2)
    assert mask.tolist() == [True, True] + [False] * 8
    assert evaluate.top_share_mask(np.array([0.1, 0.2]), 0.01).sum() == 1  # at least one row


def test_reliability_table_bins_by_predicted_probability():
    table = evaluate.reliability_table(np.array([0, 1, 1, 0]), np.array([0.05, 0.15, 0.95, 0.99]))
    assert len(table) == 10 and table["rows"].sum() == 4
    assert table.loc[0, ["rows", "observed_rate", "mean_predicted"]].tolist() == pytest.approx([1, 0.0, 0.05])
    assert table.loc[9, ["rows", "observed_rate", "mean_predicted"]].tolist() == pytest.approx([2, 0.5, 0.97])
    assert table.loc[5, "rows"] == 0 and np.isnan(table.loc[5, "observed_rate"])


# ---------------------------------------------------------------- the model and both baselines on the synthetic test window


@pytest.fixture(scope="module")
def catalogue(synthetic) -> Catalogue:
    return Catalogue.from_json(synthetic[1])


@pytest.fixture(scope="module")
def probabilities(synthetic_parts, synthetic_model, catalogue) -> dict[str, np.ndarray]:
    test = synthetic_parts["test"]
    fitted = fit_baselines(synthetic_parts, catalogue, seed=0)
    return {"model": synthetic_model.predict_proba(test), **fitted.predict_proba(test)}


@pytest.fixture(scope="module")
def pred(synthetic_parts, probabilities, catalogue) -> pd.DataFrame:
    return evaluate.test_predictions(synthetic_parts["test"], probabilities, catalogue)


@pytest.fixture(scope="module")
def evaluation(synthetic_parts, probabilities, catalogue) -> dict:
    return evaluate.test_evaluation(synthetic_parts["test"], probabilities, catalogue, ["flag a", "flag b"])


def test_predictions_keep_keys_label_context_arr_and_one_column_per_model(pred, synthetic_parts, probabilities):
    test = synthetic_parts["test"]
    assert list(pred.columns) == [
        "account_id",
        "snapshot_date",
        "label",
        "churn_date",
        "segment",  # the catalogue's context feature
        "arr",
        "p_model",
        "p_logistic",
        "p_health",
        "p_calendar",
    ]
    assert list(pred.index) == list(range(len(test)))
    assert pred["label"].dtype.kind == "i"
    assert (pred["label"].to_numpy() == test["label"].astype(int).to_numpy()).all()
    assert (pred["account_id"].to_numpy() == test["account_id"].to_numpy()).all()
    np.testing.assert_array_equal(pred["arr"].to_numpy(), test["arr_current_currency"].to_numpy())
    for name, p in probabilities.items():
        np.testing.assert_array_equal(pred[f"p_{name}"].to_numpy(), p)


def test_predictions_without_an_arr_feature_have_missing_arr(synthetic, synthetic_parts):
    specs = [s for s in catalogue_from_json(synthetic[1]) if s.name != "arr_current_currency"]
    no_arr = Catalogue(tuple(specs))
    test = synthetic_parts["test"].head(10)
    pred = evaluate.test_predictions(test, {"model": np.full(10, 0.1)}, no_arr)
    assert pred["arr"].isna().all() and "p_model" in pred
    assert evaluate.arr_values(test, no_arr) is None


def test_arr_values_are_the_catalogues_arr_feature(synthetic_parts, catalogue):
    test = synthetic_parts["test"].head(10)
    np.testing.assert_array_equal(evaluate.arr_values(test, catalogue), test["arr_current_currency"].to_numpy())


def test_evaluation_improvement_is_the_metric_differences(evaluation, synthetic_parts, probabilities):
    y = synthetic_parts["test"]["label"].astype(int).to_numpy()
    assert set(evaluation["test"]) == {"model", "logistic", "health", "calendar"}
    assert evaluation["health_flags"] == ["flag a", "flag b"]
    auc = {k: roc_auc_score(y, p) for k, p in probabilities.items()}
    pr = {k: average_precision_score(y, p) for k, p in probabilities.items()}
    brier = {k: brier_score_loss(y, p) for k, p in probabilities.items()}
    for baseline in ("logistic", "health", "calendar"):
        gain = evaluation["improvement"][baseline]
        assert gain["roc_auc_gain"] == pytest.approx(auc["model"] - auc[baseline])
        assert gain["pr_auc_gain"] == pytest.approx(pr["model"] - pr[baseline])
        assert gain["brier_reduction_pct"] == pytest.approx(100 * (brier[baseline] - brier["model"]) / brier[baseline])
        lift = {k: evaluation["test"][k]["lift_top10"] for k in ("model", baseline)}
        assert gain["lift_top10_gain"] == pytest.approx(lift["model"] - lift[baseline])
        # on the known-truth data the model beats both baselines
        assert gain["roc_auc_gain"] > 0 and gain["brier_reduction_pct"] > 0
    assert "churned_arr_captured_top10" in evaluation["test"]["model"]


def test_curve_frames_have_the_three_models_and_monotone_curves(pred):
    curves = evaluate.curve_frames(pred)
    assert set(curves) == {"roc", "pr", "calibration", "lift"}
    for name, frame in curves.items():
        assert list(frame["model"].unique()) == ["model", "logistic", "health", "calendar"], name
    y = pred["label"].to_numpy()
    for model, roc in curves["roc"].groupby("model"):
        assert (np.diff(roc["fpr"]) >= 0).all() and (np.diff(roc["tpr"]) >= 0).all(), model
        assert roc[["fpr", "tpr"]].iloc[0].tolist() == [0, 0] and roc[["fpr", "tpr"]].iloc[-1].tolist() == [1, 1]
        assert len(roc) <= 200  # thinned for the plot files
        # the thinned curve still has the model's ROC AUC under it
        area = np.trapezoid(roc["tpr"], roc["fpr"])
        assert area == pytest.approx(roc_auc_score(y, pred[f"p_{model}"]), abs=0.01), model
    for _, lift in curves["lift"].groupby("model"):
        assert (np.diff(lift["share_of_churners"]) >= 0).all() and lift["share_of_churners"].iloc[-1] == 1.0
    for model, rel in curves["calibration"].groupby("model"):
        assert rel["rows"].sum() == len(pred) and rel["mean_predicted"].notna().all(), model
    pr = curves["pr"]
    assert pr["recall"].between(0, 1).all() and pr["precision"].between(0, 1).all()


def test_importance_is_sorted_covers_every_feature_and_ranks_the_truth(synthetic_model):
    frame = evaluate.importance_frame(synthetic_model.booster)
    booster = synthetic_model.booster
    assert sorted(frame["feature"]) == sorted(booster.feature_name())
    assert (np.diff(frame["importance"]) <= 0).all()
    gains = dict(zip(booster.feature_name(), booster.feature_importance(importance_type="gain")))
    assert all(gains[f] == v for f, v in zip(frame["feature"], frame["importance"]))
    # the truth's strongest driver first; the two features with no part in the truth last
    assert frame["feature"].iloc[0] == "renewal_days_to_next_days"
    assert set(frame["feature"].iloc[-2:]) == {"arr_current_currency", "segment"}


def test_metrics_document_rounds_to_six_places_and_has_one_entry_per_context(evaluation, pred):
    pred = pred.assign(region=np.where(np.arange(len(pred)) % 2 == 0, "EMEA", "NA"))
    doc = evaluate.metrics_document(evaluation, pred)
    assert set(doc) == {
        *("model", "logistic", "health", "calendar", "model_vs", "roc_auc_beyond", "reliability"),
        *("by_segment", "by_region"),
    }
    for name in ("model", "logistic", "health", "calendar"):
        assert set(doc[name]) == set(evaluation["test"][name])
        for key, value in doc[name].items():
            assert value == round(evaluation["test"][name][key], 6), (name, key)
    for baseline in ("logistic", "health", "calendar"):
        for key, value in doc["model_vs"][baseline].items():
            assert value == round(evaluation["improvement"][baseline][key], 6)
    for record in doc["reliability"]:
        for value in record.values():
            assert np.isnan(value) or value == round(value, 6)
    assert len(doc["reliability"]) == 10 and sum(r["rows"] for r in doc["reliability"]) == len(pred)
    by_segment = {r["segment"]: r for r in doc["by_segment"]}
    assert set(by_segment) == set(pred["segment"].astype(str))
    assert sum(r["rows"] for r in by_segment.values()) == len(pred)
    for segment, part in pred.groupby("segment", observed=True):
        record = by_segment[str(segment)]
        assert record["churn_rate"] == round(part["label"].mean(), 6)
        assert record["roc_auc"] == round(roc_auc_score(part["label"], part["p_model"]), 6)
    assert {r["region"] for r in doc["by_region"]} == {"EMEA", "NA"}


def test_auc_beyond_90_and_180_days_is_each_models_auc_on_the_rows_that_far_from_renewal(
    evaluation, synthetic_parts, probabilities
):
    test = synthetic_parts["test"]
    y = test["label"].astype(int).to_numpy()
    days = test["renewal_days_to_next_days"].to_numpy()
    for beyond in (90, 180):
        got = evaluation["roc_auc_beyond"][f"{beyond}d"]
        rows = days > beyond
        assert (got["rows"], got["positives"]) == (int(rows.sum()), int(y[rows].sum()))
        for name, p in probabilities.items():
            assert got[name] == pytest.approx(roc_auc_score(y[rows], p[rows])), (beyond, name)


def test_auc_beyond_is_empty_rather_than_wrong_when_one_class_is_missing(synthetic_parts, probabilities, catalogue):
    test = synthetic_parts["test"].assign(label=0)
    out = evaluate.auc_beyond(test, probabilities, catalogue)
    assert all(v is None for d in out.values() for k, v in d.items() if k in probabilities)
