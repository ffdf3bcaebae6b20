"""Is every event table still arriving? Each table's freshness and its weekly volume.

A connector that silently stops leaves a table whose last rows are weeks before the export's
end. Point-in-time features cannot tell that silence from customers going quiet, so the list
would fill with false alarms. Two checks catch it before scoring (``pipelines.score``):

- **freshness**: a table's last dated row against the export date. The lag allowed is
  ``monitor.max_lag_days`` (per table), or the table's own usual silence when that is longer
  (a survey table sent in quarterly campaigns is quiet for weeks between them, every quarter);
- **volume**: rows in the last complete week (Monday to Sunday) against the usual level: the
  median of the trailing weeks, scaled by how the same week a year earlier compared with
  *its* trailing weeks when the history reaches back that far, so Christmas and August are
  not alarms. Per table and per account segment. A table with no rows where many were
  expected stops the run like a stale table; a week far below its level is a warning.

Pure functions of canonical tables (frames or Parquet files) and the export date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from features.duck import Table, connect, query
from features.engine import sql_identifier, use_engine
from features.export_date import EVENT_DATES, bulk_end, counts_of_tables

WEEK = dt.timedelta(days=7)
NO_SEGMENT = "(no segment)"
YEAR_WEEKS = 52


@dataclass(frozen=True)
class Freshness:
    """One event table's dated span and how far its last row is behind the export date."""

    table: str
    first_date: dt.date
    last_date: dt.date
    lag_days: int  # export date minus the last dated row's day
    usual_silence_days: int  # the longest run of days without a row in the bulk of this table

    def to_dict(self) -> dict:
        doc = asdict(self)
        return {**doc, "first_date": self.first_date.isoformat(), "last_date": self.last_date.isoformat()}

    def allowed_lag(self, max_lag_days: int) -> int:
        """The lag this table may show: the limit, or its own usual silence when that is longer."""
        return max(max_lag_days, self.usual_silence_days + 1)


def table_freshness(tables: Mapping[str, Table], export_date: dt.date) -> dict[str, Freshness]:
    """Freshness of each event table with dated rows (rows after the export date are not counted)."""
    out: dict[str, Freshness] = {}
    for name, counts in counts_of_tables(tables, EVENT_DATES).items():
        counts = counts[counts.index <= pd.Timestamp(export_date)]
        if counts.empty:
            continue
        _, stats = bulk_end(counts)
        first, last = counts.index.min().date(), counts.index.max().date()
        out[name] = Freshness(name, first, last, (export_date - last).days, int(stats["usual_silence_days"]))
    return out


def stale_tables(freshness: Mapping[str, Freshness], max_lag_days: Mapping[str, int]) -> dict[str, Freshness]:
    """The tables whose last row lags the export date by more than they may (``max_lag_days``: per table)."""
    return {name: f for name, f in freshness.items() if f.lag_days > f.allowed_lag(max_lag_days[name])}


def stale_line(f: Freshness, max_lag_days: int) -> str:
    """One line naming the table, its last date and the lag: what a stale table stops the run with."""
    return (
        f"{f.table}: last row on {f.last_date}, {f.lag_days} days before the export date "
        f"(more than the {f.allowed_lag(max_lag_days)} allowed by monitor.max_lag_days)"
    )


# ---------------------------------------------------------------- weekly volume


def last_complete_week(export_date: dt.date) -> dt.date:
    """The Monday of the last Monday-to-Sunday week that ends on or before the export date."""
    sunday = export_date - dt.timedelta(days=(export_date.weekday() + 1) % 7)
    return sunday - dt.timedelta(days=6)


