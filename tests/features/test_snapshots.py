import pandas as pd
import pytest
from canonical_frames import accounts, contracts, emails, truncate_contracts

from features.export_date import export_last_date
from features.snapshots import LABEL_COLUMNS, build_grid, normalise_dates, snapshot_dates

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


def renewal_rows(grid: pd.DataFrame) -> dict[tuple[str, str], tuple]:
    return {
        (r.account_id, r.snapshot_date.strftime("%Y-%m-%d")): (
            r.term_end.strftime("%Y-%m-%d"),
            None if pd.isna(r.renewal_label) else int(r.renewal_label),
        )
        for r in grid.itertuples()
    }


def test_renewal_labels_by_hand(three_accounts_contracts):
    """Whether the term covering s renews, for every snapshot of it: months ahead, not only in the last 90 days."""
    grid = build_grid(three_accounts_contracts, DATES, horizon_days=90, grace_days=30, last_date=LAST)
    assert renewal_rows(grid) == {
        # A's first term (to 07-01) renews on 07-11, within grace: 0 from its first snapshot, also while
        # overdue (07-05: the renewal is booked after s, the label still knows it); its second term
        # ends 2026-01-01, after the export: not yet observed
        ("A", "2025-02-03"): ("2025-07-01", 0),
        ("A", "2025-04-15"): ("2025-07-01", 0),
        ("A", "2025-04-16"): ("2025-07-01", 0),
        ("A", "2025-05-01"): ("2025-07-01", 0),
        ("A", "2025-07-05"): ("2025-07-01", 0),
        ("A", "2025-07-11"): ("2025-07-01", 0),
        ("A", "2025-07-12"): ("2026-01-01", None),
        # B is cancelled on 04-15: its term ends there, unrenewed, on every snapshot of it
        ("B", "2025-02-03"): ("2025-04-15", 1),
        ("B", "2025-04-15"): ("2025-04-15", 1),
        # C's first term ends 05-01 with no renewal within grace: 1 on each of its snapshots, 131 days ahead too;
        # its second term (to 12-01) is not over by the export: unknown
        ("C", "2025-02-03"): ("2025-05-01", 1),
        ("C", "2025-04-15"): ("2025-05-01", 1),
        ("C", "2025-04-16"): ("2025-05-01", 1),
        ("C", "2025-05-01"): ("2025-05-01", 1),
        ("C", "2025-07-05"): ("2025-12-01", None),
        ("C", "2025-07-11"): ("2025-12-01", None),
        ("C", "2025-07-12"): ("2025-12-01", None),
    }


def test_an_overlapping_contract_makes_the_current_term_the_one_ending_last():
    book = contracts(
        {"account_id": "O", "start_date": "2024-01-01", "end_date": "2024-12-31"},
        {"account_id": "O", "start_date": "2024-06-01", "end_date": "2025-05-31"},  # an add-on running longer
    )
    grid = build_grid(book, normalise_dates(["2024-03-04", "2024-07-01"]), 90, 30, LAST)
    assert renewal_rows(grid) == {("O", "2024-03-04"): ("2024-12-31", 0), ("O", "2024-07-01"): ("2025-05-31", 1)}


def test_grid_dtypes(three_accounts_contracts):
    grid = build_grid(three_accounts_contracts, DATES, 90, 30, LAST)
    assert list(grid.columns) == ["account_id", "snapshot_date", *LABEL_COLUMNS]
    assert str(grid["account_id"].dtype) == "string"
    assert grid["snapshot_date"].dtype == "datetime64[ns]"
    assert str(grid["label"].dtype) == "Int8"
    assert grid["churn_date"].dtype == "datetime64[ns]" and grid["term_end"].dtype == "datetime64[ns]"
    assert str(grid["renewal_label"].dtype) == "Int8"


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


# ---------------------------------------------------------------- membership from the past only

LATER = pd.Timestamp("2026-12-31")  # every horizon and grace period of these tests is observed
AROUND_THE_END = normalise_dates(
    ["2025-06-30", "2025-07-01", "2025-07-10", "2025-07-11", "2025-07-30", "2025-07-31", "2025-08-15"]
)


