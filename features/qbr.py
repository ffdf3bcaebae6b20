"""QBR cadence and meeting volume from meetings held before the snapshot.

``meeting_type`` is already classified at ingest (qbr, onboarding, training, call, other).
A meeting counts at snapshot ``s`` when it started before ``s`` 00:00 UTC; "days since"
counts calendar days between the meeting's UTC date and ``s``.

``qbr_pre_renewal_flag_120d`` asks "has the account had its pre-renewal QBR yet?". With
``E`` the end date of the current contract (latest start before ``s``), it is 1 when a QBR
started in ``[E - 120 days, s)``, 0 when none did, and missing while the pre-renewal window
has not opened yet (``s <= E - 120 days``): then there is nothing to judge.
"""

from __future__ import annotations

import pandas as pd

from features.catalogue import FeatureSpec
from features.duck import connect, finish, query
from features.tenure import current_contract_sql

FAMILY = "qbr"
REQUIRES = ("meetings",)
PRE_RENEWAL_DAYS = 120

SPECS: list[FeatureSpec] = [
    FeatureSpec(
        "qbr_since_last_days",
        FAMILY,
        "qbr",
        "Days since last QBR",
        "The last business review (QBR) was {value} ago",
        "days",
        1,
    ),
    FeatureSpec(
        "qbr_held_count_365d",
        FAMILY,
        "qbr",
        "QBRs in 12 months",
        "{value} business reviews (QBRs) in the last 12 months",
        "count",
        -1,
    ),
    FeatureSpec(
        "qbr_pre_renewal_flag_120d",
        FAMILY,
        "qbr",
        "QBR before renewal",
        "A QBR was held in the 120 days before renewal: {value}",
        "flag",
        -1,
    ),
    FeatureSpec(
        "meeting_held_count_90d",
        FAMILY,
        "engagement",
        "Meetings in 90 days",
        "{value} meetings or calls with the account in the last 90 days",
        "count",
        -1,
    ),
]
NAMES = [s.name for s in SPECS]
COUNTS = ("qbr_held_count_365d", "meeting_held_count_90d")


def qbr_sql() -> str:
    """Per (account, snapshot): QBR recency, QBR count, pre-renewal QBR flag, meeting count."""
    return f"""
    WITH qbrs AS (
        SELECT account_id, start_at FROM meetings WHERE meeting_type = 'qbr'
    ), timeline AS (
        -- at equal times the snapshot (0) sorts before the meeting (1): a QBR at s 00:00 is not yet seen
        SELECT account_id, start_at AS t, 1 AS is_qbr FROM qbrs
        UNION ALL
        SELECT account_id, snapshot_date AS t, 0 AS is_qbr FROM grid
    ), last_qbr AS (
        SELECT account_id, t AS snapshot_date, last_at FROM (
            SELECT account_id, t, is_qbr,
                   max(CASE WHEN is_qbr = 1 THEN t END) OVER (
                       PARTITION BY account_id ORDER BY t, is_qbr ROWS UNBOUNDED PRECEDING) AS last_at
            FROM timeline) WHERE is_qbr = 0
    ), qbr_365 AS (
        SELECT q.account_id, s.snapshot_date, count(*) AS n
        FROM qbrs q JOIN snaps s
          ON q.start_at < s.snapshot_date AND q.start_at >= s.snapshot_date - INTERVAL '365' DAY
        GROUP BY q.account_id, s.snapshot_date
    ), meetings_90 AS (
        SELECT m.account_id, s.snapshot_date, count(*) AS n
        FROM meetings m JOIN snaps s
          ON m.start_at < s.snapshot_date AND m.start_at >= s.snapshot_date - INTERVAL '90' DAY
        GROUP BY m.account_id, s.snapshot_date
    ), renewal AS ({current_contract_sql()}),
    pre_renewal AS (
        SELECT r.account_id, r.snapshot_date,
               CASE WHEN r.snapshot_date <= r.current_end - INTERVAL '{PRE_RENEWAL_DAYS}' DAY THEN NULL
                    WHEN count(q.start_at) > 0 THEN 1 ELSE 0 END AS flag
        FROM renewal r LEFT JOIN qbrs q
          ON q.account_id = r.account_id
         AND q.start_at >= r.current_end - INTERVAL '{PRE_RENEWAL_DAYS}' DAY
         AND q.start_at < r.snapshot_date
        GROUP BY r.account_id, r.snapshot_date, r.current_end
    )
    SELECT g.account_id, g.snapshot_date,
           date_diff('day', CAST(l.last_at AS DATE), CAST(g.snapshot_date AS DATE)) AS qbr_since_last_days,
           q.n AS qbr_held_count_365d,
           p.flag AS qbr_pre_renewal_flag_120d,
           m.n AS meeting_held_count_90d
    FROM grid g
    LEFT JOIN last_qbr l ON l.account_id = g.account_id AND l.snapshot_date = g.snapshot_date
    LEFT JOIN qbr_365 q ON q.account_id = g.account_id AND q.snapshot_date = g.snapshot_date
    LEFT JOIN meetings_90 m ON m.account_id = g.account_id AND m.snapshot_date = g.snapshot_date
    LEFT JOIN pre_renewal p ON p.account_id = g.account_id AND p.snapshot_date = g.snapshot_date
    """


def qbr_features(tables: dict[str, pd.DataFrame], grid: pd.DataFrame) -> pd.DataFrame:
    """QBR and meeting features for every (account, snapshot) of ``grid``.

    Returns:
        ``grid``'s keys plus the float64 columns in ``NAMES``.
    """
    contracts = tables["contracts"][["contract_id", "account_id", "start_date", "end_date", "arr", "seats"]]
    meetings = tables["meetings"][["account_id", "start_at", "meeting_type"]]
    con = connect({"meetings": meetings, "contracts": contracts}, grid)
    result = query(con, qbr_sql())
    con.close()
    return finish(grid, result, NAMES, COUNTS)
