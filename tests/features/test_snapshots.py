import pandas as pd
import pytest
from canonical_frames import accounts, contracts, emails

from features.export_date import export_last_date
from features.snapshots import build_grid, normalise_dates, snapshot_dates

LAST = pd.Timestamp("2025-09-30")
DATES = normalise_dates(
    ["2025-01-01", "2025-02-03", "2025-04-15", "2025-04-16", "2025-05-01", "2025-07-05", "2025-07-11", "2025-07-12"]
)


@pytest.fixture
def three_accounts_contracts() -> pd.DataFrame:
    return contracts(
        # A renews after a 10-day gap (within grace): one spell to 2026-01-01
        {"account_id": "A", "start_date": "2025-01-01", "end_date": "2025-07-01"},
        {"account_id": "A", "start_date": "2025-07-11", "end_date": "2026-01-01"},
        # B is cancelled on 2025-04-15, before its end date
        {
            "account_id": "B",
            "start_date": "2025-01-01",
            "end_date": "2025-06-01",
            "status": "cancelled",
            "cancel_date": "2025-04-15",
        },
        # C comes back after 61 days (beyond grace): two spells, a churn on 2025-05-01
        {"account_id": "C", "start_date": "2025-02-01", "end_date": "2025-05-01"},
        {"account_id": "C", "start_date": "2025-07-01", "end_date": "2025-12-01"},
    )


def as_rows(grid: pd.DataFrame) -> dict[tuple[str, str], tuple]:
    return {
        (r.account_id, r.snapshot_date.strftime("%Y-%m-%d")): (
            None if pd.isna(r.label) else int(r.label),
            None if pd.isna(r.churn_date) else r.churn_date.strftime("%Y-%m-%d"),
        )
        for r in grid.itertuples()
    }


def test_labels_and_active_rows_by_hand(three_accounts_contracts):
    grid = build_grid(three_accounts_contracts, DATES, horizon_days=90, grace_days=30, last_date=LAST)
    assert as_rows(grid) == {
        # A: active from the day after its start, through the grace gap 07-01..07-11; churn 2026-01-01
        # is not confirmed by 2025-09-30, labels 0 while s + 120 <= 2025-09-30, else unknown
        ("A", "2025-02-03"): (0, None),
        ("A", "2025-04-15"): (0, None),
        ("A", "2025-04-16"): (0, None),
        ("A", "2025-05-01"): (0, None),
        ("A", "2025-07-05"): (None, None),
        ("A", "2025-07-11"): (None, None),
        ("A", "2025-07-12"): (None, None),
        # B churns on its cancel date; active up to and including it
        ("B", "2025-02-03"): (1, "2025-04-15"),
        ("B", "2025-04-15"): (1, "2025-04-15"),
        # C churns on 2025-05-01, inactive in the 61-day gap, then unknown in its second spell
        ("C", "2025-02-03"): (1, "2025-05-01"),
        ("C", "2025-04-15"): (1, "2025-05-01"),
        ("C", "2025-04-16"): (1, "2025-05-01"),
        ("C", "2025-05-01"): (1, "2025-05-01"),
        ("C", "2025-07-05"): (None, None),
        ("C", "2025-07-11"): (None, None),
        ("C", "2025-07-12"): (None, None),
    }


def test_grid_dtypes(three_accounts_contracts):
    grid = build_grid(three_accounts_contracts, DATES, 90, 30, LAST)
    assert list(grid.columns) == ["account_id", "snapshot_date", "label", "churn_date"]
    assert str(grid["account_id"].dtype) == "string"
    assert grid["snapshot_date"].dtype == "datetime64[ns]"
    assert str(grid["label"].dtype) == "Int8"
    assert grid["churn_date"].dtype == "datetime64[ns]"


def test_churn_within_horizon_edge_is_exclusive(three_accounts_contracts):
    # B churns 2025-04-15: a snapshot exactly 90 days before (2025-01-15) is labelled 0, a day later 1
    grid = build_grid(three_accounts_contracts, normalise_dates(["2025-01-15", "2025-01-16"]), 90, 30, LAST)
    b = grid[grid.account_id == "B"].set_index(grid.snapshot_date[grid.account_id == "B"].dt.strftime("%m-%d"))
    assert b.loc["01-15", "label"] == 0 and b.loc["01-16", "label"] == 1


def test_regular_snapshot_dates_include_the_last_day():
    dates = snapshot_dates("2025-01-06", "2025-01-27", 7)
    assert [d.strftime("%Y-%m-%d") for d in dates] == ["2025-01-06", "2025-01-13", "2025-01-20", "2025-01-27"]


def test_explicit_dates_are_sorted_unique_midnights():
    dates = normalise_dates(["2025-03-10", pd.Timestamp("2025-03-03 15:00"), "2025-03-10"])
    assert [d.strftime("%Y-%m-%d %H:%M") for d in dates] == ["2025-03-03 00:00", "2025-03-10 00:00"]


def test_export_last_date_ignores_planned_contract_ends(three_accounts_contracts):
    tables = {
        "accounts": accounts({"account_id": "A"}),
        "contracts": three_accounts_contracts,
        "emails": emails(("A", "t", "2025-08-14 23:59", "inbound")),
    }
    assert export_last_date(tables) == pd.Timestamp("2025-08-14")
    # without any event table, the latest contract start stands in
    assert export_last_date({"accounts": tables["accounts"], "contracts": three_accounts_contracts}) == pd.Timestamp(
        "2025-07-11"
    )
