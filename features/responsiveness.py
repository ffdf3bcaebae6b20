"""Responsiveness: how long customer e-mails wait for our reply.

Per inbound e-mail, the *reply* is our next outbound message in the same thread (strictly
later; a short acknowledgement counts). Latency is measured in calendar hours (real elapsed
time) and in business hours of the account's time zone: Monday-Friday, ``business_hours``
local wall-clock hours, with both instants converted to local wall time first so DST shifts
are handled by the time-zone database, not by a fixed offset.

Point in time: at snapshot ``s`` an e-mail is visible when sent before ``s``; its reply only
when the reply was sent before ``s``. An e-mail whose reply comes at or after ``s`` is
*unanswered* at ``s``. Windows select inbound e-mails by their sent time, ``[s - W, s)``.

Unanswered e-mails are counted over the last 90 days only: closing "thanks!" messages that
never need a reply would otherwise pile up for ever.
"""

from __future__ import annotations

import logging
import zoneinfo

import pandas as pd

from features.catalogue import FeatureSpec
from features.duck import connect, finish, query

LOG = logging.getLogger("churn.features")

FAMILY = "responsiveness"
REQUIRES = ("emails",)


def _spec(name: str, label: str, phrase: str, unit: str, risk: int, signal: str = "responsiveness") -> FeatureSpec:
    return FeatureSpec(
        name=name, family=FAMILY, signal=signal, label=label, phrase=phrase, unit=unit, risk_direction=risk
    )


SPECS: list[FeatureSpec] = [
    _spec(
        "reply_latency_median_hours_30d",
        "Reply time, median, 30 days",
        "Customer e-mails wait {value} for a reply (median, last 30 days)",
        "hours",
        1,
    ),
    _spec(
        "reply_latency_median_business_hours_30d",
        "Reply time in business hours, median, 30 days",
        "Customer e-mails wait {value} of the customer's business hours for a reply (median, last 30 days)",
        "hours",
        1,
    ),
    _spec(
        "reply_latency_p90_hours_30d",
        "Reply time, p90, 30 days",
        "Customer e-mails wait {value} for a reply (slowest 10%, last 30 days)",
        "hours",
        1,
    ),
    _spec(
        "reply_latency_p90_business_hours_30d",
        "Reply time in business hours, p90, 30 days",
        "Customer e-mails wait {value} of the customer's business hours for a reply (slowest 10%, last 30 days)",
        "hours",
        1,
    ),
    _spec(
        "reply_latency_median_hours_90d",
        "Reply time, median, 90 days",
        "Customer e-mails wait {value} for a reply (median, last 90 days)",
        "hours",
        1,
    ),
    _spec(
        "reply_latency_median_business_hours_90d",
        "Reply time in business hours, median, 90 days",
        "Customer e-mails wait {value} of the customer's business hours for a reply (median, last 90 days)",
        "hours",
        1,
    ),
    _spec(
        "reply_latency_p90_hours_90d",
        "Reply time, p90, 90 days",
        "Customer e-mails wait {value} for a reply (slowest 10%, last 90 days)",
        "hours",
        1,
    ),
    _spec(
        "reply_latency_p90_business_hours_90d",
        "Reply time in business hours, p90, 90 days",
        "Customer e-mails wait {value} of the customer's business hours for a reply (slowest 10%, last 90 days)",
        "hours",
        1,
    ),
    _spec(
        "reply_within24h_share_90d",
        "Share answered within 24 h, 90 days",
        "{value} of customer e-mails were answered within 24 hours (last 90 days)",
        "share",
        -1,
    ),
    _spec(
        "reply_over48h_count_90d",
        "E-mails waiting over 48 h, 90 days",
        "{value} customer e-mails waited more than 48 hours for a reply (last 90 days)",
        "count",
        1,
    ),
    _spec(
        "reply_unanswered_count_90d",
        "Unanswered e-mails",
        "{value} customer e-mails from the last 90 days are still unanswered",
        "count",
        1,
    ),
    _spec(
        "reply_unanswered_oldest_hours_90d",
        "Oldest unanswered e-mail age",
        "The oldest unanswered customer e-mail has been waiting {value}",
        "hours",
        1,
    ),
]
NAMES = [s.name for s in SPECS]
COUNTS = ("reply_over48h_count_90d", "reply_unanswered_count_90d")