def weekly_volumes(tables: Mapping[str, Table], export_date: dt.date) -> pd.DataFrame:
    """Rows per table, account segment and week (Monday), for complete weeks up to the export date.

    Columns ``table``, ``segment`` (``NO_SEGMENT`` for accounts without one, or rows of unknown
    accounts), ``week`` (datetime64) and ``rows``; weeks without a row are absent.
    """
    end = last_complete_week(export_date) + WEEK
    present = {name: column for name, column in EVENT_DATES.items() if name in tables and len(tables[name])}
    if not present:
        return pd.DataFrame({"table": [], "segment": [], "week": pd.to_datetime([]), "rows": []})
    views = {name: tables[name][["account_id", column]] for name, column in present.items()}
    views["accounts"] = tables["accounts"][["account_id", "segment"]]
    parts = [
        f"""SELECT '{name}' AS "table", coalesce(CAST(a.segment AS VARCHAR), '{NO_SEGMENT}') AS segment,
                   date_trunc('week', CAST(e.{sql_identifier(column)} AS TIMESTAMP)) AS week, count(*) AS rows
            FROM {sql_identifier(name)} e LEFT JOIN (SELECT DISTINCT account_id, segment FROM accounts) a
              ON a.account_id = e.account_id
            WHERE e.{sql_identifier(column)} < TIMESTAMP '{end.isoformat()}'
            GROUP BY ALL"""
        for name, column in present.items()
    ]
    with use_engine("duckdb"):
        con = connect(views)
        try:
            frame = query(con, " UNION ALL ".join(parts) + ' ORDER BY "table", segment, week')
        finally:
            con.close()
    frame["week"] = pd.to_datetime(frame["week"]).astype("datetime64[ns]")
    frame["rows"] = frame["rows"].astype("int64")
    return frame


@dataclass(frozen=True)
class VolumeCheck:
    """The last complete week's rows of one table (or one segment of it) against its usual level."""

    table: str
    segment: str | None  # None: the whole table
    week: dt.date
    rows: int
    expected: float  # the trailing median, scaled by last year's same week where the history reaches
    trailing_median: float
    seasonal_factor: float | None  # same week a year earlier / its trailing median (None: too little history)
    status: str  # ok | low | empty | quiet (too few rows usually to judge)

    def to_dict(self) -> dict:
        return {**asdict(self), "week": self.week.isoformat(), "expected": round(self.expected, 1)}

    def line(self) -> str:
        where = self.table if self.segment is None else f"{self.table} (segment {self.segment})"
        end = self.week + dt.timedelta(days=6)
        seasonal = (
            f", after last year's same week ({self.seasonal_factor:.2f} x its usual)"
            if self.seasonal_factor is not None
            else ""
        )
        return (
            f"{where}: {self.rows:,} rows in the week {self.week} to {end}, expected about {self.expected:,.0f} "
            f"(median of the trailing weeks {self.trailing_median:,.0f}{seasonal})"
        )


def check_week(
    weekly: pd.Series, week: dt.date, trailing_weeks: int, min_ratio: float, min_usual_rows: float
) -> tuple[float, float, float | None, str]:
    """(expected, trailing median, seasonal factor, status) of ``week`` in one weekly series (index: Mondays).

    Weeks without rows count as 0 once the series has started, so a trailing stretch of empty
    weeks lowers the level instead of vanishing from it.
    """
    start = weekly.index.min() if len(weekly) else pd.Timestamp(week)
    monday = pd.Timestamp(week)
    full = weekly.reindex(pd.date_range(min(start, monday), monday, freq="7D"), fill_value=0)
    rows = int(full.iloc[-1])
    trailing = full.iloc[:-1].tail(trailing_weeks)
    if len(trailing) < trailing_weeks:
        return float("nan"), float("nan"), None, "quiet"
    median = float(np.median(trailing))
    factor = seasonal_factor(full, monday, trailing_weeks)
    expected = median * (factor if factor is not None else 1.0)
    if median < min_usual_rows or expected < min_usual_rows:
        return expected, median, factor, "quiet"
    if rows == 0:
        return expected, median, factor, "empty"
    return expected, median, factor, "low" if rows < min_ratio * expected else "ok"


def seasonal_factor(full: pd.Series, monday: pd.Timestamp, trailing_weeks: int) -> float | None:
    """How the same week a year earlier compared with its own trailing median, where the series reaches."""
    year_ago = monday - pd.Timedelta(weeks=YEAR_WEEKS)
    if year_ago - pd.Timedelta(weeks=trailing_weeks) < full.index.min():
        return None
    then = full.loc[year_ago - pd.Timedelta(weeks=trailing_weeks) : year_ago]
    base = float(np.median(then.iloc[:-1]))
    return None if base <= 0 else float(then.iloc[-1]) / base


