import math

import pandas as pd
from canonical_frames import contracts, table

from features.qbr import qbr_features

CONTRACTS = contracts(
    {"account_id": "A", "start_date": "2024-06-01", "end_date": "2025-06-01"},
    {"account_id": "B", "start_date": "2024-06-01", "end_date": "2025-04-01"},
)
MEETINGS = table(
    "meetings",
    [
        {"meeting_id": "m1", "account_id": "A", "start_at": "2024-07-10 10:00", "meeting_type": "qbr"},
        {"meeting_id": "m2", "account_id": "A", "start_at": "2025-02-20 15:00", "meeting_type": "qbr"},
        {"meeting_id": "m3", "account_id": "A", "start_at": "2025-03-01 10:00", "meeting_type": "call"},
        {"meeting_id": "m4", "account_id": "A", "start_at": "2025-03-10 00:00", "meeting_type": "qbr"},  # at s: unseen
    ],
)


def features_at(*pairs):
    grid = pd.DataFrame(
        {
            "account_id": pd.Series([a for a, _ in pairs], dtype="string"),
            "snapshot_date": pd.to_datetime([s for _, s in pairs]),
        }
    )
    out = qbr_features({"meetings": MEETINGS, "contracts": CONTRACTS}, grid)
    return {(r["account_id"], r["snapshot_date"].strftime("%Y-%m-%d")): r for r in out.to_dict("records")}


def test_inside_the_pre_renewal_window():
    a = features_at(("A", "2025-03-10"))["A", "2025-03-10"]
    assert a["qbr_since_last_days"] == 18.0  # 2025-02-20 -> 2025-03-10
    assert a["qbr_held_count_365d"] == 2.0
    assert a["qbr_pre_renewal_flag_120d"] == 1.0  # window [2025-02-01, s) holds the 02-20 QBR
    assert a["meeting_held_count_90d"] == 2.0  # the 02-20 QBR and the 03-01 call


def test_before_the_pre_renewal_window_opens():
    a = features_at(("A", "2025-01-15"))["A", "2025-01-15"]
    assert a["qbr_since_last_days"] == 189.0  # 2024-07-10 -> 2025-01-15
    assert a["qbr_held_count_365d"] == 1.0
    assert math.isnan(a["qbr_pre_renewal_flag_120d"])  # s <= 2025-06-01 - 120 days: nothing to judge yet
    assert a["meeting_held_count_90d"] == 0.0


def test_a_qbr_at_snapshot_midnight_is_not_yet_seen():
    f = features_at(("A", "2025-03-10"), ("A", "2025-03-11"))
    assert f["A", "2025-03-10"]["qbr_since_last_days"] == 18.0
    assert f["A", "2025-03-11"]["qbr_since_last_days"] == 1.0


def test_no_meetings_missed_pre_renewal_qbr():
    b = features_at(("B", "2025-03-10"))["B", "2025-03-10"]
    assert math.isnan(b["qbr_since_last_days"])
    assert b["qbr_held_count_365d"] == 0.0
    assert b["qbr_pre_renewal_flag_120d"] == 0.0  # window [2024-12-02, s) opened, no QBR in it
    assert b["meeting_held_count_90d"] == 0.0
