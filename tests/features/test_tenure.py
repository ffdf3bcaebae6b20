import math

import pandas as pd
from canonical_frames import contracts

from features.tenure import tenure_features

CONTRACTS = contracts(
    {"account_id": "A", "start_date": "2023-01-01", "end_date": "2024-01-01", "arr": 1000.0, "seats": 10},
    {"account_id": "A", "start_date": "2024-01-01", "end_date": "2025-01-01", "arr": 800.0, "seats": 12},
    {"account_id": "A", "start_date": "2025-01-01", "end_date": "2026-01-01", "arr": 1200.0, "seats": 9},
    {"account_id": "B", "start_date": "2024-03-01", "end_date": "2025-03-01", "arr": 500.0, "seats": None},
)


def features_at(*pairs):
    grid = pd.DataFrame(
        {
            "account_id": pd.Series([a for a, _ in pairs], dtype="string"),
            "snapshot_date": pd.to_datetime([s for _, s in pairs]),
        }
    )
    out = tenure_features({"contracts": CONTRACTS}, grid)
    return {(r["account_id"], r["snapshot_date"].strftime("%Y-%m-%d")): r for r in out.to_dict("records")}


def test_second_term_with_a_downsell():
    a = features_at(("A", "2024-06-01"))["A", "2024-06-01"]
    assert a["tenure_length_days"] == 517.0
    assert a["tenure_first_year_flag"] == 0.0
    assert a["renewal_countdown_days"] == 214.0
    assert a["contract_arr_current_currency"] == 800.0
    assert a["contract_arr_change_ratio_last_renewal"] == 0.8
    assert a["contract_seats_change_seats_last_renewal"] == 2.0
    assert a["contract_renewals_count"] == 1.0


def test_a_renewal_starting_on_the_snapshot_day_is_not_yet_known():
    f = features_at(("A", "2025-01-01"), ("A", "2025-01-02"))
    on, after = f["A", "2025-01-01"], f["A", "2025-01-02"]
    assert on["renewal_countdown_days"] == 0.0 and on["contract_arr_current_currency"] == 800.0
    assert on["contract_renewals_count"] == 1.0
    assert after["renewal_countdown_days"] == 364.0 and after["contract_arr_current_currency"] == 1200.0
    assert after["contract_arr_change_ratio_last_renewal"] == 1.5
    assert after["contract_seats_change_seats_last_renewal"] == -3.0
    assert after["contract_renewals_count"] == 2.0


def test_first_year_account():
    b = features_at(("B", "2024-06-01"))["B", "2024-06-01"]
    assert b["tenure_length_days"] == 92.0
    assert b["tenure_first_year_flag"] == 1.0
    assert b["renewal_countdown_days"] == 273.0
    assert b["contract_renewals_count"] == 0.0
    assert math.isnan(b["contract_arr_change_ratio_last_renewal"])
    assert math.isnan(b["contract_seats_change_seats_last_renewal"])


def nan_as_none(values):
    return [None if math.isnan(v) else v for v in values]


def test_renewal_countdown_and_overdue_days_split_the_distance_to_the_terms_end():
    # A's second term ends 2025-01-01 and the third starts that day: never overdue
    f = features_at(("A", "2024-12-31"), ("A", "2025-01-01"), ("A", "2025-01-02"))
    assert [f["A", d]["renewal_countdown_days"] for d in ("2024-12-31", "2025-01-01", "2025-01-02")] == [1, 0, 364]
    assert [f["A", d]["renewal_overdue_days"] for d in ("2024-12-31", "2025-01-01", "2025-01-02")] == [0, 0, 0]
    # B's term ends 2025-03-01 with no renewal booked: no countdown once it has ended, overdue days count up
    days = ("2025-02-27", "2025-03-01", "2025-03-02", "2025-03-31")
    b = features_at(*[("B", d) for d in days])
    assert nan_as_none([b["B", d]["renewal_countdown_days"] for d in days]) == [2, 0, None, None]
    assert [b["B", d]["renewal_overdue_days"] for d in days] == [0, 0, 1, 30]


def test_a_renewal_booked_late_ends_the_overdue_days_only_once_it_has_started():
    booked_late = contracts(
        {"account_id": "R", "start_date": "2025-01-01", "end_date": "2025-06-30"},
        {"account_id": "R", "start_date": "2025-07-10", "end_date": "2026-07-10"},
    )
    grid = pd.DataFrame(
        {
            "account_id": pd.Series(["R"] * 4, dtype="string"),
            "snapshot_date": pd.to_datetime(["2025-07-01", "2025-07-10", "2025-07-11", "2025-07-12"]),
        }
    )
    out = tenure_features({"contracts": booked_late}, grid)
    assert out["renewal_overdue_days"].tolist() == [1.0, 10.0, 0.0, 0.0]
    assert nan_as_none(out["renewal_countdown_days"]) == [None, None, 364.0, 363.0]


def test_a_cancellation_ends_the_term_once_it_is_known():
    cancelled = contracts(
        {"account_id": "X", "start_date": "2025-01-01", "end_date": "2025-12-31", "cancel_date": "2025-06-20"},
    )
    grid = pd.DataFrame(
        {
            "account_id": pd.Series(["X"] * 3, dtype="string"),
            "snapshot_date": pd.to_datetime(["2025-06-20", "2025-06-21", "2025-06-30"]),
        }
    )
    out = tenure_features({"contracts": cancelled}, grid)
    # up to the cancel date the planned end is all that is known; after it, the term ended on that day
    assert nan_as_none(out["renewal_countdown_days"]) == [194.0, None, None]
    assert out["renewal_overdue_days"].tolist() == [0.0, 1.0, 10.0]