@pytest.fixture
def overdue_contracts() -> pd.DataFrame:
    return contracts(
        # O's term ends 2025-06-30 and nobody renews: overdue for the 30-day grace period, then gone
        {"account_id": "O", "start_date": "2025-01-01", "end_date": "2025-06-30"},
        # R's renewal is booked 10 days after the end: overdue until it starts, then covered
        {"account_id": "R", "start_date": "2025-01-01", "end_date": "2025-06-30"},
        {"account_id": "R", "start_date": "2025-07-10", "end_date": "2026-07-10"},
        # X cancels on 2025-06-20, before its end date: gone after the cancel date, no grace period
        {"account_id": "X", "start_date": "2025-01-01", "end_date": "2025-12-31", "cancel_date": "2025-06-20"},
        # Y cancels on 2025-06-25 and signs a new contract on 2025-07-05 (within grace): not a churn,
        # but out of the grid between the cancellation and the new contract's start
        {"account_id": "Y", "start_date": "2025-01-01", "end_date": "2025-12-31", "cancel_date": "2025-06-25"},
        {"account_id": "Y", "start_date": "2025-07-05", "end_date": "2026-07-05"},
    )


def test_an_overdue_renewal_stays_in_the_grid_through_the_grace_period(overdue_contracts):
    rows = as_rows(build_grid(overdue_contracts, AROUND_THE_END, 90, 30, LATER))
    # without a renewal: in the grid up to end + 30 days, label 1, churn date the term's end (before s)
    assert {k: v for k, v in rows.items() if k[0] == "O"} == {
        ("O", "2025-06-30"): (1, "2025-06-30"),
        ("O", "2025-07-01"): (1, "2025-06-30"),
        ("O", "2025-07-10"): (1, "2025-06-30"),
        ("O", "2025-07-11"): (1, "2025-06-30"),
        ("O", "2025-07-30"): (1, "2025-06-30"),
    }
    # with the renewal booked 10 days late: the same membership up to the renewal, label 0
    assert {k: v for k, v in rows.items() if k[0] == "R"} == {(a, d): (0, None) for a, d in rows if a == "R"}
    assert sorted(d for a, d in rows if a == "R") == [d.strftime("%Y-%m-%d") for d in AROUND_THE_END]


def test_no_grace_period_after_a_cancellation(overdue_contracts):
    dates = normalise_dates(["2025-06-20", "2025-06-21", "2025-06-25", "2025-06-26", "2025-07-05", "2025-07-06"])
    rows = as_rows(build_grid(overdue_contracts, dates, 90, 30, LATER))
    assert {k: v for k, v in rows.items() if k[0] == "X"} == {("X", "2025-06-20"): (1, "2025-06-20")}
    # Y's new contract continues the spell (label 0), but the gap after the cancellation is not active
    assert {k: v for k, v in rows.items() if k[0] == "Y"} == {
        ("Y", "2025-06-20"): (0, None),
        ("Y", "2025-06-21"): (0, None),
        ("Y", "2025-06-25"): (0, None),
        ("Y", "2025-07-06"): (0, None),
    }


def test_an_unconfirmed_overdue_churn_is_scored_not_labelled(overdue_contracts):
    # the export ends 2025-07-20: O's term end + 30 days is not observed yet, and neither is R's horizon
    rows = as_rows(build_grid(overdue_contracts, normalise_dates(["2025-07-11"]), 90, 30, pd.Timestamp("2025-07-20")))
    assert rows[("O", "2025-07-11")] == (None, None) and rows[("R", "2025-07-11")] == (None, None)


def test_the_grid_does_not_change_when_renewals_and_cancellations_are_not_yet_known(overdue_contracts):
    for s in AROUND_THE_END.append(normalise_dates(["2025-06-21", "2025-06-26", "2025-07-05", "2025-07-06"])):
        full = build_grid(overdue_contracts, pd.DatetimeIndex([s]), 90, 30, LATER)
        past = build_grid(truncate_contracts(overdue_contracts, s), pd.DatetimeIndex([s]), 90, 30, LATER)
        assert sorted(full["account_id"]) == sorted(past["account_id"]), s
