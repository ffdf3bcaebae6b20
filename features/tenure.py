"""Tenure and commercial features from contracts known at the snapshot.

Only contracts with ``start_date < s`` exist for a feature at snapshot ``s``, and only
cancellations dated before ``s``: a renewal signed for later, a cancellation dated later and
the export's ``status`` column (today's status, not the status at ``s``) are never read here,
as they would leak the label.

The *current contract* at ``s`` is the contract with the latest ``start_date < s`` (ties:
latest end date, then contract id); ARR, seats and the last renewal's changes are its own.

The renewal features measure the *term* the grid's membership rule uses (``features.snapshots``):
its end ``E`` is the latest effective end of the known contracts (end date, or a cancel date
before ``s`` when earlier; contracts cancelled before they began are ignored). The signed
distance ``E - s`` is split in two: ``renewal_countdown_days`` is ``E - s`` while the term runs
and *missing* once it has ended (there is no running term to count down, as a QBR window not
yet open is missing); ``renewal_overdue_days`` is 0 while the term runs and ``s - E`` once it
has ended with no new contract started (the account is in the grace period, its renewal
overdue; at most ``grace_days`` in the grid). So an overdue account reads "the renewal is 12
days overdue", never "ends in 0 days" or "in -12 days", and reasons are worded from the
overdue days (a missing value is never a reason).
"""

from __future__ import annotations

import pandas as pd

from features.catalogue import FeatureSpec
from features.duck import connect, finish, query

FAMILY = "tenure"
REQUIRES = ("contracts",)

SPECS: list[FeatureSpec] = [
    FeatureSpec(
        "tenure_length_days",
        FAMILY,
        "first_year",
        "Customer for",
        "Customer for {value} (since the first contract started)",
        "days",
        -1,
    ),
    FeatureSpec(
        "tenure_first_year_flag", FAMILY, "first_year", "First-year account", "First-year account: {value}", "flag", 1
    ),
    FeatureSpec(
        "renewal_countdown_days",
        FAMILY,
        "renewal",
        "Days to renewal",
        "The current contract ends in {value}",
        "days",
        -1,
    ),
    FeatureSpec(
        "renewal_overdue_days",
        FAMILY,
        "renewal",
        "Renewal overdue",
        "The renewal is {value} overdue",
        "days",
        1,
    ),
    FeatureSpec(
        "contract_arr_current_currency",
        FAMILY,
        "commercial",
        "Current ARR",
        "Current contract is worth {value} a year",
        "currency",
        0,
    ),
    FeatureSpec(
        "contract_arr_change_ratio_last_renewal",
        FAMILY,
        "commercial",
        "ARR change at last renewal",
        "ARR at the last renewal was {value} times the previous contract's",
        "ratio",
        -1,
    ),
    FeatureSpec(
        "contract_seats_change_seats_last_renewal",
        FAMILY,
        "commercial",
        "Seat change at last renewal",
        "Seats changed by {value} at the last renewal",
        "seats",
        -1,
    ),
    FeatureSpec(
        "contract_renewals_count",
        FAMILY,
        "commercial",
        "Renewals so far",
        "The account has renewed {value} times",
        "count",
        -1,
    ),
]
NAMES = [s.name for s in SPECS]


def known_contracts_sql() -> str:
    """Contracts started before each grid snapshot, ranked newest first (``recency`` 1 = current).

    ``known_end`` is the effective end as known at the snapshot: the cancel date when the
    contract was cancelled before its end date and before the snapshot, else the end date.

    Joins on the grid (not on all snapshots) because contracts are few per account.
    """
    return """
        SELECT g.account_id, g.snapshot_date, k.start_date, k.end_date, k.arr, k.seats,
               CASE WHEN k.cancel_date < g.snapshot_date AND k.cancel_date < k.end_date
                    THEN k.cancel_date ELSE k.end_date END AS known_end,
               row_number() OVER (PARTITION BY g.account_id, g.snapshot_date
                                  ORDER BY k.start_date DESC, k.end_date DESC, k.contract_id DESC) AS recency
        FROM grid g JOIN contracts k
          ON k.account_id = g.account_id AND k.start_date < g.snapshot_date
    """


def current_contract_sql() -> str:
    """One row per grid row: end date and seats of the current contract (shared with qbr and adoption).

    The current contract is the first in ``known_contracts_sql``'s order (latest start, then
    latest end, then highest id). Rather than ranking every (snapshot, contract) pair, each
    contract gets the span of snapshots it is current for, ``start_date < s <= next start``
    (the next, later-starting contract of the account), so the grid joins to exactly one
    contract without a sort per snapshot.
    """
    return """
        SELECT g.account_id, g.snapshot_date, c.end_date AS current_end, c.seats AS current_seats
        FROM grid g JOIN (
            SELECT account_id, start_date, end_date, seats,
                   lead(start_date) OVER (PARTITION BY account_id ORDER BY start_date) AS next_start
            FROM (SELECT account_id, start_date, end_date, seats,
                         row_number() OVER (PARTITION BY account_id, start_date
                                            ORDER BY end_date DESC, contract_id DESC) AS pick
                  FROM contracts)
            WHERE pick = 1) c
          ON c.account_id = g.account_id AND c.start_date < g.snapshot_date
         AND (c.next_start IS NULL OR g.snapshot_date <= c.next_start)
    """


def tenure_sql() -> str:
    """Per (account, snapshot): tenure, renewal countdown and overdue days, ARR and the last renewal's changes."""
    return f"""
    WITH known AS ({known_contracts_sql()}),
    agg AS (
        SELECT account_id, snapshot_date,
               date_diff('day', min(start_date), snapshot_date) AS tenure_length_days,
               max(CASE WHEN known_end > start_date THEN known_end END) AS term_end,
               max(CASE WHEN recency = 1 THEN arr END) AS arr_now,
               max(CASE WHEN recency = 2 THEN arr END) AS arr_before,
               max(CASE WHEN recency = 1 THEN seats END) AS seats_now,
               max(CASE WHEN recency = 2 THEN seats END) AS seats_before,
               count(*) - 1 AS contract_renewals_count
        FROM known GROUP BY account_id, snapshot_date
    )
    SELECT account_id, snapshot_date, tenure_length_days,
           CASE WHEN tenure_length_days < 365 THEN 1 ELSE 0 END AS tenure_first_year_flag,
           CASE WHEN term_end >= snapshot_date THEN date_diff('day', snapshot_date, term_end) END
               AS renewal_countdown_days,
           CASE WHEN term_end < snapshot_date THEN date_diff('day', term_end, snapshot_date)
                WHEN term_end IS NOT NULL THEN 0 END AS renewal_overdue_days,
           arr_now AS contract_arr_current_currency,
           arr_now / nullif(arr_before, 0) AS contract_arr_change_ratio_last_renewal,
           seats_now - seats_before AS contract_seats_change_seats_last_renewal,
           contract_renewals_count
    FROM agg
    """


def tenure_features(tables: dict[str, pd.DataFrame], grid: pd.DataFrame) -> pd.DataFrame:
    """Tenure, renewal and commercial features for every (account, snapshot) of ``grid``.

    Returns:
        ``grid``'s keys plus the float64 columns in ``NAMES``.
    """
    contracts = tables["contracts"][
        ["contract_id", "account_id", "start_date", "end_date", "cancel_date", "arr", "seats"]
    ]
    con = connect({"contracts": contracts}, grid)
    result = query(con, tenure_sql())
    con.close()
    return finish(grid, result, NAMES)
