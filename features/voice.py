"""Voice of the customer: NPS and CSAT surveys answered before the snapshot.

A response is visible at ``s`` when ``responded_at < s`` (and it has a score). NPS
categories follow the usual cut-offs: detractor 0-6, passive 7-8, promoter 9-10.
The response rate counts surveys *sent* in ``[s-365d, s)`` and answered before ``s``, so a
survey sent just before ``s`` still counts as unanswered: a deliberate, slight pessimism
shared by every snapshot alike.
"""

from __future__ import annotations

import pandas as pd

from features.catalogue import FeatureSpec
from features.duck import connect, finish, query

FAMILY = "voice"
REQUIRES = ("surveys",)

SPECS: list[FeatureSpec] = [
    FeatureSpec(
        "nps_last_score", FAMILY, "voice", "Last NPS", "The last NPS answer was {value} out of 10", "score", -1
    ),
    FeatureSpec(
        "nps_detractor_flag",
        FAMILY,
        "voice",
        "NPS detractor",
        "The last NPS answer was a detractor (0-6): {value}",
        "flag",
        1,
    ),
    FeatureSpec(
        "nps_change_score",
        FAMILY,
        "voice",
        "NPS change",
        "NPS moved by {value} points since the previous answer",
        "score",
        -1,
    ),
    FeatureSpec(
        "survey_response_share_365d",
        FAMILY,
        "voice",
        "Survey response rate",
        "The account answered {value} of our surveys (last 12 months)",
        "share",
        -1,
    ),
    FeatureSpec(
        "survey_csat_mean_score_365d",
        FAMILY,
        "voice",
        "Survey CSAT",
        "CSAT surveys average {value} out of 5 (last 12 months)",
        "score",
        -1,
    ),
]
NAMES = [s.name for s in SPECS]


def voice_sql() -> str:
    """Per (account, snapshot): last NPS, its change, detractor flag, response rate, CSAT mean."""
    return """
    WITH nps AS (
        SELECT account_id, responded_at, score,
               lag(score) OVER (PARTITION BY account_id ORDER BY responded_at, survey_id) AS previous_score,
               row_number() OVER (PARTITION BY account_id, responded_at ORDER BY survey_id DESC) AS tie_rank
        FROM surveys
        WHERE survey_type = 'nps' AND responded_at IS NOT NULL AND score IS NOT NULL
    ), timeline AS (
        -- at equal times the snapshot (0) sorts before the response (1)
        SELECT account_id, responded_at AS t, 1 AS is_response FROM nps
        UNION ALL
        SELECT account_id, snapshot_date AS t, 0 AS is_response FROM grid
    ), last_nps AS (
        SELECT account_id, t AS snapshot_date, last_at FROM (
            SELECT account_id, t, is_response,
                   max(CASE WHEN is_response = 1 THEN t END) OVER (
                       PARTITION BY account_id ORDER BY t, is_response ROWS UNBOUNDED PRECEDING) AS last_at
            FROM timeline) WHERE is_response = 0
    ), rate AS (
        SELECT v.account_id, s.snapshot_date,
               avg(CASE WHEN v.responded_at < s.snapshot_date THEN 1.0 ELSE 0.0 END) AS share
        FROM surveys v JOIN snaps s
          ON v.sent_at < s.snapshot_date AND v.sent_at >= s.snapshot_date - INTERVAL '365' DAY
        GROUP BY v.account_id, s.snapshot_date
    ), csat AS (
        SELECT v.account_id, s.snapshot_date, avg(v.score) AS mean_score
        FROM surveys v JOIN snaps s
          ON v.responded_at < s.snapshot_date AND v.responded_at >= s.snapshot_date - INTERVAL '365' DAY
        WHERE v.survey_type = 'csat' AND v.score IS NOT NULL
        GROUP BY v.account_id, s.snapshot_date
    )
    SELECT g.account_id, g.snapshot_date,
           n.score AS nps_last_score,
           CASE WHEN n.score IS NULL THEN NULL WHEN n.score <= 6 THEN 1 ELSE 0 END AS nps_detractor_flag,
           n.score - n.previous_score AS nps_change_score,
           r.share AS survey_response_share_365d,
           c.mean_score AS survey_csat_mean_score_365d
    FROM grid g
    LEFT JOIN last_nps l ON l.account_id = g.account_id AND l.snapshot_date = g.snapshot_date
    LEFT JOIN nps n ON n.account_id = l.account_id AND n.responded_at = l.last_at AND n.tie_rank = 1
    LEFT JOIN rate r ON r.account_id = g.account_id AND r.snapshot_date = g.snapshot_date
    LEFT JOIN csat c ON c.account_id = g.account_id AND c.snapshot_date = g.snapshot_date
    """


def voice_features(tables: dict[str, pd.DataFrame], grid: pd.DataFrame) -> pd.DataFrame:
    """NPS/CSAT survey features for every (account, snapshot) of ``grid``.

    Returns:
        ``grid``'s keys plus the float64 columns in ``NAMES``.
    """
    con = connect({"surveys": tables["surveys"]}, grid)
    result = query(con, voice_sql())
    con.close()
    return finish(grid, result, NAMES)
