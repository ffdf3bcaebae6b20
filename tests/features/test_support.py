import math

import pandas as pd
import pytest
from canonical_frames import emails, table

from features.support import proactive_features, ticket_features


def ticket(tid, created, first=None, closed=None, priority="normal", escalated=False, csat=None):
    return {
        "ticket_id": tid,
        "account_id": "A",
        "created_at": created,
        "first_response_at": first,
        "closed_at": closed,
        "priority": priority,
        "is_escalated": escalated,
        "csat": csat,
    }


TICKETS = table(
    "tickets",
    [
        ticket("t1", "2025-03-01 10:00", "2025-03-01 12:30", "2025-03-03 09:00", "high", True, 4.0),
        ticket("t2", "2025-03-20 08:00", "2025-03-20 09:00", None, escalated=True),  # still open; escalated when?
        ticket("t3", "2025-03-30 10:00", "2025-04-02 10:00", "2025-04-03 10:00", "urgent"),  # open at s
        ticket("t4", "2024-11-01 10:00", "2024-11-01 11:00", "2024-11-05 10:00", "low", csat=2.0),
        ticket("t5", "2025-04-01 00:00", None, None, "urgent"),  # at s: unseen
    ],
)
EMAILS = emails(
    ("A", "p1", "2025-03-10 09:00", "outbound"),  # we start the thread: proactive
    ("A", "p1", "2025-03-12 09:00", "outbound"),  # follow-up, still no customer message: proactive
    ("A", "p1", "2025-03-13 09:00", "inbound"),
    ("A", "p1", "2025-03-14 09:00", "outbound"),  # a reply
    ("A", "p2", "2025-03-15 09:00", "inbound"),
    ("A", "p2", "2025-03-16 09:00", "outbound"),  # a reply
    ("A", "p3", "2024-12-01 09:00", "outbound"),  # proactive but older than 90 days
)
GRID = pd.DataFrame(
    {"account_id": pd.Series(["A", "B"], dtype="string"), "snapshot_date": pd.to_datetime(["2025-04-01"] * 2)}
)


def test_ticket_features_by_hand():
    out = ticket_features({"tickets": TICKETS}, GRID).set_index("account_id")
    a, b = out.loc["A"], out.loc["B"]
    assert a["ticket_opened_count_90d"] == 3.0  # t1, t2, t3
    assert a["ticket_urgent_count_90d"] == 2.0  # t1 high, t3 urgent
    assert a["ticket_first_response_median_hours_90d"] == pytest.approx(1.75)  # 2.5 h and 1 h; t3's is later
    assert a["ticket_open_count"] == 2.0  # t2, t3
    assert a["ticket_escalated_count_90d"] == 1.0  # t1; t2 is still open, its escalation may postdate s
    assert a["ticket_csat_mean_score_180d"] == pytest.approx(3.0)  # t1 4 and t4 2
    assert b["ticket_opened_count_90d"] == 0.0 and b["ticket_open_count"] == 0.0
    assert math.isnan(b["ticket_first_response_median_hours_90d"])
    assert math.isnan(b["ticket_csat_mean_score_180d"])


def test_proactive_touches_are_outbound_without_an_earlier_inbound():
    out = proactive_features({"emails": EMAILS}, GRID).set_index("account_id")
    assert out.loc["A", "proactive_touch_count_90d"] == 2.0
    assert out.loc["B", "proactive_touch_count_90d"] == 0.0
