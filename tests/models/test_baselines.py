"""The baselines every model figure is read against, on the synthetic table whose truth is known."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.catalogue import Catalogue
from models.baselines import RED_FLAGS, Baselines, HealthScore, RedFlag, RenewalCalendar, fit_baselines
from tests.models.conftest import truth_probability


@pytest.fixture(scope="module")
def fitted(synthetic, synthetic_parts) -> Baselines:
    _, catalog = synthetic
    return fit_baselines(synthetic_parts, Catalogue.from_json(catalog), seed=0)


def auc(part: pd.DataFrame, p: np.ndarray) -> float:
    return float(roc_auc_score(part["label"].astype(int), p))


def test_logistic_baseline_ranks_the_test_window_well_but_not_better_than_the_truth(fitted, synthetic_parts):
    # measured: logistic 0.81, the truth's own probability 0.86 (seeds 0-4: 0.79-0.81)
    test = synthetic_parts["test"]
    logistic = auc(test, fitted.predict_proba(test)["logistic"])
    assert logistic > 0.75
    assert logistic < auc(test, truth_probability(test)) + 0.01


def test_health_score_ranks_better_than_chance_but_below_the_logistic_baseline(fitted, synthetic_parts):
    # its flags cover four of the truth's five drivers (not the renewal countdown): measured 0.745
    test = synthetic_parts["test"]
    p = fitted.predict_proba(test)
    assert 0.70 < auc(test, p["health"]) < auc(test, p["logistic"])


def test_logistic_baseline_learns_the_direction_of_every_true_driver(fitted):
    model = fitted.logistic.named_steps["model"]
    names = fitted.logistic.named_steps["columns"].get_feature_names_out()
    coef = dict(zip(names, model.coef_[0]))
    assert coef["numeric__reply_latency_median_hours_90d"] > 0
    assert coef["numeric__qbr_since_last_days"] > 0
    assert coef["numeric__usage_trend_ratio_30d"] < 0
    assert coef["numeric__tenure_first_year_flag"] > 0
    assert coef["numeric__renewal_days_to_next_days"] < 0
    # ARR plays no part in the truth: far smaller than every driver
    assert abs(coef["numeric__arr_current_currency"]) < 0.2 * min(
        abs(coef[f"numeric__{f}"]) for f in ("reply_latency_median_hours_90d", "qbr_since_last_days")
    )


def test_predict_proba_gives_each_baseline_one_probability_per_row(fitted, synthetic_parts):
    test = synthetic_parts["test"].head(300)
    out = fitted.predict_proba(test)
    assert set(out) == {"logistic", "health", "calendar"}
    for name, p in out.items():
        assert p.shape == (len(test),), name
        assert np.all((p >= 0) & (p <= 1)), name


def test_missing_values_and_unseen_categories_are_scored_not_errors(fitted, synthetic_parts):
    rows = synthetic_parts["test"].head(20).copy()
    rows["reply_latency_median_hours_90d"] = np.nan
    rows["segment"] = pd.Categorical(["Galactic"] * len(rows))
    out = fitted.predict_proba(rows)
    assert all(np.isfinite(p).all() for p in out.values())


def test_baselines_are_deterministic(synthetic, synthetic_parts, fitted):
    _, catalog = synthetic
    again = fit_baselines(synthetic_parts, Catalogue.from_json(catalog), seed=0)
    test = synthetic_parts["test"].head(500)
    first, second = fitted.predict_proba(test), again.predict_proba(test)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


def test_health_score_uses_only_the_flags_whose_feature_exists(fitted, synthetic_parts):
    # the synthetic table has no ticket or NPS features: those two flags are left out
    usable = [f.feature for f in fitted.health.usable_flags(synthetic_parts["test"])]
    assert usable == [
        "reply_latency_median_hours_90d",
        "qbr_since_last_days",
        "usage_trend_ratio_30d",
        "tenure_first_year_flag",
    ]


def test_health_score_is_the_weighted_share_of_raised_flags_among_usable_ones():
    # usable: latency (weight 2.0, > 48) and QBR gap (weight 1.5, > 90, missing counts as raised)
    frame = pd.DataFrame(
        {
            "reply_latency_median_hours_90d": [50.0, 10.0, 10.0, 48.0, np.nan],
            "qbr_since_last_days": [120.0, 30.0, np.nan, 90.0, 30.0],
        }
    )
    score = HealthScore().score(frame)
    assert score == pytest.approx([1.0, 0.0, 1.5 / 3.5, 0.0, 0.0])  # 48 and 90 are not *over* the threshold


def test_health_score_thresholds_follow_each_flags_operator():
    flags = (
        RedFlag("a", ">=", 1, 1.0, "a at least 1"),
        RedFlag("b", "<", 0.8, 3.0, "b under 0.8"),
    )
    frame = pd.DataFrame({"a": [1.0, 0.999, np.nan], "b": [0.8, 0.79, np.nan]})
    assert HealthScore(flags).score(frame) == pytest.approx([0.25, 0.75, 0.0])  # missing raises neither


def test_health_score_without_any_usable_flag_is_zero_not_a_division_error():
    assert HealthScore().score(pd.DataFrame({"x": [1.0, 2.0]})) == pytest.approx([0.0, 0.0])


def test_health_probability_is_mapped_on_validation_and_keeps_its_churn_rate(fitted, synthetic_parts):
    valid = synthetic_parts["valid"]
    # isotonic regression preserves the mean of what it was fitted on
    assert fitted.health.predict_proba(valid).mean() == pytest.approx(valid["label"].astype(int).mean(), abs=1e-9)
    # more raised flags never means a lower churn probability
    rows = pd.DataFrame({f.feature: [np.nan] for f in RED_FLAGS[:4]})
    calm = rows.assign(reply_latency_median_hours_90d=1.0, qbr_since_last_days=1.0, usage_trend_ratio_30d=1.0)
    calm["tenure_first_year_flag"] = 0.0
    alarming = calm.assign(reply_latency_median_hours_90d=100.0, qbr_since_last_days=200.0)
    assert fitted.health.predict_proba(alarming)[0] > fitted.health.predict_proba(calm)[0]


def test_the_renewal_calendar_ranks_by_arr_times_nearness_overdue_as_due():
    frame = pd.DataFrame(
        {"arr": [10_000.0, 10_000.0, 40_000.0, 10_000.0, np.nan], "days": [0.0, 30.0, 90.0, np.nan, 0.0]}
    )
    calendar = RenewalCalendar("arr", "days")
    # due now: 10,000; a month ahead: half; 40,000 three months ahead: a quarter of it; overdue (no countdown): due;
    # unknown ARR: the median ARR
    assert calendar.score(frame).tolist() == [10_000.0, 5_000.0, 10_000.0, 10_000.0, 10_000.0]
    without = RenewalCalendar(None, None).score(frame)
    assert without.tolist() == [1.0] * 5  # no ARR, no countdown: no ranking, not an error


def test_the_renewal_calendar_ranks_the_synthetic_churn_better_than_chance(fitted, synthetic_parts):
    # the synthetic truth raises risk inside the last 90 days of a term: the calendar sees that part
    test = synthetic_parts["test"]
    assert auc(test, fitted.predict_proba(test)["calendar"]) > 0.55
