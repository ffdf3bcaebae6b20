"""Drift (PSI, missing shares) and the judging of past weekly lists."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models import monitoring


def normal(n: int, shift: float = 0.0, seed: int = 0) -> pd.Series:
    return pd.Series(np.random.default_rng(seed).normal(shift, 1.0, n))


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_two_sd_shift():
    reference = normal(20_000, seed=1)
    assert monitoring.psi(reference, normal(5_000, seed=2)) < 0.01
    assert monitoring.psi(reference, normal(5_000, shift=0.2, seed=2)) < 0.1
    assert monitoring.psi(reference, normal(5_000, shift=2.0, seed=2)) > 1.0


def test_psi_leaves_missing_values_to_their_own_share_and_reads_categories():
    reference = normal(5_000, seed=1)
    current = normal(5_000, seed=2).where(np.arange(5_000) % 2 == 0)  # half missing, the rest unchanged
    assert monitoring.psi(reference, current) < 0.02
    assert np.isnan(monitoring.psi(reference, pd.Series([np.nan, np.nan])))
    cats = pd.Series(["SMB"] * 80 + ["Enterprise"] * 20, dtype="category")
    assert monitoring.psi(cats, cats) == pytest.approx(0.0)
    flipped = pd.Series(["SMB"] * 20 + ["Enterprise"] * 80, dtype="category")
    assert monitoring.psi(cats, flipped) > 1.0


def test_feature_drift_names_the_shifted_feature_in_the_catalogues_words_first():
    reference = pd.DataFrame({"latency": normal(10_000, seed=1), "tickets": normal(10_000, seed=3)})
    current = pd.DataFrame({"latency": normal(2_000, shift=2.0, seed=2), "tickets": normal(2_000, seed=4)})
    current.loc[:599, "tickets"] = np.nan  # 30% missing now, none before
    titles = {"latency": "Reply time, median, 30 days", "tickets": "Tickets, 90 days"}
    drift = monitoring.feature_drift(reference, current, titles, bins=10)
    assert list(drift["feature"]) == ["latency", "tickets"]
    flagged = monitoring.drifted(drift, max_psi=0.25, max_missing_change=0.2)
    assert set(flagged["feature"]) == {"latency", "tickets"}  # one shifted, one gone missing
    assert drift.loc[drift["feature"] == "tickets", "psi"].item() < 0.25
    line = monitoring.drift_line(flagged, top=1)
    assert "Reply time, median, 30 days (PSI" in line and "and 1 more" in line
    assert monitoring.drifted(drift.iloc[[]], 0.25, 0.2).empty


def test_score_distribution_reports_psi_and_both_means():
    doc = monitoring.score_distribution(pd.Series([0.1, 0.2, 0.3] * 100), pd.Series([0.1, 0.2, 0.3] * 100), 10)
    assert doc["psi"] == pytest.approx(0.0) and doc["mean_current"] == pytest.approx(0.2)


@pytest.mark.parametrize(("days", "ready"), [(120, True), (119, False)])
def test_a_list_is_judged_once_its_horizon_and_grace_are_inside_the_export(days, ready):
    as_of = dt.date(2026, 1, 5)
    assert monitoring.matured(as_of, as_of + dt.timedelta(days=days), 90, 30) is ready


def a_list() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "as_of": "2026-01-05",
            "account_id": pd.Series(["a", "b", "c", "d", "e", "f"], dtype="string"),
            "owner": pd.Series(["ann", "ann", "ann", "bob", "bob", "bob"], dtype="string"),
            "arr": [100.0, 200.0, 300.0, 400.0, 500.0, 600.0],
            "renewal_risk": [0.9, 0.8, 0.1, 0.7, 0.2, 0.1],
            "churn_probability": [0.6, 0.5, 0.1, 0.4, 0.2, 0.3],
            "risk_tier": ["high", "high", "low", "medium", "low", "low"],
            "rank": [1, 2, 5, 3, 4, 6],
            "model_version": "churn-lgbm-demo/1",
            "data_note": pd.NA,
        }
    )


def test_a_matured_list_is_judged_on_what_happened():
    frame = a_list()
    outcome = pd.Series({"a": 1, "b": 0, "c": 1, "d": 1, "e": 0, "f": 0})
    judged = monitoring.judge_list(frame, outcome, per_owner=1)  # each owner's best-ranked account: a and d
    assert judged.accounts == 6 and judged.churned == 3 and judged.alerts == 2
    assert judged.alert_precision == 1.0
    assert judged.churned_arr_alerted == 500.0 and judged.churned_arr_missed == 300.0
    assert judged.roc_auc == pytest.approx(roc_auc_score(outcome[frame["account_id"]], frame["churn_probability"]))
    assert judged.tiers["high"] == {"accounts": 2, "promised": pytest.approx(0.55), "observed": 0.5}
    assert judged.tiers["low"]["observed"] == pytest.approx(1 / 3)
    assert judged.to_dict()["as_of"] == "2026-01-05"


def test_accounts_without_an_observed_outcome_are_left_out_of_the_judgement():
    judged = monitoring.judge_list(a_list(), pd.Series({"a": 1, "b": 0, "c": 0}), per_owner=2)
    assert judged.accounts == 3 and judged.churned == 1 and judged.alerts == 2  # a, b, c are all ann's


def test_the_pooled_auc_reads_every_week_and_retraining_is_recommended_past_the_drop():
    frame = a_list()
    good = pd.Series({"a": 1, "b": 1, "c": 0, "d": 1, "e": 0, "f": 0})
    assert monitoring.pooled_auc([frame, frame], [good, good]) == pytest.approx(
        roc_auc_score(good[frame["account_id"]], frame["churn_probability"])
    )
    assert monitoring.retrain_line(0.93, 0.95, 0.05, 13) is None
    line = monitoring.retrain_line(0.85, 0.95, 0.05, 13)
    assert line.startswith("retrain:") and "0.850" in line and "0.950" in line
    assert monitoring.retrain_line(float("nan"), 0.95, 0.05, 13) is None


def test_a_small_books_sampling_noise_is_not_read_as_drift_a_real_shift_still_is():
    reference = pd.DataFrame({"x": normal(800, seed=1)})
    titles = {"x": "Customer for"}
    noisy = [
        monitoring.feature_drift(reference, pd.DataFrame({"x": normal(40, seed=s)}), titles, 10).iloc[0]
        for s in range(2, 42)
    ]
    assert max(row["psi"] for row in noisy) > 0.25  # a fixed threshold alone raises false alarms
    assert noisy[0]["psi_noise"] == pytest.approx(21.67 * (1 / 800 + 1 / 40), rel=0.01)  # chi-square(9), 99%
    flagged = sum(len(monitoring.drifted(pd.DataFrame([row]).assign(missing_change=0.0), 0.25, 0.2)) for row in noisy)
    assert flagged <= 1
    shifted = monitoring.feature_drift(reference, pd.DataFrame({"x": normal(40, shift=2.0, seed=3)}), titles, 10)
    assert len(monitoring.drifted(shifted, 0.25, 0.2)) == 1
