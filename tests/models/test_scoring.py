"""Scoring sees the accounts the export knows at the as-of date: the export truncated there scores the same list."""

import datetime as dt

import pandas as pd
import pytest

from models.scoring import point_in_time_features
from tests.features.canonical_frames import accounts, contracts, feature_params, random_export, truncate

PARAMS = feature_params(first_snapshot="2024-02-05")


def weekly_features(tables: dict, as_of: dt.date) -> pd.DataFrame:
    frame, _ = point_in_time_features(tables, [as_of - dt.timedelta(days=7), as_of], PARAMS)
    return frame.drop(columns=["label", "churn_date"]).set_index(["account_id", "snapshot_date"])


def assert_same_list(tables: dict, as_of: dt.date) -> pd.DataFrame:
    full = weekly_features(tables, as_of)
    past = weekly_features(truncate(tables, pd.Timestamp(as_of)), as_of)
    assert list(full.index) == list(past.index)  # the same accounts, at as-of and a week before
    pd.testing.assert_frame_equal(full, past[full.columns], check_exact=False, rtol=1e-9)  # so the same scores
    return full


@pytest.mark.parametrize("seed", [1, 4])
def test_the_export_truncated_at_as_of_gives_the_same_accounts_and_features(seed):
    tables = random_export(n_accounts=8, seed=seed, days=480, usage_per_day=1)
    k = tables["contracts"]
    # the as-of dates where a renewal booked later used to matter: a few days after each renewed term's end
    renewed = k.sort_values(["account_id", "start_date"])
    ends = renewed.loc[renewed["account_id"].eq(renewed["account_id"].shift(-1)), "end_date"]
    for end in ends.sort_values().iloc[:4]:
        assert_same_list(tables, (end + pd.Timedelta(days=5)).date())


def test_an_account_whose_renewal_is_not_booked_yet_is_on_the_list():
    tables = {
        "accounts": accounts({"account_id": "O"}, {"account_id": "R"}, {"account_id": "C"}),
        "contracts": contracts(
            {"account_id": "O", "start_date": "2025-01-01", "end_date": "2025-06-30"},
            {"account_id": "R", "start_date": "2025-01-01", "end_date": "2025-06-30"},
            {"account_id": "R", "start_date": "2025-07-10", "end_date": "2026-07-10"},
            {"account_id": "C", "start_date": "2025-01-01", "end_date": "2025-12-31"},
        ),
    }
    full = assert_same_list(tables, dt.date(2025, 7, 5))
    now = full.xs(pd.Timestamp("2025-07-05"), level="snapshot_date")
    assert sorted(now.index) == ["C", "O", "R"]
    assert now["renewal_overdue_days"].to_dict() == {"C": 0.0, "O": 5.0, "R": 5.0}