def business_minutes_expr(local_ts: str, open_hour: int, close_hour: int) -> str:
    """SQL for the business minutes from Monday 1970-01-05 00:00 to a local wall-clock time.

    Closed form (no calendar table): whole weeks give 5 working days each, the days before the
    current weekday in this week add up to 5, and today adds the clamped minutes past opening.
    The difference of two values is the business time between two instants.
    """
    day_len = (close_hour - open_hour) * 60
    days = f"date_diff('day', DATE '1970-01-05', CAST({local_ts} AS DATE))"
    weeks = f"CAST(floor({days} / 7.0) AS BIGINT)"
    weekday = f"({days} - 7 * {weeks})"
    minute_of_day = f"(hour({local_ts}) * 60 + minute({local_ts}) + second({local_ts}) / 60.0)"
    today = f"CASE WHEN {weekday} < 5 THEN least(greatest({minute_of_day} - {open_hour * 60}, 0), {day_len}) ELSE 0 END"
    return f"(({weeks} * 5 + least({weekday}, 5)) * {day_len} + {today})"


def local_time_expr(utc_ts: str, tz: str) -> str:
    """SQL for the local wall-clock time of a naive-UTC timestamp in IANA zone column ``tz``."""
    return f"timezone({tz}, CAST({utc_ts} AS TIMESTAMPTZ))"


def inbound_replies_sql(open_hour: int, close_hour: int) -> str:
    """One row per inbound e-mail with its reply time and latencies (calendar and business hours)."""
    biz_reply = business_minutes_expr(local_time_expr("reply_at", "tz"), open_hour, close_hour)
    biz_sent = business_minutes_expr(local_time_expr("sent_at", "tz"), open_hour, close_hour)
    return f"""
    WITH threaded AS (
        -- at equal times 'outbound' sorts first (DESC), so the reply must be strictly later
        SELECT account_id, sent_at, direction,
               min(CASE WHEN direction = 'outbound' THEN sent_at END) OVER (
                   PARTITION BY account_id, thread_id ORDER BY sent_at, direction DESC
                   ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS reply_at
        FROM emails
    ), inbound AS (
        SELECT t.account_id, t.sent_at, t.reply_at, coalesce(z.tz, 'UTC') AS tz
        FROM threaded t LEFT JOIN account_tz z ON z.account_id = t.account_id
        WHERE t.direction = 'inbound'
    )
    SELECT account_id, sent_at, reply_at,
           date_diff('second', sent_at, reply_at) / 3600.0 AS latency_hours,
           ({biz_reply} - {biz_sent}) / 60.0 AS latency_business_hours
    FROM inbound
    """


