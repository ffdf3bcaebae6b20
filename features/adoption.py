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
    FeatureSpec("feature_breadth_share_30d", FAMILY, "adoption", "Share of product features used",
                "The account used {value} of the product's features in the last 30 days", "share", -1),
    FeatureSpec("seat_utilisation_ratio_30d", FAMILY, "adoption", "Active users per seat",
                "Active users per contracted seat: {value} (last 30 days)", "ratio", -1),
    FeatureSpec("usage_trend_ratio_30d", FAMILY, "adoption", "Usage trend",
                "Usage in the last 30 days is {value} times the previous 60 days' monthly average", "ratio", -1),
    FeatureSpec("usage_since_last_days", FAMILY, "adoption", "Days since last use",
                "Nobody at the account has used the product for {value}", "days", 1),
    FeatureSpec("feature_adopted_count_90d", FAMILY, "adoption", "Features newly adopted",
                "{value} product features were used for the first time in the last 90 days", "count", -1),
]
NAMES = [s.name for s in SPECS]
COUNTS = ("feature_adopted_count_90d",)


def islands_sql(source: str, key: str, window_days: int) -> str:
    """Runs of use of one ``key`` (feature or user) whose days are at most ``window_days`` apart.

    A use on day ``d`` counts for the snapshots in ``(d, d + window]``; the days of one run
    cover ``(first_day, last_day + window]`` without holes, and runs of the same key never
    overlap, so "distinct keys used in the window" becomes a plain count of the runs that
    cover the snapshot: no COUNT(DISTINCT) over a large range join.
    """
    return f"""
        SELECT account_id, {key}, min(day) AS first_day, max(day) AS last_day FROM (
            SELECT account_id, {key}, day,
                   sum(new_run) OVER (PARTITION BY account_id, {key} ORDER BY day ROWS UNBOUNDED PRECEDING) AS run
            FROM (
                SELECT account_id, {key}, day,
                       CASE WHEN lag(day) OVER (PARTITION BY account_id, {key} ORDER BY day)
                                 >= day - INTERVAL '{window_days}' DAY THEN 0 ELSE 1 END AS new_run
                FROM {source}))
        GROUP BY account_id, {key}, run"""


def adoption_sql() -> str:
    """Per (account, snapshot): breadth, seat utilisation, trend, recency, newly adopted features."""
    return f"""
    WITH acct_day AS (
        SELECT account_id, date_trunc('day', event_at) AS day, sum(coalesce(event_count, 1)) AS events
        FROM usage GROUP BY account_id, date_trunc('day', event_at)
    ), feature_day AS (
        SELECT DISTINCT account_id, feature, date_trunc('day', event_at) AS day FROM usage
    ), user_day AS (
        SELECT DISTINCT account_id, user_id, date_trunc('day', event_at) AS day FROM usage
    ), catalogue AS (
        SELECT s.snapshot_date, count(*) AS n_features
        FROM (SELECT feature, min(day) AS first_day FROM feature_day GROUP BY feature) f
        JOIN snaps s ON f.first_day < s.snapshot_date
        GROUP BY s.snapshot_date
    ), feature_islands AS ({islands_sql("feature_day", "feature", 30)}
    ), user_islands AS ({islands_sql("user_day", "user_id", 30)}
    ), breadth AS (
        SELECT f.account_id, s.snapshot_date, count(*) AS n_used
        FROM feature_islands f JOIN snaps s
          ON s.snapshot_date > f.first_day AND s.snapshot_date <= f.last_day + INTERVAL '30' DAY
        GROUP BY f.account_id, s.snapshot_date
    ), users AS (
        SELECT u.account_id, s.snapshot_date, count(*) AS n_users
        FROM user_islands u JOIN snaps s
          ON s.snapshot_date > u.first_day AND s.snapshot_date <= u.last_day + INTERVAL '30' DAY
        GROUP BY u.account_id, s.snapshot_date
    ), volume AS (
        SELECT a.account_id, s.snapshot_date,
               sum(CASE WHEN a.day >= s.snapshot_date - INTERVAL '30' DAY THEN a.events ELSE 0 END) AS recent,
               sum(CASE WHEN a.day < s.snapshot_date - INTERVAL '30' DAY THEN a.events ELSE 0 END) AS base
        FROM acct_day a JOIN snaps s
          ON a.day < s.snapshot_date AND a.day >= s.snapshot_date - INTERVAL '90' DAY
        GROUP BY a.account_id, s.snapshot_date
    ), adopted AS (
        SELECT f.account_id, s.snapshot_date, count(*) AS n_new
        FROM (SELECT account_id, feature, min(day) AS first_day FROM feature_day GROUP BY account_id, feature) f
        JOIN snaps s ON f.first_day < s.snapshot_date AND f.first_day >= s.snapshot_date - INTERVAL '90' DAY
        GROUP BY f.account_id, s.snapshot_date
    ), timeline AS (
        -- at equal times the snapshot (0) sorts before the usage day (1)
        SELECT account_id, day AS t, 1 AS is_use FROM acct_day
        UNION ALL
        SELECT account_id, snapshot_date AS t, 0 AS is_use FROM grid
    ), last_use AS (
        SELECT account_id, t AS snapshot_date, last_day FROM (
            SELECT account_id, t, is_use,
                   max(CASE WHEN is_use = 1 THEN t END) OVER (
                       PARTITION BY account_id ORDER BY t, is_use ROWS UNBOUNDED PRECEDING) AS last_day
            FROM timeline) WHERE is_use = 0
    ), seats AS ({current_contract_sql()})
    SELECT g.account_id, g.snapshot_date,
           coalesce(b.n_used, 0) * 1.0 / nullif(c.n_features, 0) AS feature_breadth_share_30d,
           coalesce(u.n_users, 0) * 1.0 / nullif(st.current_seats, 0) AS seat_utilisation_ratio_30d,
           coalesce(v.recent, 0) / nullif(v.base / 2.0, 0) AS usage_trend_ratio_30d,
           date_diff('day', CAST(l.last_day AS DATE), CAST(g.snapshot_date AS DATE)) AS usage_since_last_days,
           a.n_new AS feature_adopted_count_90d
    FROM grid g
    LEFT JOIN catalogue c ON c.snapshot_date = g.snapshot_date
    LEFT JOIN breadth b ON b.account_id = g.account_id AND b.snapshot_date = g.snapshot_date
    LEFT JOIN users u ON u.account_id = g.account_id AND u.snapshot_date = g.snapshot_date
    LEFT JOIN volume v ON v.account_id = g.account_id AND v.snapshot_date = g.snapshot_date
    LEFT JOIN adopted a ON a.account_id = g.account_id AND a.snapshot_date = g.snapshot_date
    LEFT JOIN last_use l ON l.account_id = g.account_id AND l.snapshot_date = g.snapshot_date
    LEFT JOIN seats st ON st.account_id = g.account_id AND st.snapshot_date = g.snapshot_date
    """


def adoption_features(tables: dict[str, pd.DataFrame], grid: pd.DataFrame) -> pd.DataFrame:
    """Adoption features for every (account, snapshot) of ``grid``.

    Returns:
        ``grid``'s keys plus the float64 columns in ``NAMES``.
    """
    contracts = tables["contracts"][["contract_id", "account_id", "start_date", "end_date", "arr", "seats"]]
    usage = tables["usage_events"][["account_id", "user_id", "feature", "event_at", "event_count"]]
    con = connect({"usage": usage, "contracts": contracts}, grid)
    result = query(con, adoption_sql())
    con.close()
    return finish(grid, result, NAMES, COUNTS)
