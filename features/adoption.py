"""Product adoption from usage events before the snapshot.

Usage is the largest table, so it is reduced once to daily rows ((account, day),
(account, feature, day), (account, user, day)) and only those are range-joined to the
snapshot dates. A snapshot is a UTC midnight, so "event before ``s``" and "event day
before ``s``" are the same thing and the daily reduction loses nothing.

- breadth: distinct features the account used in ``[s-30d, s)`` over the *feature
  catalogue*, the distinct features any account used before ``s``;
- seat utilisation: distinct active users in 30 days over the current contract's seats
  (missing when seats are unknown or zero);
- trend: events in the last 30 days over half the events of the 60 days before
  (missing when that base is zero);
- days since the last event (missing when the account never used the product);
- features adopted in the last 90 days: the account's first use of a feature falls in
  ``[s-90d, s)``.
"""

from __future__ import annotations

import pandas as pd

from features.catalogue import FeatureSpec
from features.duck import connect, finish, query
from features.tenure import current_contract_sql

FAMILY = "adoption"
REQUIRES = ("usage_events",)

SPECS: list[FeatureSpec] = [
    FeatureSpec(
        "feature_breadth_share_30d",
        FAMILY,
        "adoption",
        "Share of product features used",
        "The account used {value} of the product's features in the last 30 days",
        "share",
        -1,
    ),
    FeatureSpec(
        "seat_utilisation_ratio_30d",
        FAMILY,
        "adoption",
        "Active users per seat",
        "Active users per contracted seat: {value} (last 30 days)",
        "ratio",
        -1,
    ),
    FeatureSpec(
        "usage_trend_ratio_30d",
        FAMILY,
        "adoption",
        "Usage trend",
        "Usage in the last 30 days is {value} times the previous 60 days' monthly average",
        "ratio",
        -1,
    ),
    FeatureSpec(
        "usage_since_last_days",
        FAMILY,
        "adoption",
        "Days since last use",
        "Nobody at the account has used the product for {value}",
        "days",
        1,
    ),
    FeatureSpec(
        "feature_adopted_count_90d",
        FAMILY,
        "adoption",
        "Features newly adopted",
        "{value} product features were used for the first time in the last 90 days",
        "count",
        -1,
    ),
]
NAMES = [s.name for s in SPECS]
COUNTS = ("feature_adopted_count_90d",)


def runs_sql(name: str) -> str:
    """Per (account, snapshot): +1/-1 deltas whose running sum is the distinct ``key`` values used in ``[s - W, s)``.

    ``{name}_bucket`` has one row per (account, key, bucket) with the bucket's last day ``m``
    (a day's *bucket* is the first snapshot after it). The buckets of one key are where its
    last use before ``s`` changes, so the key counts at ``s`` in ``[bucket, next bucket)``
    while ``s <= m + W``, i.e. up to ``end = bucket(m + W)``. Consecutive rows whose spans touch
    form one run of use: only a run's first row emits +1 (at its bucket) and only its last
    row emits -1 (at its end), so no COUNT(DISTINCT) over a range join is needed.
    """
    return f"""
        SELECT account_id, snap, CAST(sum(delta) AS BIGINT) AS delta FROM (
            SELECT account_id, snap, 1 AS delta FROM {name}_edges
            WHERE prev_snap IS NULL OR prev_end < snap
            UNION ALL
            SELECT account_id, end_snap AS snap, -1 AS delta FROM {name}_edges
            WHERE end_snap IS NOT NULL AND (next_snap IS NULL OR end_snap < next_snap))
        GROUP BY account_id, snap"""


def edges_sql(name: str, key: str, window_days: int) -> str:
    """Each (account, key, bucket) row with its end and its neighbours' bucket and end (one window sort)."""
    return f"""
        SELECT account_id, snap, end_snap,
               lag(snap) OVER (PARTITION BY account_id, {key} ORDER BY snap) AS prev_snap,
               lag(end_snap) OVER (PARTITION BY account_id, {key} ORDER BY snap) AS prev_end,
               lead(snap) OVER (PARTITION BY account_id, {key} ORDER BY snap) AS next_snap
        FROM (SELECT r.account_id, r.{key}, r.snap, e.snap AS end_snap
              FROM {name}_bucket r LEFT JOIN bucket e ON e.day = r.last_day + INTERVAL '{window_days}' DAY)"""