def responsiveness_sql(open_hour: int, close_hour: int) -> str:
    """Per (account, snapshot): latency percentiles, 24 h share, 48 h breaches, unanswered e-mails."""
    answered = "(reply_at IS NOT NULL AND reply_at < snapshot_date)"
    in30 = "sent_at >= snapshot_date - INTERVAL '30' DAY"
    waited = f"CASE WHEN {answered} THEN latency_hours ELSE date_diff('second', sent_at, snapshot_date) / 3600.0 END"
    # one sort per measure and window: quantile_cont with a list of quantiles gives both
    # percentiles at once (Spark: percentile(x, array(...))); the outer query unpacks the list
    # (DuckDB lists are 1-based: [1] is the median, [2] the 90th percentile)
    latency_quantiles = ",\n           ".join(
        f"quantile_cont(CASE WHEN {answered} AND {cond} THEN {column} END, [0.5, 0.9]) AS {alias}"
        for cond, column, alias in (
            (in30, "latency_hours", "q_hours_30d"),
            (in30, "latency_business_hours", "q_business_hours_30d"),
            ("TRUE", "latency_hours", "q_hours_90d"),
            ("TRUE", "latency_business_hours", "q_business_hours_90d"),
        )
    )
    return f"""
    SELECT account_id, snapshot_date,
           q_hours_30d[1] AS reply_latency_median_hours_30d,
           q_hours_30d[2] AS reply_latency_p90_hours_30d,
           q_business_hours_30d[1] AS reply_latency_median_business_hours_30d,
           q_business_hours_30d[2] AS reply_latency_p90_business_hours_30d,
           q_hours_90d[1] AS reply_latency_median_hours_90d,
           q_hours_90d[2] AS reply_latency_p90_hours_90d,
           q_business_hours_90d[1] AS reply_latency_median_business_hours_90d,
           q_business_hours_90d[2] AS reply_latency_p90_business_hours_90d,
           reply_within24h_share_90d, reply_over48h_count_90d, reply_unanswered_count_90d,
           reply_unanswered_oldest_hours_90d
    FROM (
    WITH replies AS ({inbound_replies_sql(open_hour, close_hour)}),
    sent_days AS (
        SELECT DISTINCT date_trunc('day', sent_at) AS day FROM replies
    ), day_snaps AS (
        -- snapshots are midnights, so "sent in [s - 90 d, s)" depends on the sent day only:
        -- a small (day, snapshot) table turns the range join into an equi-join
        SELECT d.day, s.snapshot_date
        FROM sent_days d JOIN snaps s
          ON d.day < s.snapshot_date AND d.day >= s.snapshot_date - INTERVAL '90' DAY
    ), windowed AS (
        SELECT r.*, ds.snapshot_date
        FROM replies r JOIN day_snaps ds ON ds.day = date_trunc('day', r.sent_at)
    )
    SELECT account_id, snapshot_date,
           {latency_quantiles},
           avg(CASE WHEN sent_at < snapshot_date - INTERVAL '24' HOUR
                    THEN CASE WHEN {answered} AND latency_hours <= 24 THEN 1.0 ELSE 0.0 END END)
               AS reply_within24h_share_90d,
           sum(CASE WHEN {waited} > 48 THEN 1 ELSE 0 END) AS reply_over48h_count_90d,
           sum(CASE WHEN {answered} THEN 0 ELSE 1 END) AS reply_unanswered_count_90d,
           max(CASE WHEN {answered} THEN NULL ELSE date_diff('second', sent_at, snapshot_date) / 3600.0 END)
               AS reply_unanswered_oldest_hours_90d
    FROM windowed
    GROUP BY account_id, snapshot_date
    ) AS per_snapshot
    """


def account_time_zones(accounts: pd.DataFrame) -> pd.DataFrame:
    """account_id -> IANA zone; missing or unknown zones fall back to UTC (logged, never fatal)."""
    zones = accounts[["account_id", "timezone"]].rename(columns={"timezone": "tz"}).copy()
    zones["tz"] = zones["tz"].astype("string").str.strip()
    known = zoneinfo.available_timezones()
    unknown = zones["tz"].notna() & ~zones["tz"].isin(known)
    if unknown.any():
        LOG.warning(
            "responsiveness: %d accounts have an unknown time zone (e.g. %r); using UTC",
            int(unknown.sum()),
            zones.loc[unknown, "tz"].iloc[0],
        )
    zones["tz"] = zones["tz"].where(zones["tz"].notna() & ~unknown, "UTC").astype(str)
    return zones


def responsiveness_features(
    tables: dict[str, pd.DataFrame], grid: pd.DataFrame, business_hours: tuple[int, int] = (9, 18)
) -> pd.DataFrame:
    """Reply-latency features for every (account, snapshot) of ``grid``.

    Returns:
        ``grid``'s keys plus the float64 columns in ``NAMES``.
    """
    open_hour, close_hour = (int(h) for h in business_hours)
    if not 0 <= open_hour < close_hour <= 24:
        raise ValueError(f"business_hours must be [open, close] with 0 <= open < close <= 24, got {business_hours}")
    emails = tables["emails"][["account_id", "thread_id", "sent_at", "direction"]]
    con = connect({"emails": emails, "account_tz": account_time_zones(tables["accounts"])}, grid)
    result = query(con, responsiveness_sql(open_hour, close_hour))
    con.close()
    return finish(grid, result, NAMES, COUNTS)
