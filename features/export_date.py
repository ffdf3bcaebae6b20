"""The export date: the last day an export holds data for, from its bulk, not from its latest row.

One mistyped timestamp (a year typed into the next one) must not move the end of the
export: the snapshot grid, the labels ("no churn seen up to the export date") and the
default scoring date all hang on it. So the date is either given (``data.export_date``)
or inferred from the daily row counts of the event tables, pooled:

- the *core* of the export is the span holding the middle half of its dated rows; its
  *usual daily volume* is the core's rows per calendar day (weekends and holidays
  included), its *usual silence* the longest run of days without a single row in it;
- the dated days split into runs wherever a silence is longer than the usual one;
- the export date is the last day of the earliest run, among those ending after the core,
  after which the remaining rows are too few (at most half a usual day) or too sparse (under 5% of the usual daily volume
  over the days they span) to be data rather than stray typos.

So weekends, holidays and a quiet last day stay in the export (their silences are usual
ones, or there is no silence at all), a handful of rows typed into a later year does not
count, and an export that really ends, today or any day, ends on its last day with rows.
Ingest decides the date once (``pipelines.ingestion``) and records it beside the canonical
tables; features and scoring read that record. ``export_last_date`` applies the same rule
to canonical tables held in memory (tests, notebooks, ad-hoc scoring).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.duck import ParquetTable, Table
from features.engine import DuckDBEngine, sql_identifier

# The dated column of each event table whose daily volume tells where the export ends.
EVENT_DATES: dict[str, str] = {
    "emails": "sent_at",
    "meetings": "start_at",
    "tickets": "created_at",
    "usage_events": "event_at",
    "surveys": "sent_at",
}
# Without any event row, signups and contract starts stand in (contract *ends* are planned dates).
FALLBACK_DATES: dict[str, tuple[str, ...]] = {"accounts": ("created_date",), "contracts": ("start_date", "cancel_date")}
CORE_SHARE = 0.50  # the middle share of dated rows whose volume and silences are "usual"
STRAY_DAYS = 0.5  # rows after the end: at most this many usual days' worth are strays...
STRAY_DENSITY = 0.05  # ...or, spread over the days they span, less than this share of the usual daily volume
RECORD = "export.json"  # written by ingest beside the canonical tables: the export date and whether ingest accepted
GIVEN = "data.export_date"
INFERRED = "inferred from the event tables"
INFERRED_FALLBACK = "inferred from account and contract dates (no event table has rows)"


@dataclass(frozen=True)
class ExportDate:
    """The export's last day, how it was decided, and why (one line for the log)."""

    date: dt.date
    decided_by: str
    reason: str
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "date": self.date.isoformat(),
            "decided_by": self.decided_by,
            "reason": self.reason,
            **({"details": self.details} if self.details else {}),
        }

    @classmethod
    def from_dict(cls, doc: Mapping) -> ExportDate:
        return cls(dt.date.fromisoformat(doc["date"]), doc["decided_by"], doc["reason"], dict(doc.get("details", {})))

    def line(self) -> str:
        return f"export date {self.date} ({self.decided_by}): {self.reason}"


def given(date: dt.date) -> ExportDate:
    """A date set in params.yaml: taken as it is."""
    return ExportDate(date, GIVEN, f"set in params.yaml; rows dated after {date} are rejected as future-dated")


def infer(counts: Mapping[str, pd.Series], fallback: Mapping[str, pd.Series] | None = None) -> ExportDate:
    """The export date from rows per day, by table (index: days as naive midnights, values: row counts).

    ``counts`` are the event tables; ``fallback`` (signups, contract starts) is used only
    when no event table has a dated row. Raises ValueError when there is no date at all.
    """
    decided_by = INFERRED
    pooled = _pool(counts)
    if pooled.empty and fallback is not None:
        pooled, decided_by = _pool(fallback), INFERRED_FALLBACK
    if pooled.empty:
        raise ValueError("the export has no dated rows at all: cannot tell where it ends")
    end, stats = bulk_end(pooled)
    latest = {name: _day(series.index.max()).isoformat() for name, series in counts.items() if len(series)}
    reason = _reason(end, stats, pooled)
    details = {**stats, "latest_row_by_table": latest}
    return ExportDate(end, decided_by, reason, details)


