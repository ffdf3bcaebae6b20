"""The snapshot grid and the churn labels.

A *snapshot* is an observation date ``s``: features see only rows strictly before ``s``
(event time < ``s`` 00:00 UTC, dates < ``s``). The grid has one row per account that is
*active* at ``s``, and who is active is decided from the past only, like a feature.

**Membership (past only).** Only contracts that started before ``s`` are known at ``s``, and
only cancellations dated before ``s``. An account is in the grid at ``s`` when one of its
known contracts covers ``s`` (``start_date < s <= effective end``), or when ``s`` falls in the
grace period after its last term ended: ``E < s <= E + grace_days``, with ``E`` the latest
effective end of its known contracts, provided that term ran to its end date. A renewal
booked after ``s`` changes nothing: an account whose term has ended and whose renewal is not
booked yet is in the grid (overdue), whether or not the renewal comes later.

A *cancellation* (``cancel_date`` before ``end_date``) ends the term on the cancel date, and
no grace period follows it: the customer said so and is gone from that day (active up to and
including it). The grace period is for the paperwork lag of a renewal that is due; after a
cancellation there is no renewal to wait for, nothing a CSM can still save on the weekly list
(winning the customer back is another process), and the model has no feature that sees the
cancellation, so post-cancellation rows would teach it that an overdue renewal means a
cancelled one. A contract cancelled on or before its start covered nothing and is ignored.

**Labels.** Contracts are merged into *spells*: contracts sorted by start, a contract that
starts no later than ``grace_days`` after the running effective end of the previous ones joins
the same spell (renewals, overlaps, short gaps; also a new contract shortly after a
cancellation). Each spell end is a churn date: no contract covers it and none starts within
``grace_days`` after it. A grid row belongs to the spell with
``spell_start < s <= spell_end + grace_days`` (exactly one). Its label is 1 when that spell's
end is a confirmed churn before ``s + horizon_days``. For an overdue row (in the grace period
after a term) this says whether the account renews before the grace period ends: a renewal
booked within the grace period continues the spell (label 0 unless the spell ends within the
horizon), no renewal makes the term's end the churn date, which is then *before* ``s`` (label 1,
``churn_date < s``).

**Renewal label.** The 90-day label can only be high inside the last 90 days of a term (churn
is realised when a term ends), so it cannot warn a quarter ahead of a renewal. The renewal
label asks the question a CSM can still act on months ahead: does *the current term* renew?
The current term ends at ``term_end``, the latest effective end of the contracts known at
``s`` (so with overlaps the one ending last; for an overdue row the term that has ended).
``renewal_label`` is 0 when the row's spell goes on past ``term_end`` (a next term started
within ``grace_days``; it is in the export, so it is observed), 1 when the spell ends at or
before ``term_end`` (no renewal, or a cancellation) and that churn is confirmed, ``<NA>``
otherwise. Every snapshot of one term shares ``term_end`` and the label, so a split must keep
a term's snapshots together (``models.windows`` splits the renewal model by ``term_end``).

Labels look ahead by design (that is what a label is); membership and features never do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd

from features.catalogue import LABEL_COLUMNS as LABEL_COLUMNS  # the grid's columns besides the keys
from features.duck import connect, query

DateLike = dt.date | str | pd.Timestamp


def _as_day(value: pd.Timestamp) -> pd.Timestamp:
    """Midnight of the day, naive (UTC calendar day for tz-aware timestamps)."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


def snapshot_dates(first: DateLike, last: DateLike, frequency_days: int) -> pd.DatetimeIndex:
    """Every ``frequency_days`` from ``first`` up to and including ``last``."""
    if frequency_days < 1:
        raise ValueError("frequency_days must be at least 1")
    return pd.date_range(_as_day(first), _as_day(last), freq=f"{frequency_days}D").astype("datetime64[ns]")


def normalise_dates(dates: Iterable[DateLike]) -> pd.DatetimeIndex:
    """Explicit snapshot dates (e.g. as-of and as-of minus 7 days) as sorted, unique naive midnights."""
    days = sorted({_as_day(d) for d in dates})
    return pd.DatetimeIndex(days).astype("datetime64[ns]")


def _effective_contracts_sql() -> str:
    """Contracts with their effective end (the cancel date when cancelled before the end date), and
    whether that end is a cancellation; a contract cancelled before it began never covered anything."""
    return """
        SELECT account_id, start_date,
               CASE WHEN cancel_date IS NOT NULL AND cancel_date < end_date THEN cancel_date ELSE end_date END AS eff_end,
               coalesce(cancel_date < end_date, false) AS cancelled
        FROM contracts
    """


def spells_sql(grace_days: int) -> str:
    """Gaps-and-islands over contracts: one row per (account, spell) with its start and end."""
    return f"""
    WITH c AS (
        SELECT * FROM ({_effective_contracts_sql()}) WHERE eff_end > start_date
    ), ordered AS (
        SELECT *, max(eff_end) OVER (
                   PARTITION BY account_id ORDER BY start_date, eff_end
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
        FROM c
    ), flagged AS (
        SELECT *, CASE WHEN prev_end IS NULL OR start_date > prev_end + INTERVAL '{int(grace_days)}' DAY
                       THEN 1 ELSE 0 END AS new_spell
        FROM ordered
    ), numbered AS (
        SELECT *, sum(new_spell) OVER (
                   PARTITION BY account_id ORDER BY start_date, eff_end ROWS UNBOUNDED PRECEDING) AS spell
        FROM flagged
    )
    SELECT account_id, spell, min(start_date) AS spell_start, max(eff_end) AS spell_end
    FROM numbered GROUP BY account_id, spell
    """


