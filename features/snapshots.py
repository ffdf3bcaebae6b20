"""The snapshot grid and the churn labels.

A *snapshot* is an observation date ``s``: features see only rows strictly before ``s``
(event time < ``s`` 00:00 UTC, dates < ``s``). The grid has one row per account that is
*active* at ``s``.

Contracts are merged into *spells*: contracts sorted by start, a contract that starts no
later than ``grace_days`` after the running effective end of the previous ones joins the
same spell (renewals, overlaps, short gaps). The effective end of a contract is its
``end_date``, or its ``cancel_date`` when it was cancelled earlier. An account is active at
``s`` when ``spell_start < s <= spell_end`` for one of its spells (so a grace gap between
two contracts counts as active). Each spell end is a churn date: no contract covers it and
none starts within ``grace_days`` after it.

Labels look ahead by design (that is what a label is); features never do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd

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
    """Contracts with their effective end; a contract cancelled before it began never covered anything."""
    return """
        SELECT account_id, start_date,
               CASE WHEN cancel_date IS NOT NULL AND cancel_date < end_date THEN cancel_date ELSE end_date END AS eff_end
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


def grid_sql(horizon_days: int, grace_days: int, last_date: pd.Timestamp) -> str:
    """(account, snapshot) rows for active accounts, with the label and the churn date.

    A spell end ``D`` is a *confirmed* churn only once ``D + grace_days`` is observed;
    label 1 when a confirmed churn falls in ``[s, s + horizon)``, 0 when none does and
    ``s + horizon + grace <= last_date``, NULL otherwise (still to be observed: scored).
    """
    last = last_date.strftime("%Y-%m-%d")
    h, g = int(horizon_days), int(grace_days)
    return f"""
    WITH spells AS ({spells_sql(grace_days)}),
    rows AS (
        SELECT sp.account_id, sn.snapshot_date, sp.spell_end,
               sp.spell_end + INTERVAL '{g}' DAY <= TIMESTAMP '{last}' AS churn_confirmed
        FROM spells sp JOIN snaps sn
          ON sn.snapshot_date > sp.spell_start AND sn.snapshot_date <= sp.spell_end
    )
    SELECT account_id, snapshot_date,
           CASE WHEN churn_confirmed AND spell_end < snapshot_date + INTERVAL '{h}' DAY THEN 1
                WHEN snapshot_date + INTERVAL '{h + g}' DAY <= TIMESTAMP '{last}' THEN 0
           END AS label,
           CASE WHEN churn_confirmed AND spell_end < snapshot_date + INTERVAL '{h}' DAY THEN spell_end END AS churn_date
    FROM rows
    ORDER BY snapshot_date, account_id
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
        when not yet observed) and ``churn_date`` (first confirmed churn in the horizon,
        NaT otherwise; for evaluation only, never a feature).
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
        }
    )
