"""The lead-time backtest's pieces on hand-made rows whose answers are known."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from features.errors import InputError
from models import backtest
from models.targets import HORIZON, RENEWAL

D = pd.Timestamp


def test_the_replay_runs_from_the_first_week_the_models_can_be_fitted_to_the_last_confirmable_one():
    frame = pd.DataFrame({"snapshot_date": pd.date_range("2025-01-06", periods=40, freq="7D")})
    asked: list[dt.date] = []

    def fits(day: dt.date) -> bool:
        asked.append(day)
        return day >= dt.date(2025, 3, 1)

    dates = backtest.replay_dates(frame, dt.date(2025, 9, 30), grace_days=30, min_weeks=4, fits=fits)
    # first Monday on or after 03-01, to the last Monday at least 30 days before 09-30
    assert dates[0] == dt.date(2025, 3, 3) and dates[-1] == dt.date(2025, 8, 25) and len(dates) == 26
    assert len(asked) <= 7  # bisected, not tried week by week
    with pytest.raises(
        InputError, match=r"can replay 26 weeks \(2025-03-03 to 2025-08-25\), backtest.min_weeks asks for 40"
    ):
        backtest.replay_dates(frame, dt.date(2025, 9, 30), 30, 40, fits)
    with pytest.raises(InputError, match="too little labelled history"):
        backtest.replay_dates(frame, dt.date(2025, 9, 30), 30, 4, lambda day: False)


def test_only_labels_observed_before_the_replay_are_learnt():
    frame = pd.DataFrame(
        {
            "snapshot_date": [D("2025-01-06"), D("2025-03-03"), D("2025-03-03")],
            "term_end": [D("2025-02-01"), D("2025-03-20"), D("2025-12-31")],
            "label": pd.array([0, 1, 0], dtype="Int8"),
            "renewal_label": pd.array([0, 1, 0], dtype="Int8"),
        }
    )
    day = dt.date(2025, 5, 10)
    horizon = backtest.observed_by(frame, HORIZON, day, horizon_days=90, grace_days=30)
    assert horizon["label"].isna().tolist() == [False, True, True]  # 2025-03-03 + 120 days is after 05-10
    renewal = backtest.observed_by(frame, RENEWAL, day, horizon_days=90, grace_days=30)
    assert renewal["label"].isna().tolist() == [False, False, True]  # the 2025-12-31 term has not ended
    assert renewal["renewal_label"].isna().tolist() == [False, False, True]


def test_each_week_lists_the_top_accounts_of_each_owner():
    rows = pd.DataFrame(
        {
            "account_id": ["a", "b", "c", "d", "a", "b", "c", "d"],
            "snapshot_date": [D("2025-01-06")] * 4 + [D("2025-01-13")] * 4,
        }
    )
    owners = pd.Series({"a": "o1", "b": "o1", "c": "o1", "d": "o2"})
    scores = pd.DataFrame({"r": [3.0, 2.0, 1.0, 0.5, 1.0, 2.0, 3.0, 0.1]}, index=rows.index)
    listed = backtest.alerts(scores, rows, owners, per_owner=2)["r"]
    weeks = listed.groupby("snapshot_date")["account_id"].apply(sorted).to_dict()
    assert weeks == {D("2025-01-06"): ["a", "b", "d"], D("2025-01-13"): ["b", "c", "d"]}


def test_lead_time_is_from_the_first_alert_within_the_lookback_to_the_churn():
    events = pd.DataFrame(
        {"account_id": ["a", "b", "c"], "churn_date": [D("2025-07-01")] * 3, "arr": [100.0, 300.0, 600.0]}
    )
    alerted = pd.DataFrame(
        {
            "account_id": ["a", "a", "b", "b", "x"],
            "snapshot_date": [D("2025-03-03"), D("2025-05-05"), D("2024-01-01"), D("2025-06-02"), D("2025-03-03")],
            "owner": ["o"] * 5,
        }
    )
    lead = backtest.lead_times(events, alerted, lookback_days=365)
    # a: first alert 120 days ahead; b: the 2024 alert is beyond the look-back, so 29 days; c: never alerted
    assert lead.tolist()[:2] == [120.0, 29.0] and np.isnan(lead.iloc[2])
    labels = pd.Series(
        [1, 1, 0, 1, 0],
        index=pd.MultiIndex.from_frame(alerted[["account_id", "snapshot_date"]]),
        dtype="Int8",
    )
    figures = backtest.ranking_figures(events, lead, alerted, labels)
    assert figures["churned_arr_alerted_90d"] == 0.1  # only a (100 of 1,000)
    assert figures["churned_arr_alerted_180d"] == 0.0
    assert figures["churned_accounts_alerted"] == round(2 / 3, 4)
    assert figures["median_lead_days"] == 29.0  # 120, 29 and 0 for the account never alerted
    assert figures["alert_precision"] == 0.6  # 3 of the 5 alerted account-weeks did not renew
    curve = backtest.lead_curve(events, {"r": lead}, 365).set_index("days_before_churn")["share_of_churned_arr_alerted"]
    assert curve.loc[0] == 0.4 and curve.loc[28] == 0.4 and curve.loc[35] == 0.1 and curve.loc[126] == 0.0
