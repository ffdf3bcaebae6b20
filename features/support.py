"""Support pain (tickets) and proactive contact (outbound e-mails nobody asked for).

Tickets count by creation time in ``[s-90d, s)``. A first response or a close is only
known at ``s`` when it happened before ``s``: first-response latency uses tickets whose first
response came before ``s``; a ticket is *open* at ``s`` when created before ``s`` and not
closed before ``s``; ticket CSAT is read from tickets closed in ``[s-180d, s)`` (ratings
are given at close).

``is_escalated`` has no timestamp: exports carry the ticket's state today, so a ticket still
open at ``s`` may have been escalated after ``s``. Escalations are therefore counted only on
tickets closed before ``s``, whose escalation certainly happened before ``s`` (no leak).

Proactive touches (signal ``engagement``) need the e-mails table: outbound e-mails in
``[s-90d, s)`` with no earlier inbound message in their thread (we wrote first).
"""

from __future__ import annotations

import pandas as pd

from features.catalogue import FeatureSpec
from features.duck import connect, finish, query

FAMILY = "support"
REQUIRES = ("tickets",)

TICKET_SPECS: list[FeatureSpec] = [
    FeatureSpec(
        "ticket_opened_count_90d",
        FAMILY,
        "support",
        "Tickets in 90 days",
        "{value} support tickets opened in the last 90 days",
        "count",
        1,
    ),
    FeatureSpec(
        "ticket_urgent_count_90d",
        FAMILY,
        "support",
        "High/urgent tickets in 90 days",
        "{value} high or urgent support tickets in the last 90 days",
        "count",
        1,
    ),
    FeatureSpec(
        "ticket_first_response_median_hours_90d",
        FAMILY,
        "support",
        "Ticket first response time",
        "Support tickets waited {value} for a first response (median, last 90 days)",
        "hours",
        1,
    ),
    FeatureSpec("ticket_open_count", FAMILY, "support", "Open tickets", "{value} support tickets are open", "count", 1),
    FeatureSpec(
        "ticket_escalated_count_90d",
        FAMILY,
        "support",
        "Escalations in 90 days",
        "{value} support tickets opened in the last 90 days were escalated (counted once closed)",
        "count",
        1,
    ),
    FeatureSpec(
        "ticket_csat_mean_score_180d",
        FAMILY,
        "support",
        "Ticket CSAT",
        "Support satisfaction averages {value} out of 5 (last 180 days)",
        "score",
        -1,
    ),
]
PROACTIVE_SPECS: list[FeatureSpec] = [
    FeatureSpec(
        "proactive_touch_count_90d",
        FAMILY,
        "engagement",
        "Proactive e-mails in 90 days",
        "{value} proactive e-mails from us (not replies) in the last 90 days",
        "count",
        -1,
    ),
]
SPECS = TICKET_SPECS + PROACTIVE_SPECS
TICKET_NAMES = [s.name for s in TICKET_SPECS]
PROACTIVE_NAMES = [s.name for s in PROACTIVE_SPECS]
COUNTS = (
    "ticket_opened_count_90d",
    "ticket_urgent_count_90d",
    "ticket_open_count",
    "ticket_escalated_count_90d",
    "proactive_touch_count_90d",
)


def tickets_sql() -> str:
    """Per (account, snapshot): ticket volume, priority, first response, open, escalations, CSAT."""
    return """
    WITH created_90 AS (
        SELECT t.account_id, s.snapshot_date,
               count(*) AS opened,
               sum(CASE WHEN t.priority IN ('high', 'urgent') THEN 1 ELSE 0 END) AS urgent,
               quantile_cont(CASE WHEN t.first_response_at < s.snapshot_date
                                  THEN date_diff('second', t.created_at, t.first_response_at) / 3600.0 END, 0.5)
                   AS first_response,
               sum(CASE WHEN t.is_escalated AND t.closed_at < s.snapshot_date THEN 1 ELSE 0 END) AS escalated
        FROM tickets t JOIN snaps s
          ON t.created_at < s.snapshot_date AND t.created_at >= s.snapshot_date - INTERVAL '90' DAY
        GROUP BY t.account_id, s.snapshot_date
    ), still_open AS (
        SELECT t.account_id, s.snapshot_date, count(*) AS n
        FROM tickets t JOIN snaps s
          ON t.created_at < s.snapshot_date AND coalesce(t.closed_at, TIMESTAMP '2200-01-01') >= s.snapshot_date
        GROUP BY t.account_id, s.snapshot_date
    ), csat AS (
        SELECT t.account_id, s.snapshot_date, avg(t.csat) AS mean_csat
        FROM tickets t JOIN snaps s
          ON t.closed_at < s.snapshot_date AND t.closed_at >= s.snapshot_date - INTERVAL '180' DAY
        WHERE t.csat IS NOT NULL
        GROUP BY t.account_id, s.snapshot_date
    )
    SELECT g.account_id, g.snapshot_date,
           c.opened AS ticket_opened_count_90d,
           c.urgent AS ticket_urgent_count_90d,
           c.first_response AS ticket_first_response_median_hours_90d,
           o.n AS ticket_open_count,
           c.escalated AS ticket_escalated_count_90d,
           q.mean_csat AS ticket_csat_mean_score_180d
    FROM grid g
    LEFT JOIN created_90 c ON c.account_id = g.account_id AND c.snapshot_date = g.snapshot_date
    LEFT JOIN still_open o ON o.account_id = g.account_id AND o.snapshot_date = g.snapshot_date
    LEFT JOIN csat q ON q.account_id = g.account_id AND q.snapshot_date = g.snapshot_date
    """


def proactive_sql() -> str:
    """Per (account, snapshot): outbound e-mails in 90 days with no earlier inbound in their thread."""
    return """
    WITH flagged AS (
        -- at equal times 'inbound' sorts first: an outbound sent with an inbound is not proactive
        SELECT account_id, sent_at, direction,
               max(CASE WHEN direction = 'inbound' THEN 1 ELSE 0 END) OVER (
                   PARTITION BY account_id, thread_id ORDER BY sent_at, direction
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS inbound_before
        FROM emails
    )
    SELECT f.account_id, s.snapshot_date, count(*) AS proactive_touch_count_90d
    FROM flagged f JOIN snaps s
      ON f.sent_at < s.snapshot_date AND f.sent_at >= s.snapshot_date - INTERVAL '90' DAY
    WHERE f.direction = 'outbound' AND coalesce(f.inbound_before, 0) = 0
    GROUP BY f.account_id, s.snapshot_date
    """


def ticket_features(tables: dict[str, pd.DataFrame], grid: pd.DataFrame) -> pd.DataFrame:
    """Ticket features for every (account, snapshot) of ``grid`` (needs ``tickets``)."""
    con = connect({"tickets": tables["tickets"]}, grid)
    result = query(con, tickets_sql())
    con.close()
    return finish(grid, result, TICKET_NAMES, COUNTS)


def proactive_features(tables: dict[str, pd.DataFrame], grid: pd.DataFrame) -> pd.DataFrame:
    """Proactive-touch count for every (account, snapshot) of ``grid`` (needs ``emails``)."""
    emails = tables["emails"][["account_id", "thread_id", "sent_at", "direction"]]
    con = connect({"emails": emails}, grid)
    result = query(con, proactive_sql())
    con.close()
    return finish(grid, result, PROACTIVE_NAMES, COUNTS)