def adoption_sql() -> str:
    """Per (account, snapshot): breadth, seat utilisation, trend, recency, newly adopted features.

    Every windowed count is a difference of running sums: a day ``d`` enters the window
    ``[s - W, s)`` at the first snapshot after ``d`` (its *bucket*) and leaves it at the first
    snapshot after ``d + W``, so each measure is written as +/- deltas at snapshot dates, summed
    per (account, snapshot) and accumulated along each account's snapshot timeline (deltas plus
    the grid rows). Cost grows with accounts x days, not snapshots x events.
    """
    return f"""
    WITH usage_day AS (
        SELECT account_id, user_id, feature, date_trunc('day', event_at) AS day, coalesce(event_count, 1) AS n
        FROM usage
    ), days AS (
        SELECT DISTINCT day FROM usage_day
    ), shifted AS (
        SELECT day AS d FROM days
        UNION SELECT day + INTERVAL '30' DAY AS d FROM days
        UNION SELECT day + INTERVAL '90' DAY AS d FROM days
    ), bucket AS (
        -- the first snapshot strictly after each day (days after the last snapshot have none)
        SELECT x.d AS day, min(s.snapshot_date) AS snap
        FROM shifted x JOIN snaps s ON s.snapshot_date > x.d
        GROUP BY x.d
    ), seg AS (
        -- per usage day: the snapshots where it enters the window, leaves the 30-day and the 90-day windows
        SELECT d.day, b0.snap AS b0, b30.snap AS b30, b90.snap AS b90
        FROM days d JOIN bucket b0 ON b0.day = d.day
        LEFT JOIN bucket b30 ON b30.day = d.day + INTERVAL '30' DAY
        LEFT JOIN bucket b90 ON b90.day = d.day + INTERVAL '90' DAY
    ), acct_seg AS (
        SELECT u.account_id, s.b0, s.b30, s.b90, CAST(sum(u.n) AS BIGINT) AS events, max(u.day) AS last_day
        FROM usage_day u JOIN seg s ON s.day = u.day
        GROUP BY u.account_id, s.b0, s.b30, s.b90
    ), feature_bucket AS (
        SELECT u.account_id, u.feature, b.snap, min(u.day) AS first_day, max(u.day) AS last_day
        FROM usage_day u JOIN bucket b ON b.day = u.day
        GROUP BY u.account_id, u.feature, b.snap
    ), user_bucket AS (
        SELECT u.account_id, u.user_id, b.snap, max(u.day) AS last_day
        FROM usage_day u JOIN bucket b ON b.day = u.day
        GROUP BY u.account_id, u.user_id, b.snap
    ), feature_edges AS ({edges_sql("feature", "feature", 30)}
    ), user_edges AS ({edges_sql("user", "user_id", 30)}
    ), first_use AS (
        SELECT account_id, feature, min(first_day) AS first_day FROM feature_bucket GROUP BY account_id, feature
    ), catalogue AS (
        SELECT s.snapshot_date, count(*) AS n_features
        FROM feature_first_day f
        JOIN snaps s ON f.first_day < s.snapshot_date
        GROUP BY s.snapshot_date
    ), deltas AS (
        SELECT account_id, snap, delta AS d_features, 0 AS d_users, 0 AS d_recent, 0 AS d_base, 0 AS d_new,
               CAST(NULL AS TIMESTAMP) AS last_day
        FROM ({runs_sql("feature")})
        UNION ALL
        SELECT account_id, snap, 0, delta, 0, 0, 0, CAST(NULL AS TIMESTAMP) FROM ({runs_sql("user")})
        UNION ALL
        SELECT account_id, b0, 0, 0, CAST(sum(events) AS BIGINT), 0, 0, max(last_day)
        FROM acct_seg GROUP BY account_id, b0
        UNION ALL
        SELECT account_id, b30, 0, 0, -CAST(sum(events) AS BIGINT), CAST(sum(events) AS BIGINT), 0, CAST(NULL AS TIMESTAMP)
        FROM acct_seg WHERE b30 IS NOT NULL GROUP BY account_id, b30
        UNION ALL
        SELECT account_id, b90, 0, 0, 0, -CAST(sum(events) AS BIGINT), 0, CAST(NULL AS TIMESTAMP)
        FROM acct_seg WHERE b90 IS NOT NULL GROUP BY account_id, b90
        UNION ALL
        SELECT f.account_id, b.snap, 0, 0, 0, 0, count(*), CAST(NULL AS TIMESTAMP)
        FROM first_use f JOIN bucket b ON b.day = f.first_day GROUP BY f.account_id, b.snap
        UNION ALL
        SELECT f.account_id, b.snap, 0, 0, 0, 0, -count(*), CAST(NULL AS TIMESTAMP)
        FROM first_use f JOIN bucket b ON b.day = f.first_day + INTERVAL '90' DAY GROUP BY f.account_id, b.snap
        UNION ALL
        SELECT account_id, snapshot_date, 0, 0, 0, 0, 0, CAST(NULL AS TIMESTAMP) FROM grid
    ), per_snap AS (
        SELECT account_id, snap, CAST(sum(d_features) AS BIGINT) AS d_features, CAST(sum(d_users) AS BIGINT) AS d_users,
               CAST(sum(d_recent) AS BIGINT) AS d_recent, CAST(sum(d_base) AS BIGINT) AS d_base,
               CAST(sum(d_new) AS BIGINT) AS d_new, max(last_day) AS last_day
        FROM deltas GROUP BY account_id, snap
    ), running AS (
        SELECT account_id, snap AS snapshot_date,
               CAST(sum(d_features) OVER (PARTITION BY account_id ORDER BY snap ROWS UNBOUNDED PRECEDING) AS BIGINT) AS n_used,
               CAST(sum(d_users) OVER (PARTITION BY account_id ORDER BY snap ROWS UNBOUNDED PRECEDING) AS BIGINT) AS n_users,
               CAST(sum(d_recent) OVER (PARTITION BY account_id ORDER BY snap ROWS UNBOUNDED PRECEDING) AS BIGINT) AS recent,
               CAST(sum(d_base) OVER (PARTITION BY account_id ORDER BY snap ROWS UNBOUNDED PRECEDING) AS BIGINT) AS base,
               CAST(sum(d_new) OVER (PARTITION BY account_id ORDER BY snap ROWS UNBOUNDED PRECEDING) AS BIGINT) AS n_new,
               max(last_day) OVER (PARTITION BY account_id ORDER BY snap ROWS UNBOUNDED PRECEDING) AS last_day
        FROM per_snap
    ), seats AS ({current_contract_sql()})
    SELECT g.account_id, g.snapshot_date,
           r.n_used * 1.0 / nullif(c.n_features, 0) AS feature_breadth_share_30d,
           r.n_users * 1.0 / nullif(st.current_seats, 0) AS seat_utilisation_ratio_30d,
           r.recent / nullif(r.base / 2.0, 0) AS usage_trend_ratio_30d,
           date_diff('day', CAST(r.last_day AS DATE), CAST(g.snapshot_date AS DATE)) AS usage_since_last_days,
           r.n_new AS feature_adopted_count_90d
    FROM grid g
    JOIN running r ON r.account_id = g.account_id AND r.snapshot_date = g.snapshot_date
    LEFT JOIN catalogue c ON c.snapshot_date = g.snapshot_date
    LEFT JOIN seats st ON st.account_id = g.account_id AND st.snapshot_date = g.snapshot_date
    """