def bulk_end(pooled: pd.Series) -> tuple[dt.date, dict]:
    """The last day of the bulk of ``pooled`` (rows per day, sorted by day) and the numbers behind it."""
    days = pd.DatetimeIndex(pooled.index)
    rows = pooled.to_numpy(dtype="float64")
    total = rows.sum()
    cumulative = np.cumsum(rows)
    low = (1 - CORE_SHARE) / 2
    first = int(np.searchsorted(cumulative, low * total, side="left"))
    last = int(np.searchsorted(cumulative, (1 - low) * total, side="left"))
    core = days[first : last + 1]
    span = (core[-1] - core[0]).days + 1
    usual_daily = rows[first : last + 1].sum() / span
    gaps = np.asarray((days[1:] - days[:-1]).days)  # days from one dated day to the next (1: no silence)
    usual_gap = int(gaps[first:last].max()) if last > first else 1
    # a run may end the export only after the core: rows typed into a past decade never end it
    run_ends = [p for p in [*np.flatnonzero(gaps > usual_gap).tolist(), len(days) - 1] if p >= last]
    end = run_ends[-1]
    for position in run_ends:
        after = total - cumulative[position]
        spanned = (days[-1] - days[position]).days
        if after <= STRAY_DAYS * usual_daily or (spanned and after / spanned < STRAY_DENSITY * usual_daily):
            end = position
            break
    stats = {
        "rows_dated": int(total),
        "usual_daily_rows": round(float(usual_daily), 1),
        "usual_silence_days": max(usual_gap - 1, 0),
        "rows_after": int(total - cumulative[end]),
    }
    return _day(days[end]), stats


def _reason(end: dt.date, stats: dict, pooled: pd.Series) -> str:
    daily = stats["usual_daily_rows"]
    per_day = f"{daily:,.0f}" if daily >= 10 else f"{daily:.1f}"
    bulk = f"last day of the bulk of {stats['rows_dated']:,} dated rows (about {per_day} a day)"
    after = pooled[pooled.index > pd.Timestamp(end)]
    if after.empty:
        return f"{bulk}; no row dated later"
    first, last = _day(after.index.min()), _day(after.index.max())
    when = f"on {first}" if first == last else f"from {first} to {last} on {len(after)} days"
    return f"{bulk}; {int(after.sum()):,} later row(s), {when}, too few to be data: rejected as future-dated"


def _pool(counts: Mapping[str, pd.Series]) -> pd.Series:
    parts = [s[s > 0] for s in counts.values() if len(s)]
    if not parts:
        return pd.Series(dtype="int64")
    pooled = pd.concat(parts).groupby(level=0).sum().sort_index()
    pooled.index = pd.DatetimeIndex(pooled.index).astype("datetime64[ns]")
    return pooled


def _day(value: object) -> dt.date:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.date()


# ---------------------------------------------------------------- rows per day


def day_counts(values: pd.Series) -> pd.Series:
    """Rows per UTC calendar day of a timestamp or date column (missing values left out)."""
    values = values.dropna()
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    days = pd.to_datetime(values).dt.normalize().astype("datetime64[ns]")
    return days.value_counts().sort_index().rename(None).rename_axis(None)


def table_day_counts(table: Table, column: str) -> pd.Series:
    """``day_counts`` of one column of a canonical table, counted by DuckDB in place when it is on disk."""
    if isinstance(table, ParquetTable):
        engine = DuckDBEngine()
        try:
            name = sql_identifier(column)
            frame = engine.execute(
                f"SELECT CAST({name} AS DATE) AS day, count(*) AS n FROM ({table[[column]].view_sql()}) "
                f"WHERE {name} IS NOT NULL GROUP BY 1 ORDER BY 1"
            ).df()
        finally:
            engine.close()
        return pd.Series(
            frame["n"].to_numpy(dtype="int64"), index=pd.DatetimeIndex(frame["day"]).astype("datetime64[ns]")
        )
    return day_counts(table[column])


def counts_of_tables(tables: Mapping[str, Table], columns: Mapping[str, str | tuple[str, ...]]) -> dict[str, pd.Series]:
    """Rows per day of the named columns of the tables present (several columns of one table are added up)."""
    out: dict[str, pd.Series] = {}
    for name, wanted in columns.items():
        table = tables.get(name)
        if table is None or len(table) == 0:
            continue
        parts = [table_day_counts(table, c) for c in ((wanted,) if isinstance(wanted, str) else wanted)]
        out[name] = _pool({str(i): p for i, p in enumerate(parts)})
    return out


def infer_from_tables(tables: Mapping[str, Table]) -> ExportDate:
    """``infer`` on canonical tables (frames or Parquet files)."""
    return infer(counts_of_tables(tables, EVENT_DATES), counts_of_tables(tables, FALLBACK_DATES))


def export_last_date(tables: Mapping[str, Table]) -> pd.Timestamp:
    """The export date of canonical tables, as a naive midnight: the grid's last snapshot, the labels' horizon."""
    return pd.Timestamp(infer_from_tables(tables).date)
