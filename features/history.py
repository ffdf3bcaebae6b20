"""Where an export's history starts, and so where its snapshot grid can start (``first_snapshot: auto``).

The start of history is not the oldest date in the export: contracts reach back years before
the CRM captured any activity (a customer since 2019 brings its 2019 contract into a 2024
export), and one mistyped timestamp can put an e-mail in 2015. It is read from the *bulk* of
the event tables instead:

- an event table starts on the first day from which it carries at least ``BULK_SHARE`` of its
  usual volume over the next ``BULK_DAYS`` days; its usual volume is its daily rate over the
  middle half of its rows (between the days by which it holds 25% and 75% of them), so a few
  stray rows weeks or years earlier move nothing, and a quiet holiday week stops nothing;
- history starts when every event table has started (the latest of their starts): from the
  first snapshot on, every feature family then has its full look-back. A table too bursty to
  date (all its rows within a few days) does not count;
- an export without any datable event table falls back to its contracts' start dates, by the
  same rule.

The first snapshot is then the first Monday at least the longest look-back after that start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.duck import ParquetTable, Table, naive_utc
from features.engine import DuckDBEngine, sql_identifier
from features.schemas import TABLES

BULK_SHARE = 0.25  # share of a table's usual volume that a period must carry to count as its bulk
BULK_DAYS = 28  # the period over which that volume is counted (four weeks: one holiday week does not stop it)


def event_time_column(table: str) -> str:
    """The column that dates an event table's rows: its first timestamp column (e-mails' ``sent_at``...)."""
    return next(c.name for c in TABLES[table].columns if c.dtype == "timestamp")


EVENT_TIME = {name: event_time_column(name) for name, spec in TABLES.items() if not spec.required}


def daily_counts(table: Table, column: str) -> pd.Series:
    """Rows per UTC calendar day of ``column`` (days without rows left out), sorted by day."""
    engine = DuckDBEngine()
    try:
        if isinstance(table, ParquetTable):
            engine.register_parquet("t", table[[column]])
        else:
            engine.register("t", naive_utc(table[[column]]))
        name = sql_identifier(column)
        counts = engine.query(
            f"SELECT CAST({name} AS DATE) AS day, count(*) AS n FROM t WHERE {name} IS NOT NULL GROUP BY 1 ORDER BY 1"
        )
    finally:
        engine.close()
    return pd.Series(
        counts["n"].to_numpy(dtype="int64"), index=pd.DatetimeIndex(pd.to_datetime(counts["day"])), name=column
    )


def bulk_start(daily: pd.Series) -> pd.Timestamp | None:
    """The first day from which a table carries its bulk (see the module), or None when it is too bursty to date.

    Args:
        daily: rows per day, indexed by day (days without rows may be left out).
    """
    daily = daily[daily > 0].sort_index()
    if daily.empty:
        return None
    days = daily.index
    cumulative = daily.to_numpy().cumsum()
    total = cumulative[-1]
    first_quartile = days[np.searchsorted(cumulative, 0.25 * total)]
    third_quartile = days[np.searchsorted(cumulative, 0.75 * total)]
    middle = daily[(days >= first_quartile) & (days <= third_quartile)].sum()
    usual_per_day = middle / ((third_quartile - first_quartile).days + 1)
    needed = BULK_SHARE * BULK_DAYS * usual_per_day
    # rows in [d, d + BULK_DAYS) for every day d that has rows
    end = np.searchsorted(days.to_numpy(), (days + pd.Timedelta(days=BULK_DAYS)).to_numpy(), side="left")
    before = np.concatenate([[0], cumulative[:-1]])
    ahead = cumulative[end - 1] - before
    enough = np.flatnonzero(ahead >= needed)
    return pd.Timestamp(days[enough[0]]) if len(enough) else None


@dataclass(frozen=True)
class HistoryStart:
    """The first day of the export's history, the table that set it, and each event table's own start."""

    day: pd.Timestamp
    source: str  # the event table(s) that start last ("emails", "every event table"), or "contracts"
    by_table: dict[str, str | None]  # each event table's start (ISO day), None when too bursty to date

    def as_dict(self) -> dict:
        return {"start": self.day.date().isoformat(), "set_by": self.source, "by_table": self.by_table}


def history_start(tables: Mapping[str, Table]) -> HistoryStart:
    """Where the export's history starts (see the module): the latest start among its event tables."""
    starts: dict[str, pd.Timestamp | None] = {}
    for name, column in EVENT_TIME.items():
        table = tables.get(name)
        if table is not None and not table.empty and column in table.columns:
            starts[name] = bulk_start(daily_counts(table, column))
    by_table = {name: None if day is None else day.date().isoformat() for name, day in starts.items()}
    dated = {name: day for name, day in starts.items() if day is not None}
    if dated:
        day = max(dated.values())
        last = [name for name, start in dated.items() if start == day]
        source = "every event table" if len(last) == len(starts) > 1 else ", ".join(last)
        return HistoryStart(day, source, by_table)
    contracts = tables["contracts"]
    daily = daily_counts(contracts, "start_date")
    if daily.empty:
        raise ValueError("the export has no dates at all: cannot place snapshots")
    day = bulk_start(daily)
    return HistoryStart(day if day is not None else daily.index.min(), "contracts", by_table)


def first_snapshot_after(day: dt.date | pd.Timestamp, lookback_days: int, weekday: int) -> pd.Timestamp:
    """The first ``weekday`` (0 Monday) at least ``lookback_days`` after ``day``: every look-back lies in the history."""
    earliest = pd.Timestamp(day).normalize() + pd.Timedelta(days=lookback_days)
    return earliest + pd.Timedelta(days=(weekday - earliest.weekday()) % 7)