def members_sql(grace_days: int) -> str:
    """(account, snapshot) pairs in the grid, decided from contracts started before the snapshot only.

    Each known contract (``start_date < s``) is joined to the snapshots up to ``grace_days``
    after its effective end; a contract further back cannot be the latest end of an account that
    is still in the grid. Per pair, ``last_end`` is the latest effective end: the account is
    covered when ``last_end >= s``, else in the grace period (``s <= last_end + grace``) unless
    that last term was cancelled. Cancel dates read here are before ``s`` whenever they matter: a
    term not covering ``s`` ended before ``s``, and so did its cancellation. (The CTE names differ
    from ``spells_sql``'s: Spark refuses a name twice in one flattened WITH.)
    """
    g = int(grace_days)
    return f"""
    WITH terms AS (
        SELECT * FROM ({_effective_contracts_sql()}) WHERE eff_end > start_date
    ), known_terms AS (
        SELECT t.account_id, sn.snapshot_date, t.eff_end, t.cancelled
        FROM terms t JOIN snaps sn
          ON sn.snapshot_date > t.start_date AND sn.snapshot_date <= t.eff_end + INTERVAL '{g}' DAY
    ), last_terms AS (
        SELECT account_id, snapshot_date, max(eff_end) AS last_end,
               max(CASE WHEN cancelled THEN eff_end END) AS last_cancel
        FROM known_terms GROUP BY account_id, snapshot_date
    )
    SELECT account_id, snapshot_date, last_end AS term_end
    FROM last_terms
    WHERE last_end >= snapshot_date OR last_cancel IS NULL OR last_cancel < last_end
    """


def grid_sql(horizon_days: int, grace_days: int, last_date: pd.Timestamp) -> str:
    """(account, snapshot) rows for active accounts (``members_sql``), with the label and the churn date.

    A spell end ``D`` is a *confirmed* churn only once ``D + grace_days`` is observed;
    label 1 when the row's spell ends in a confirmed churn before ``s + horizon`` (``D < s`` for
    an overdue row that was not renewed), 0 when it does not and ``s + horizon + grace <=
    last_date``, NULL otherwise (still to be observed: scored). ``renewal_label``: see the module.
    """
    last = last_date.strftime("%Y-%m-%d")
    h, g = int(horizon_days), int(grace_days)
    return f"""
    WITH spells AS ({spells_sql(grace_days)}),
    members AS ({members_sql(grace_days)}),
    rows AS (
        SELECT m.account_id, m.snapshot_date, m.term_end, sp.spell_end,
               sp.spell_end + INTERVAL '{g}' DAY <= TIMESTAMP '{last}' AS churn_confirmed
        FROM members m JOIN spells sp
          ON sp.account_id = m.account_id AND m.snapshot_date > sp.spell_start
         AND m.snapshot_date <= sp.spell_end + INTERVAL '{g}' DAY
    )
    SELECT account_id, snapshot_date,
           CASE WHEN churn_confirmed AND spell_end < snapshot_date + INTERVAL '{h}' DAY THEN 1
                WHEN snapshot_date + INTERVAL '{h + g}' DAY <= TIMESTAMP '{last}' THEN 0
           END AS label,
           CASE WHEN churn_confirmed AND spell_end < snapshot_date + INTERVAL '{h}' DAY THEN spell_end END AS churn_date,
           term_end,
           CASE WHEN spell_end > term_end THEN 0 WHEN churn_confirmed THEN 1 END AS renewal_label
    FROM rows
    ORDER BY account_id, snapshot_date
    """


def build_grid(
    contracts: pd.DataFrame,
    dates: pd.DatetimeIndex,
    horizon_days: int,
    grace_days: int,
    last_date: pd.Timestamp,
) -> pd.DataFrame:
    """The labelled snapshot grid.

    Returns:
        One row per (account_id, snapshot_date) active at the snapshot, with columns
        ``account_id`` (string), ``snapshot_date`` (datetime64[ns]), ``label`` (Int8, <NA>
        when not yet observed) and ``churn_date`` (the confirmed churn behind a label 1: the end
        of the row's spell, before ``s`` for an overdue account that did not renew; NaT
        otherwise; for evaluation only, never a feature).
    """
    snaps = pd.DataFrame({"snapshot_date": pd.DatetimeIndex(dates).astype("datetime64[ns]")})
    con = connect({"contracts": contracts[["account_id", "start_date", "end_date", "cancel_date"]]})
    con.register("snaps", snaps)
    grid = query(con, grid_sql(horizon_days, grace_days, last_date))
    con.close()
    return pd.DataFrame(
        {
            "account_id": grid["account_id"].astype("string"),
            "snapshot_date": pd.to_datetime(grid["snapshot_date"]).astype("datetime64[ns]"),
            "label": grid["label"].astype("Int8"),
            "churn_date": pd.to_datetime(grid["churn_date"]).astype("datetime64[ns]"),
            "term_end": pd.to_datetime(grid["term_end"]).astype("datetime64[ns]"),
            "renewal_label": grid["renewal_label"].astype("Int8"),
        }
    )