def volume_checks(
    volumes: pd.DataFrame, week: dt.date, trailing_weeks: int, min_ratio: float, min_usual_rows: float
) -> list[VolumeCheck]:
    """``check_week`` for each table as a whole, then for each of its segments."""
    checks: list[VolumeCheck] = []
    for table, rows in volumes.groupby("table", sort=True):
        series = {None: rows.groupby("week")["rows"].sum()}
        if rows["segment"].nunique() > 1:
            series.update({seg: part.set_index("week")["rows"] for seg, part in rows.groupby("segment", sort=True)})
        for segment, weekly in series.items():
            expected, median, factor, status = check_week(weekly, week, trailing_weeks, min_ratio, min_usual_rows)
            count = int(weekly.get(pd.Timestamp(week), 0))
            checks.append(VolumeCheck(str(table), segment, week, count, expected, median, factor, status))
    return checks


# ---------------------------------------------------------------- both checks, decided


@dataclass(frozen=True)
class InputHealth:
    """Freshness and volume of an export's event tables, and what the weekly run may do with them.

    ``allowed``: tables scored with although stale or empty (``monitor.allow_stale`` or
    ``--allow-stale``); their families are computed as of their last row, and the list says so.
    """

    export_date: dt.date
    freshness: dict[str, Freshness]
    volume: list[VolumeCheck]
    max_lag_days: dict[str, int]
    allowed: tuple[str, ...]

    @property
    def stale(self) -> dict[str, Freshness]:
        return stale_tables(self.freshness, self.max_lag_days)

    @property
    def empty(self) -> dict[str, VolumeCheck]:
        """Tables (as a whole) without a row in the last complete week where many were expected."""
        return {c.table: c for c in self.volume if c.segment is None and c.status == "empty"}

    def problems(self) -> dict[str, str]:
        """One line per stale or empty table: what stops the run unless the table is allowed."""
        lines = {name: stale_line(f, self.max_lag_days[name]) for name, f in self.stale.items()}
        for name, check in self.empty.items():
            lines.setdefault(name, f"{check.line()}: no row at all")
        return lines

    def blocking(self) -> dict[str, str]:
        return {name: line for name, line in self.problems().items() if name not in self.allowed}

    def shift_days(self) -> dict[str, int]:
        """Allowed stale tables and how many days earlier their features are computed (as of their last row)."""
        return {name: f.lag_days for name, f in self.stale.items() if name in self.allowed}

    def notes(self) -> list[str]:
        """What the list's reader must know: each allowed problem, and how its features were computed."""
        shifts = self.shift_days()
        out = []
        for name, line in self.problems().items():
            if name not in self.allowed:
                continue
            how = (
                f"its features as of {self.freshness[name].last_date + dt.timedelta(days=1)}"
                if name in shifts
                else "its features read the missing rows as no activity"
            )
            out.append(f"scored with --allow-stale {name}: {line}; {how}")
        return out

    def warnings(self) -> list[str]:
        """Weeks far below their usual level (tables and segments), and empty segments: logged, not stopping."""
        problems = self.problems()  # a stale or empty table's segments say nothing more
        return [
            c.line() + (": no row at all" if c.status == "empty" else "")
            for c in self.volume
            if c.table not in problems and (c.status == "low" or (c.status == "empty" and c.segment is not None))
        ]

    def to_dict(self) -> dict:
        return {
            "export_date": self.export_date.isoformat(),
            "last_complete_week": last_complete_week(self.export_date).isoformat(),
            "freshness": {name: f.to_dict() for name, f in self.freshness.items()},
            "stale": sorted(self.stale),
            "empty": sorted(self.empty),
            "allowed": list(self.allowed),
            "notes": self.notes(),
            "warnings": self.warnings(),
            "volume": [c.to_dict() for c in self.volume],
        }


def input_health(
    tables: Mapping[str, Table],
    export_date: dt.date,
    max_lag_days: Mapping[str, int],
    allowed: tuple[str, ...],
    trailing_weeks: int,
    min_ratio: float,
    min_usual_rows: float,
) -> InputHealth:
    """Both checks on canonical tables at the export date."""
    volume = volume_checks(
        weekly_volumes(tables, export_date), last_complete_week(export_date), trailing_weeks, min_ratio, min_usual_rows
    )
    return InputHealth(export_date, table_freshness(tables, export_date), volume, dict(max_lag_days), tuple(allowed))
