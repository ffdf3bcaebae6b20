import math

import pandas as pd
import pytest
from canonical_frames import accounts, emails

from features.duck import connect, query
from features.responsiveness import business_minutes_expr, local_time_expr, responsiveness_features

ACCOUNTS = accounts(
    {"account_id": "ny", "timezone": "America/New_York"},
    {"account_id": "pa", "timezone": "Europe/Paris"},
    {"account_id": "ut"},  # no time zone: UTC
    {"account_id": "zz", "timezone": "Europe/Paris"},  # no e-mails at all
)
EMAILS = emails(
    # ny: Mon 2025-01-20 09:00 EST -> 19:00 EST the same day: 10 calendar h, 9 business h
    ("ny", "t0", "2025-01-20 14:00", "inbound"),
    ("ny", "t0", "2025-01-21 00:00", "outbound"),
    # Fri 2025-03-07 17:00 EST -> Mon 2025-03-10 10:00 EDT, across the weekend and the 03-09 DST change:
    # 64 calendar h (real time, not the 65 h of wall clocks), 1 h Friday + 1 h Monday = 2 business h
    ("ny", "t1", "2025-03-07 22:00", "inbound"),
    ("ny", "t1", "2025-03-10 14:00", "outbound"),
    # pa: the same instants in Paris: Fri 23:00 CET (closed) -> Mon 15:00 CET: 6 business h
    ("pa", "t2", "2025-03-07 22:00", "inbound"),
    ("pa", "t2", "2025-03-10 14:00", "outbound"),
    # ut: an acknowledgement after 1.5 h counts as the reply, the full answer does not matter
    ("ut", "t3", "2025-03-11 10:00", "inbound"),
    ("ut", "t3", "2025-03-11 11:30", "outbound"),
    ("ut", "t3", "2025-03-12 09:00", "outbound"),
    # then Wed 10:00 -> Fri 12:00: 50 calendar h, 8 + 9 + 3 = 20 business h
    ("ut", "t3", "2025-03-12 10:00", "inbound"),
    ("ut", "t3", "2025-03-14 12:00", "outbound"),
)


def features_at(*pairs: tuple[str, str]) -> dict[tuple[str, str], dict]:
    grid = pd.DataFrame(
        {
            "account_id": pd.Series([a for a, _ in pairs], dtype="string"),
            "snapshot_date": pd.to_datetime([s for _, s in pairs]),
        }
    )
    out = responsiveness_features({"emails": EMAILS, "accounts": ACCOUNTS}, grid, (9, 18))
    return {(r["account_id"], r["snapshot_date"].strftime("%Y-%m-%d")): r for r in out.to_dict("records")}


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-9)


def test_weekend_and_dst_new_york_vs_paris():
    f = features_at(("ny", "2025-03-12"), ("pa", "2025-03-12"))
    ny, pa = f["ny", "2025-03-12"], f["pa", "2025-03-12"]
    assert ny["reply_latency_median_hours_30d"] == pytest.approx(64.0)
    assert ny["reply_latency_median_business_hours_30d"] == pytest.approx(2.0)
    assert pa["reply_latency_median_hours_30d"] == pytest.approx(64.0)
    assert pa["reply_latency_median_business_hours_30d"] == pytest.approx(6.0)
    # the 90-day window also holds January's 10 h / 9 business h reply
    assert ny["reply_latency_median_hours_90d"] == pytest.approx(37.0)
    assert ny["reply_latency_p90_hours_90d"] == pytest.approx(10 + 0.9 * 54)
    assert ny["reply_latency_median_business_hours_90d"] == pytest.approx(5.5)
    assert ny["reply_latency_p90_business_hours_90d"] == pytest.approx(2 + 0.9 * 7)
    assert ny["reply_within24h_share_90d"] == pytest.approx(0.5)
    assert ny["reply_over48h_count_90d"] == 1.0
    assert ny["reply_unanswered_count_90d"] == 0.0
    assert math.isnan(ny["reply_unanswered_oldest_hours_90d"])


def test_a_reply_on_the_snapshot_day_is_not_yet_visible():
    ny = features_at(("ny", "2025-03-10"))["ny", "2025-03-10"]
    assert ny["reply_unanswered_count_90d"] == 1.0
    assert ny["reply_unanswered_oldest_hours_90d"] == pytest.approx(50.0)  # Fri 22:00 -> Mon 00:00 UTC
    assert ny["reply_over48h_count_90d"] == 1.0  # already waited 50 h
    assert math.isnan(ny["reply_latency_median_hours_30d"])
    assert ny["reply_latency_median_hours_90d"] == pytest.approx(10.0)


def test_acknowledgement_counts_and_pending_reply_is_unanswered():
    ut = features_at(("ut", "2025-03-13"))["ut", "2025-03-13"]
    assert ut["reply_latency_median_hours_30d"] == pytest.approx(1.5)
    assert ut["reply_latency_median_business_hours_30d"] == pytest.approx(1.5)
    assert ut["reply_unanswered_count_90d"] == 1.0
    assert ut["reply_unanswered_oldest_hours_90d"] == pytest.approx(14.0)
    assert ut["reply_within24h_share_90d"] == pytest.approx(1.0)  # the 14 h-old e-mail is not judged yet
    assert ut["reply_over48h_count_90d"] == 0.0


def test_two_replies_percentiles_and_shares():
    ut = features_at(("ut", "2025-03-15"))["ut", "2025-03-15"]
    assert ut["reply_latency_median_hours_30d"] == pytest.approx(25.75)
    assert ut["reply_latency_p90_hours_30d"] == pytest.approx(1.5 + 0.9 * 48.5)
    assert ut["reply_latency_median_business_hours_30d"] == pytest.approx(10.75)
    assert ut["reply_latency_p90_business_hours_30d"] == pytest.approx(1.5 + 0.9 * 18.5)
    assert ut["reply_within24h_share_90d"] == pytest.approx(0.5)
    assert ut["reply_over48h_count_90d"] == 1.0
    assert ut["reply_unanswered_count_90d"] == 0.0


def test_no_emails_means_no_latency_but_zero_counts():
    zz = features_at(("zz", "2025-03-15"))["zz", "2025-03-15"]
    assert math.isnan(zz["reply_latency_median_hours_90d"])
    assert math.isnan(zz["reply_within24h_share_90d"])
    assert zz["reply_unanswered_count_90d"] == 0.0
    assert zz["reply_over48h_count_90d"] == 0.0


@pytest.mark.parametrize(
    "tz, start, end, hours",
    [
        ("UTC", "2025-03-07 17:00", "2025-03-10 10:00", 2.0),  # Friday evening to Monday morning
        ("UTC", "2025-03-08 12:00", "2025-03-09 12:00", 0.0),  # all weekend
        ("UTC", "2025-03-10 07:00", "2025-03-17 07:00", 45.0),  # one full week
        ("America/New_York", "2025-03-07 22:00", "2025-03-10 14:00", 2.0),
        ("America/New_York", "2025-11-03 13:00", "2025-11-03 23:00", 9.0),  # after the November change: EST
        ("Europe/Paris", "2025-03-28 16:00", "2025-03-31 08:00", 2.0),  # Fri 17:00 CET -> Mon 10:00 CEST
    ],
)
def test_business_hours_between_two_utc_instants(tz, start, end, hours):
    con = connect({})

    def expr(ts):
        return business_minutes_expr(local_time_expr(f"TIMESTAMP '{ts}'", f"'{tz}'"), 9, 18)

    got = query(con, f"SELECT ({expr(end)} - {expr(start)}) / 60.0 AS h")["h"].iloc[0]
    assert got == pytest.approx(hours)