FEATURE_FIRST_DAY_SQL = """
    SELECT feature, min(date_trunc('day', event_at)) AS first_day FROM usage GROUP BY feature"""


def feature_first_days(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The first day any account used each feature: the product's catalogue, shared by all accounts.

    Computed once over the whole usage table, so adoption can run on batches of accounts and
    still measure each account's breadth against every feature the product had.
    """
    con = connect({"usage": tables["usage_events"][["feature", "event_at"]]})
    first = query(con, FEATURE_FIRST_DAY_SQL)
    con.close()
    return pd.DataFrame(
        {
            "feature": first["feature"].astype("string"),
            "first_day": pd.to_datetime(first["first_day"]).astype("datetime64[ns]"),
        }
    )


def adoption_features(
    tables: dict[str, pd.DataFrame], grid: pd.DataFrame, first_days: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Adoption features for every (account, snapshot) of ``grid``.

    ``first_days`` (``feature_first_days`` of the whole book) is given when ``tables`` hold
    only a batch of accounts; by default it is computed from ``tables``.

    Returns:
        ``grid``'s keys plus the float64 columns in ``NAMES``.
    """
    contracts = tables["contracts"][["contract_id", "account_id", "start_date", "end_date", "arr", "seats"]]
    usage = tables["usage_events"][["account_id", "user_id", "feature", "event_at", "event_count"]]
    first_days = feature_first_days(tables) if first_days is None else first_days
    con = connect({"usage": usage, "contracts": contracts, "feature_first_day": first_days}, grid)
    result = query(con, adoption_sql())
    con.close()
    return finish(grid, result, NAMES, COUNTS)
