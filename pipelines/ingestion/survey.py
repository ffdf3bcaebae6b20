"""Where the export ends, decided before any row is judged: a quick pass over its dated columns.

The future-dated rule needs the export date before the first row is checked, and the
export date comes from the bulk of the event tables (``features.export_date``). So ingest
first reads only the one dated column of each event table (and the columns its preset
filters on), maps and parses it as the full pass will, and counts rows per day. A table
this pass cannot read is skipped: the full pass reports what is wrong with it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping as MappingType
from pathlib import Path

import pandas as pd

from features.errors import InputError
from features.export_date import EVENT_DATES, FALLBACK_DATES, ExportDate, day_counts, given, infer
from features.schemas import TABLES, Table
from pipelines.ingestion import repairs
from pipelines.ingestion.mapping import step_columns
from pipelines.ingestion.presets import Mapping, apply_filters, column_format, load_related, map_columns
from pipelines.ingestion.readers import CHUNK_ROWS, find_file, read_export_file

RUN_DATE = "the day of the run (the export has no dated rows)"


def decide_export_date(
    export_dir: Path, mapping: Mapping, export_date: dt.date | None = None, chunk_rows: int = CHUNK_ROWS
) -> ExportDate:
    """``export_date`` when given, else inferred from the daily volume of the export's event tables."""
    if export_date is not None:
        return given(export_date)
    counts = dated_rows(export_dir, mapping, EVENT_DATES, chunk_rows)
    fallback = None
    if not any(len(s) for s in counts.values()):
        fallback = dated_rows(export_dir, mapping, FALLBACK_DATES, chunk_rows)
    try:
        return infer(counts, fallback)
    except ValueError:
        today = dt.datetime.now(dt.UTC).date()
        return ExportDate(today, RUN_DATE, "no table has a readable date; rows dated after the run are future-dated")


def dated_rows(
    export_dir: Path, mapping: Mapping, columns: MappingType[str, str | tuple[str, ...]], chunk_rows: int = CHUNK_ROWS
) -> dict[str, pd.Series]:
    """Rows per day of the named canonical columns, per table found in the export (rows the preset filters out left out)."""
    out: dict[str, pd.Series] = {}
    for name, wanted in columns.items():
        names = (wanted,) if isinstance(wanted, str) else wanted
        try:
            counts = _table_dated_rows(export_dir, mapping, TABLES[name], names, chunk_rows)
        except InputError:
            continue  # the full pass stops on it, with the same message, in its turn
        if counts is not None:
            out[name] = counts
    return out


def _table_dated_rows(
    export_dir: Path, mapping: Mapping, table: Table, names: tuple[str, ...], chunk_rows: int
) -> pd.Series | None:
    spec = mapping.tables.get(table.name)
    found = [(s, p) for s in (spec.sources if spec else []) if (p := find_file(export_dir, s.file)) is not None]
    if not found:
        return None
    source, path = found[0]
    dated = Table(table.name, table.required, table.meaning, (), tuple(table.column(n) for n in names))
    specs = [source.columns[n] for n in names if n in source.columns]
    read = {c for spec in specs for step in spec.source for c in step_columns(step)}
    read |= {c for rule in source.filters for c in rule.column}
    raw = read_export_file(path, read)
    if raw.empty_file:
        return None
    related = load_related(export_dir, mapping, source) if any(spec.lookups for spec in specs) else {}
    parts: list[pd.Series] = []
    for chunk in raw.chunks(chunk_rows):
        keep, _, _ = apply_filters(chunk, source, path)
        text = map_columns(chunk.loc[keep], source, dated, path, related)
        for column in dated.columns:
            parsed = repairs.coerce(text[column.name], column, column_format(source, column.name))
            parts.append(day_counts(parsed.values))
    parts = [p for p in parts if len(p)]
    return pd.concat(parts).groupby(level=0).sum().sort_index() if parts else pd.Series(dtype="int64")
