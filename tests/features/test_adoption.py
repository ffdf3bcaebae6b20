import math

import pandas as pd
import pytest
from canonical_frames import contracts, table

from features.adoption import adoption_features

CONTRACTS = contracts(
    {"account_id": "A", "start_date": "2024-06-01", "end_date": "2025-06-01", "seats": 4},
    {"account_id": "B", "start_date": "2024-06-01", "end_date": "2025-06-01", "seats": None},
    {"account_id": "C", "start_date": "2024-06-01", "end_date": "2025-06-01", "seats": 10},
)


def use(account, user, feature, at, count=1):
    return {"account_id": account, "user_id": user, "feature": feature, "event_at": at, "event_count": count}


USAGE = table(
    "usage_events",
    [
        use("A", "u1", "f1", "2025-03-20 10:00", 3),
        use("A", "u2", "f2", "2025-03-25 23:59", 1),
        use("A", "u1", "f1", "2025-02-10 08:00", 2),  # base window [2025-01-01, 2025-03-02)
        use("A", "u3", "f1", "2024-12-01 08:00", 4),  # older than 90 days
        use("B", "u9", "f3", "2025-01-05 12:00", 1),
        use("B", "u9", "f4", "2025-04-01 00:00", 1),  # at the snapshot: not seen, not in the catalogue
    ],
)
S = "2025-04-01"


def features():
    grid = pd.DataFrame(
        {"account_id": pd.Series(["A", "B", "C"], dtype="string"), "snapshot_date": pd.to_datetime([S] * 3)}
    )
    out = adoption_features({"usage_events": USAGE, "contracts": CONTRACTS}, grid)
    return {r["account_id"]: r for r in out.to_dict("records")}


def test_active_account():
    a = features()["A"]
    assert a["feature_breadth_share_30d"] == pytest.approx(2 / 3)  # f1, f2 of the catalogue f1, f2, f3
    assert a["seat_utilisation_ratio_30d"] == pytest.approx(0.5)  # u1, u2 of 4 seats
    assert a["usage_trend_ratio_30d"] == pytest.approx(4.0)  # 4 events vs 2 / 2
    assert a["usage_since_last_days"] == 7.0  # 2025-03-25 -> 2025-04-01
    assert a["feature_adopted_count_90d"] == 1.0  # f2; f1 was first used in December


def test_quiet_account_without_seats():
    b = features()["B"]
    assert b["feature_breadth_share_30d"] == 0.0
    assert math.isnan(b["seat_utilisation_ratio_30d"])  # seats unknown
    assert b["usage_trend_ratio_30d"] == 0.0  # 0 events vs 1 / 2
    assert b["usage_since_last_days"] == 86.0  # 2025-01-05 -> 2025-04-01
    assert b["feature_adopted_count_90d"] == 1.0  # f3 on 2025-01-05


def test_account_that_never_used_the_product():
    c = features()["C"]
    assert c["feature_breadth_share_30d"] == 0.0
    assert c["seat_utilisation_ratio_30d"] == 0.0
    assert math.isnan(c["usage_trend_ratio_30d"])  # no base to compare with
    assert math.isnan(c["usage_since_last_days"])
    assert c["feature_adopted_count_90d"] == 0.0
