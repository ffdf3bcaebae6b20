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
