"""From an export folder to canonical tables, rejected rows and the ingestion report.

Per table, chunk by chunk (so a table of a hundred million rows never sits in memory whole):
read as text, apply the preset's filters and column mapping, clean text, type each column,
derive missing values, then apply the row rules in a fixed order (unparseable, missing,
value rules, future-dated, unknown account, schema checks); the export date the
future-dated rule compares with is decided first, unless params.yaml gives it, by a quick
pass over the event tables' dated columns (``pipelines.ingestion.survey``). Rows that pass
are staged to Parquet with their row number; the rules that compare rows with each other (exact
duplicates, then key conflicts) run once over the staged table in DuckDB, which spills to
disk rather than running out of memory. A row carries the first reason it failed; validity
rules run before duplicate handling so that, of two versions of a record, a valid one is
never dropped for an invalid one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.duck import ParquetTable, read_frame
from features.engine import DuckDBEngine, sql_identifier, sql_literal
from features.errors import InputError
from features.export_date import RECORD, ExportDate
from features.freshness import table_freshness
from features.schemas import ROW_SCHEMAS, TABLES, Column, Table, empty_table, pandas_dtype
from pipelines.ingestion import repairs
from pipelines.ingestion.presets import (
    BUILT_IN,
    Mapping,
    SourceSpec,
    apply_derivations,
    apply_filters,
    column_format,
    load_mapping,
    load_related,
    map_source,
    repair_rules,
    unread_columns,
)
from pipelines.ingestion.readers import CHUNK_ROWS, ROW, RawTable, find_file, looked_for, read_export_file
from pipelines.ingestion.report import IngestReport, TableReport
from pipelines.ingestion.survey import decide_export_date
from pipelines.ingestion.thresholds import refusal
from pipelines.io import arrow_table
from pipelines.logs import Progress

if TYPE_CHECKING:
    import duckdb

TRUNCATED_ROW = "truncated row (file ends mid-row)"
DUPLICATE_ROW = "duplicate row"
WRONG_TYPE_MIN_ROWS = 2  # a single unparseable value is a bad row; a whole column of them, a wrong type
REPAIRS = "_repairs"  # staged bit set: which repair rules touched the row
ID_STRIPPED = "id whitespace stripped"
CASE_NORMALISED = "category case normalised"
OFFSET_CONVERTED = "offset converted to UTC"
FOLLOW_UP_BLANKED = "follow-up date after the export date blanked (not yet happened)"
STAGING = "_staging"
LOG = logging.getLogger("churn.ingest")


@dataclass
class IngestResult:
    """Every canonical table found in the export, their rejected rows and the run's report (in memory)."""

    tables: dict[str, pd.DataFrame]
    rejected: dict[str, pd.DataFrame]
    report: IngestReport


def ingest_export(
    export_dir: Path,
    preset: str | Path = "canonical",
    export_date: dt.date | None = None,
    chunk_rows: int = CHUNK_ROWS,
    workers: int = 1,
    limits: dict[str, float] | None = None,
) -> IngestResult:
    """``ingest_export_to`` a scratch folder, read back into pandas: for small exports, tests and scoring.

    With ``limits`` (table -> largest share of rows it may lose to rejection), a table over
    its limit, or left without a row, is an ``InputError``.
    """
    with tempfile.TemporaryDirectory(prefix="churn-ingest-") as tmp:
        out = Path(tmp)
        report = ingest_export_to(export_dir, out, preset, export_date, chunk_rows, workers)
        line = refusal(report, limits, out / "rejected") if limits is not None else None
        if line:
            raise InputError(line)
        tables = {name: read_frame(out / f"{name}.parquet") for name in report.tables}
        rejected = {name: pd.read_parquet(out / "rejected" / f"{name}.parquet") for name in report.tables}
    return IngestResult(tables, rejected, report)


def ingest_export_to(
    export_dir: Path,
    out: Path,
    preset: str | Path = "canonical",
    export_date: dt.date | None = None,
    chunk_rows: int = CHUNK_ROWS,
    workers: int = 1,
    memory_limit: str | None = None,
) -> IngestReport:
    """Write ``<out>/<table>.parquet``, ``<out>/rejected/<table>.parquet`` and ``<out>/export.json``.

    The export date is ``export_date``, or inferred from the export's bulk (and logged with
    its reason). Accounts come first, so the other tables can reject rows of unknown accounts.
    """
    mapping = load_mapping(preset)
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise InputError(f"{export_dir}: export folder not found")
    decided = decide_export_date(export_dir, mapping, export_date, chunk_rows)
    LOG.info(decided.line())
    reference = decided.date
    report = IngestReport(export=export_dir, preset=mapping.name, export_date=decided)
    known_accounts: pd.Index | None = None
    (out / "rejected").mkdir(parents=True, exist_ok=True)
    try:
        for name, table in TABLES.items():
            located = _locate(export_dir, mapping, table)
            if located is None:
                report.tables_absent.append(name)
                continue
            source, raw, ignored = located
            related = load_related(export_dir, mapping, source)
            table_report = ingest_table(
                raw, source, table, reference, known_accounts, out, chunk_rows, workers, memory_limit, related
            )
            table_report.notes.extend(ignored)
            table_report.notes.extend(note for r in related.values() for note in r.notes)
            report.tables[name] = table_report
            if name == "accounts":
                known_accounts = pd.Index(
                    pd.read_parquet(out / "accounts.parquet", columns=["account_id"])["account_id"]
                )
    finally:
        shutil.rmtree(out / STAGING, ignore_errors=True)
    kept = {name: ParquetTable(out / f"{name}.parquet") for name in report.tables}
    report.freshness = {name: f.to_dict() for name, f in table_freshness(kept, decided.date).items()}
    write_record(out, report.export_date)
    return report


def write_record(out: Path, export_date: ExportDate, refused: str | None = None) -> None:
    """``<out>/export.json``: what the features and score stages take from ingest besides the tables.

    ``refused``: the line ingest stopped with (too many rows rejected); later stages refuse such tables.
    """
    doc = {"export_date": export_date.to_dict(), "refused": refused}
    (out / RECORD).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _locate(export_dir: Path, mapping: Mapping, table: Table) -> tuple[SourceSpec, RawTable, list[str]] | None:
    """The first source of the table found in the folder, read; later ones found are noted as ignored."""
    spec = mapping.tables.get(table.name)
    if spec is None and table.required:
        raise InputError(f"preset '{mapping.name}': no mapping for required table '{table.name}'")
    sources = spec.sources if spec else []
    found = [(s, p) for s in sources if (p := find_file(export_dir, s.file)) is not None]
    if not found:
        if table.required:
            names = [n for s in sources for n in s.file]
            raise InputError(
                f"{export_dir}: required table '{table.name}' not found (looked for {looked_for(names)})"
                f"{_other_preset_hint(export_dir, mapping, table)}"
            )
        return None
    (source, path), others = found[0], found[1:]
    ignored = [f"{p.name} ignored: {path.name} takes precedence for {table.name}" for _, p in others]
    raw = read_export_file(path)
    if raw.empty_file and table.required:
        raise InputError(f"{path}: file is empty (0 bytes); required table '{table.name}' needs at least its header")
    return source, raw, ignored


def _other_preset_hint(export_dir: Path, mapping: Mapping, table: Table) -> str:
    """When another built-in preset finds the table, the user most likely passed the wrong preset."""
    for name in BUILT_IN:
        if name == mapping.name:
            continue
        spec = load_mapping(name).tables.get(table.name)
        for source in spec.sources if spec else []:
            path = find_file(export_dir, source.file)
            if path is not None:
                return f"; {path.name} is there: this looks like a '{name}' export, try --preset {name}"
    return ""


class _Verdicts:
    """The first reject reason of each row; rows without one are still alive."""

    def __init__(self, index: pd.Index) -> None:
        self.reason = pd.Series(pd.NA, index=index, dtype="object")

    @property
    def alive(self) -> pd.Series:
        return self.reason.isna()

    def reject(self, mask: pd.Series, reason: str) -> None:
        mask = mask.reindex(self.reason.index, fill_value=False).astype(bool)
        self.reason = self.reason.mask(self.alive & mask, reason)

    def reject_each(self, reasons: pd.Series) -> None:
        """Reject rows with a reason of their own (schema failures)."""
        reasons = reasons.reindex(self.reason.index)
        self.reason = self.reason.mask(self.alive & reasons.notna(), reasons)


def ingest_table(
    raw: RawTable,
    source: SourceSpec,
    table: Table,
    reference: dt.date,
    known_accounts: pd.Index | None,
    out: Path,
    chunk_rows: int = CHUNK_ROWS,
    workers: int = 1,
    memory_limit: str | None = None,
    related: dict | None = None,
) -> TableReport:
    """Turn one file into ``<out>/<table>.parquet`` and its rejected rows, accounting for every row read.

    With ``workers > 1`` the row rules of successive chunks run in that many processes while
    this one reads the file and writes the results, in file order; a file of one chunk never
    starts a process. ``memory_limit`` caps DuckDB's duplicate search (it spills beyond it).
    ``related``: the files the source's lookups read (``presets.load_related``).
    """
    report = TableReport(table.name, file=str(raw.path), notes=list(raw.notes))
    staging = _Staging(out / STAGING, table.name)
    job = _ChunkJob(source, table, reference, known_accounts, _repair_rules(source), raw.path, related or {})
    watch = _WrongTypeWatch(raw.path, source)
    notes: list[str] = []
    progress = Progress(f"ingest: {table.name}")
    with (
        _ParquetSink(staging.kept, _canonical_schema(table)) as kept,
        _ParquetSink(staging.rows, _ROWS_SCHEMA) as rows,
        _ParquetSink(staging.rejected, _rejected_schema(table)) as rejected,
        _ChunkRunner(workers) as runner,
    ):

        def collect(result: _ChunkResult) -> None:
            kept.write(result.staged[table.column_names])
            rows.write(result.staged[[ROW, REPAIRS]])
            rejected.write(result.rejected)
            report.rows_filtered.update(result.filtered)
            report.rows_rejected.update(result.rejected_counts)
            notes.extend(result.notes)
            watch.merge(result.watch)

        for chunk, last in _with_last(raw.chunks(chunk_rows)):
            if raw.empty_file:
                break
            first = report.rows_read == 0
            report.rows_read += len(chunk)
            cut_row = int(chunk[ROW].iloc[-1]) if raw.ends_mid_row and last and len(chunk) else None
            runner.submit(job, chunk, cut_row, first=first, collect=collect)
            progress.update(report.rows_read)
        runner.drain(collect)
    watch.refuse_wrong_types()
    if raw.ends_mid_row and report.rows_read:
        notes.append("file does not end with a newline: the last row may be cut off, so it is rejected")
    report.notes.extend(dict.fromkeys(notes))  # once each, in order, however many chunks raised them
    _finish_table(staging, table, job.rules, raw.path, out, report, memory_limit)
    progress.done(report.rows_read)
    report.check_invariant()
    return report


@dataclass(frozen=True)
class _ChunkJob:
    """What the row rules need besides the chunk itself (sent to worker processes with each chunk)."""

    source: SourceSpec
    table: Table
    reference: dt.date
    known_accounts: pd.Index | None
    rules: list[str]
    path: Path
    related: dict = field(default_factory=dict)  # lookup name -> mapping.RelatedTable


@dataclass
class _ChunkResult:
    """One chunk's surviving typed rows, rejected rows (as text) and counts, to merge in file order."""

    staged: pd.DataFrame
    rejected: pd.DataFrame
    filtered: dict[str, int]
    rejected_counts: dict[str, int]
    notes: list[str]
    watch: "_WrongTypeWatch"


class _ChunkRunner:
    """Runs ``_chunk`` in this process, or in a pool of processes once a second chunk shows up.

    At most ``workers + 1`` chunks are in flight, so memory stays a few chunks whatever the file's size.
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self.pool = None
        self.pending: list = []

    def __enter__(self) -> "_ChunkRunner":
        return self

    def submit(self, job: _ChunkJob, chunk: pd.DataFrame, cut_row: int | None, first: bool, collect) -> None:
        if self.workers == 1 or first:
            self.pending.append(_Done(_chunk(job, chunk, cut_row)))
        else:
            if self.pool is None:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                # spawn, not fork: this process may hold DuckDB and Arrow threads
                self.pool = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_quiet_worker
                )
            self.pending.append(self.pool.submit(_chunk, job, chunk, cut_row))
        while len(self.pending) > self.workers:
            collect(self.pending.pop(0).result())

    def drain(self, collect) -> None:
        while self.pending:
            collect(self.pending.pop(0).result())

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _quiet_worker() -> None:
    """Workers import pandera, which imports pyspark.pandas; its pandas-version notice is noise (as in the CLI)."""
    import warnings

    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)


@dataclass
class _Done:
    """A chunk computed in this process, with the same ``result()`` as a future."""

    value: _ChunkResult

    def result(self) -> _ChunkResult:
        return self.value


def _with_last(chunks: Iterator[pd.DataFrame]) -> Iterator[tuple[pd.DataFrame, bool]]:
    """Each chunk with whether it is the last: the last row of a file cut mid-row is rejected."""
    previous = next(chunks, None)
    for chunk in chunks:
        yield previous, False
        previous = chunk
    if previous is not None:
        yield previous, True


def _repair_rules(source: SourceSpec) -> list[str]:
    """Names of the repair rules, in a fixed order: bit i of a staged row's ``_repairs`` is rule i."""
    return [ID_STRIPPED, CASE_NORMALISED, OFFSET_CONVERTED, FOLLOW_UP_BLANKED, *repair_rules(source)]


def _chunk(job: _ChunkJob, chunk: pd.DataFrame, cut_row: int | None) -> _ChunkResult:
    """The row rules on one chunk: its surviving typed rows (staged) and its rejected rows (as text)."""
    source, table, path = job.source, job.table, job.path
    watch = _WrongTypeWatch(path, source)
    keep, filtered, notes = apply_filters(chunk, source, path)
    rows = chunk.loc[keep, ROW]
    mapped = map_source(chunk.loc[keep], source, table, path, job.related)
    text = mapped.frame
    notes.extend(mapped.notes)
    unread = unread_columns(chunk, source)
    if unread:
        notes.append(f"columns ignored (not in the mapping): {', '.join(unread)}")
    text, repaired = _clean_text(text, table)
    repaired.update(mapped.repaired)
    verdicts = _Verdicts(text.index)
    if cut_row is not None:
        verdicts.reject(rows == cut_row, TRUNCATED_ROW)
    typed = _typed(text, source, table, verdicts, repaired, watch, rows)
    typed, derived = apply_derivations(typed, source.derive)
    repaired.update(derived)
    repaired[FOLLOW_UP_BLANKED] = repairs.blank_future_follow_ups(typed, table, job.reference)
    _apply_row_rules(typed, table, job.reference, job.known_accounts, verdicts)
    verdicts.reject_each(
        repairs.schema_failures(_canonical_dtypes(typed[verdicts.alive], table), ROW_SCHEMAS[table.name], str(path))
    )
    alive = verdicts.alive
    staged = _canonical_dtypes(typed[alive], table)
    staged[ROW] = rows[alive].astype("int64")
    staged[REPAIRS] = _repair_bits(repaired, job.rules, text.index)[alive.to_numpy()].astype("int32")
    return _ChunkResult(
        staged,
        _rejected_rows(text, rows, verdicts, path),
        filtered,
        verdicts.reason[~alive].value_counts().to_dict(),
        notes,
        watch,
    )


def _repair_bits(repaired: dict[str, pd.Series], rules: list[str], index: pd.Index) -> np.ndarray:
    bits = np.zeros(len(index), dtype="int64")
    for position, rule in enumerate(rules):
        mask = repaired.get(rule)
        if mask is not None:
            bits |= mask.reindex(index, fill_value=False).to_numpy(dtype=bool).astype("int64") << position
    return bits


def _clean_text(text: pd.DataFrame, table: Table) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Trim text, lowercase fixed vocabularies and hash user ids, before anything is kept or rejected."""
    text, id_fixed = repairs.strip_text(text, table)
    text, lowered = repairs.lowercase_categories(text, table)
    if "user_id" in text.columns:
        text["user_id"] = repairs.hash_user_ids(text["user_id"])
    return text, {ID_STRIPPED: id_fixed, CASE_NORMALISED: lowered}


def _typed(
    text: pd.DataFrame,
    source: SourceSpec,
    table: Table,
    verdicts: _Verdicts,
    repaired: dict[str, pd.Series],
    watch: "_WrongTypeWatch",
    rows: pd.Series,
) -> pd.DataFrame:
    """Coerce column by column; an unparseable value rejects its row with the column's name."""
    typed = pd.DataFrame(index=text.index)
    converted = pd.Series(False, index=text.index)
    for column in table.columns:
        parsed = repairs.coerce(text[column.name], column, column_format(source, column.name))
        watch.see(column, text[column.name], parsed.bad, rows)
        typed[column.name] = parsed.values
        verdicts.reject(parsed.bad, f"unparseable {column.name}")
        converted |= parsed.converted
    repaired[OFFSET_CONVERTED] = converted
    return typed


@dataclass
class _ColumnTally:
    filled: int = 0
    bad: int = 0
    bad_rows: list[int] = field(default_factory=list)
    example: str | None = None


class _WrongTypeWatch:
    """A column where no value parses (two or more) has the wrong type: one error, not thousands of rejects.

    Rejecting every row would leave an empty table that fails later, far from its cause.
    Counts are kept across chunks, so the verdict is on the whole column.
    """

    SHOWN = 3

    def __init__(self, path: Path, source: SourceSpec) -> None:
        self.path, self.source = path, source
        self.tallies: dict[str, tuple[Column, _ColumnTally]] = {}

    def see(self, column: Column, values: pd.Series, bad: pd.Series, rows: pd.Series) -> None:
        _, tally = self.tallies.setdefault(column.name, (column, _ColumnTally()))
        tally.filled += int(values.notna().sum())
        n_bad = int(bad.sum())
        if n_bad:
            if len(tally.bad_rows) < self.SHOWN:
                tally.bad_rows += [int(r) for r in rows[bad].head(self.SHOWN - len(tally.bad_rows))]
            if tally.example is None:
                tally.example = str(values[bad].iloc[0])[:30]
        tally.bad += n_bad

    def merge(self, other: "_WrongTypeWatch") -> None:
        """Add a later chunk's tallies (first bad rows stay the first in the file)."""
        for name, (column, theirs) in other.tallies.items():
            _, mine = self.tallies.setdefault(name, (column, _ColumnTally()))
            mine.filled += theirs.filled
            mine.bad += theirs.bad
            mine.bad_rows = (mine.bad_rows + theirs.bad_rows)[: self.SHOWN]
            mine.example = mine.example if mine.example is not None else theirs.example

    def refuse_wrong_types(self) -> None:
        for column, tally in self.tallies.values():
            if tally.filled < WRONG_TYPE_MIN_ROWS or tally.bad < tally.filled:
                continue
            spec = self.source.columns.get(column.name)
            named = (
                f"'{spec.source[0]}' ({column.name})" if spec and spec.source != [column.name] else f"'{column.name}'"
            )
            more = tally.bad - len(tally.bad_rows)
            where = f"rows {', '.join(map(str, tally.bad_rows))}" + (f" and {more:,} more" if more > 0 else "")
            expected = {
                "timestamp": "a timestamp",
                "date": "a date",
                "float": "a number",
                "int": "a whole number",
                "bool": "true/false",
            }.get(column.dtype, column.dtype)
            hint = " or set its format in a mapping file" if column.dtype in ("timestamp", "date") else ""
            raise InputError(
                f"{self.path}: column {named}: no value parses as {expected} ({where}, "
                f"e.g. {tally.example!r}); fix the column in the export{hint}"
            )


def _apply_row_rules(
    typed: pd.DataFrame, table: Table, reference: dt.date, known_accounts: pd.Index | None, verdicts: _Verdicts
) -> None:
    """The rules that judge a row on its own values (duplicates and key conflicts come later, per table)."""
    for column, mask in repairs.missing_values(typed, table).items():
        verdicts.reject(mask, f"missing {column}")
    if table.name == "contracts":
        verdicts.reject(repairs.negative_amounts(typed), "negative arr")
        verdicts.reject(repairs.ends_before_start(typed), "end_date before start_date")
    for mask in repairs.future_dated(typed, table, reference).values():
        verdicts.reject(mask, future_dated_reason(reference))
    if known_accounts is not None and "account_id" in typed.columns:
        verdicts.reject(repairs.unknown_accounts(typed, known_accounts), "unknown account")


def future_dated_reason(export_date: dt.date) -> str:
    return f"future-dated (after export date {export_date})"


def _canonical_dtypes(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    return pd.DataFrame({c.name: frame[c.name].astype(pandas_dtype(c)) for c in table.columns}, index=frame.index)


def _rejected_rows(text: pd.DataFrame, rows: pd.Series, verdicts: _Verdicts, path: Path) -> pd.DataFrame:
    """Rejected rows as read (canonical columns only, so no personal data), with file, row and reason."""
    gone = ~verdicts.alive
    out = text[gone].astype("string")
    out.insert(0, "row", rows[gone].astype("int64"))
    out.insert(0, "file", pd.Series(path.name, index=out.index, dtype="string"))
    out["reason"] = verdicts.reason[gone].astype("string")
    return out.reset_index(drop=True)


# ---------------------------------------------------------------- staged Parquet


@dataclass(frozen=True)
class _Staging:
    """A table's staged files: surviving rows (canonical columns), their row numbers and repairs, rejected rows.

    Row numbers live beside the table, row for row, so that when no row loses to another
    (the usual case) the staged table is already the canonical file and is moved, not rewritten.
    """

    folder: Path
    name: str

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    @property
    def kept(self) -> Path:
        return self.folder / f"{self.name}.parquet"

    @property
    def rows(self) -> Path:
        return self.folder / f"{self.name}.rows.parquet"

    @property
    def rejected(self) -> Path:
        return self.folder / f"{self.name}.rejected.parquet"


_ROWS_SCHEMA = pa.schema([(ROW, pa.int64()), (REPAIRS, pa.int32())])


def _canonical_schema(table: Table) -> pa.Schema:
    """The table's Parquet schema: pandas' dtypes, with timestamps stored in microseconds.

    Spark's Parquet reader (and Hive, Trino, BigQuery external tables) refuses nanosecond
    timestamps, so the canonical files are written in a unit every engine reads; readers in
    this project get nanoseconds back (``features.duck.read_frame``).
    """
    schema = arrow_table(empty_table(table.name)).schema
    return pa.schema([_in_microseconds(f) for f in schema], metadata=schema.metadata)


def write_canonical(frame: pd.DataFrame, name: str, path: Path) -> None:
    """Write a canonical frame (``features.schemas`` dtypes) as ingest does: its columns, timestamps in microseconds."""
    with _ParquetSink(path, _canonical_schema(TABLES[name])) as sink:
        sink.write(frame[TABLES[name].column_names])


def _in_microseconds(field: pa.Field) -> pa.Field:
    if pa.types.is_timestamp(field.type):
        return field.with_type(pa.timestamp("us", tz=field.type.tz))
    return field


def _rejected_schema(table: Table) -> pa.Schema:
    columns = {
        "file": pd.Series(dtype="string"),
        "row": pd.Series(dtype="int64"),
        **{name: pd.Series(dtype="string") for name in table.column_names},
        "reason": pd.Series(dtype="string"),
    }
    return arrow_table(pd.DataFrame(columns)).schema


class _ParquetSink:
    """Append pandas chunks to one Parquet file with a fixed schema (the file exists even with no rows)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path, self.schema = path, schema
        self.writer: pq.ParquetWriter | None = None

    def __enter__(self) -> "_ParquetSink":
        self.writer = pq.ParquetWriter(self.path, self.schema)
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if len(frame):
            self.write_table(arrow_table(frame))

    def write_table(self, table: pa.Table) -> None:
        """Append ``table`` in the sink's schema; nanoseconds are truncated to microseconds (CRM exports hold seconds)."""
        assert self.writer is not None
        self.writer.write_table(table.select(self.schema.names).cast(self.schema, safe=False))

    def __exit__(self, *exc: object) -> None:
        assert self.writer is not None
        self.writer.close()


# ---------------------------------------------------------------- rules across rows, over the staged table


def _finish_table(
    staging: _Staging,
    table: Table,
    rules: list[str],
    path: Path,
    out: Path,
    report: TableReport,
    memory_limit: str | None = None,
) -> None:
    """Reject duplicates and key conflicts, write the canonical table and the rejected rows sorted by row."""
    engine = DuckDBEngine(memory_limit)
    con = engine.con
    try:
        con.execute("SET preserve_insertion_order = false")
        losers = _cross_row_losers(con, staging.kept, table)  # file position -> reason
        con.register("losers", pd.DataFrame({"pos": np.array(sorted(losers), dtype="int64")}))
        rows = f"read_parquet({sql_literal(staging.rows)}, file_row_number = true)"
        bits = ", ".join(f"sum(({REPAIRS} >> {i}) & 1)" for i in range(len(rules)))
        counts = con.execute(
            f"SELECT count(*), {bits} FROM {rows} WHERE file_row_number NOT IN (SELECT pos FROM losers)"
        ).fetchone()
        lost_rows = con.execute(
            f"SELECT file_row_number AS pos, {ROW} FROM {rows} "
            "WHERE file_row_number IN (SELECT pos FROM losers) ORDER BY pos"
        ).df()
    finally:
        engine.close()
    report.rows_kept = int(counts[0])
    for rule, count in zip(rules, counts[1:]):
        if count:
            report.rows_repaired[rule] = int(count)
    for reason, count in Counter(losers.values()).items():
        report.rows_rejected[reason] += count
    rejected = pq.read_table(staging.rejected)
    if losers:
        lost = _write_without(staging.kept, lost_rows["pos"].to_numpy(), out / f"{table.name}.parquet", table)
        lost[ROW] = lost_rows[ROW].to_numpy()
        lost["reason"] = lost_rows["pos"].map(losers).to_numpy()
        rejected = pa.concat_tables([rejected, _loser_rows(lost, table, path, rejected.schema)])
    else:
        staging.kept.replace(out / f"{table.name}.parquet")
    pq.write_table(rejected.sort_by("row"), out / "rejected" / f"{table.name}.parquet")


def _write_without(staged: Path, positions: np.ndarray, target: Path, table: Table) -> pd.DataFrame:
    """Copy ``staged`` to ``target`` batch by batch, leaving out the rows at ``positions``; return those rows."""
    lost = []
    start = 0
    with _ParquetSink(target, _canonical_schema(table)) as kept:
        for batch in pq.ParquetFile(staged).iter_batches(batch_size=CHUNK_ROWS):
            gone = np.isin(np.arange(start, start + batch.num_rows), positions)
            start += batch.num_rows
            rows = pa.Table.from_batches([batch])
            kept.write_table(rows.filter(pa.array(~gone)))
            if gone.any():
                lost.append(rows.filter(pa.array(gone)).to_pandas())
    return pd.concat(lost, ignore_index=True)


def _loser_rows(frame: pd.DataFrame, table: Table, path: Path, schema: pa.Schema) -> pa.Table:
    """Rows rejected as duplicates or key conflicts, their canonical values written as text."""
    out = pd.DataFrame(
        {"file": pd.Series(path.name, index=frame.index, dtype="string"), "row": frame[ROW].astype("int64")}
    )
    for name in table.column_names:
        out[name] = frame[name].astype("string")
    out["reason"] = frame["reason"].astype("string")
    return arrow_table(out, schema)


def _cross_row_losers(con: "duckdb.DuckDBPyConnection", staged: Path, table: Table) -> dict[int, str]:
    """File position -> reason for the rows that lose to another: exact duplicates, then key conflicts.

    Exact duplicates: every copy after the first. Key conflicts (rows sharing a key that are
    not identical): the most complete row (most non-empty columns) wins; on a tie the one
    furthest down the file, as exports append later versions of a record. File position
    orders rows as the export did. Duplicates are found by a row hash first, and compared
    column by column only among rows whose hash repeats: grouping tens of millions of rows
    on one integer is far cheaper than on every column.
    """
    columns = ", ".join(sql_identifier(c) for c in table.column_names)
    source = f"read_parquet({sql_literal(staged)}, file_row_number = true)"
    duplicates = con.execute(f"""
        WITH hashed AS (SELECT hash({columns}) AS h, file_row_number AS pos FROM {source}),
             repeated AS (SELECT h FROM hashed GROUP BY h HAVING count(*) > 1),
             candidates AS (SELECT pos FROM hashed SEMI JOIN repeated USING (h)),
             ranked AS (SELECT file_row_number AS pos,
                               row_number() OVER (PARTITION BY {columns} ORDER BY file_row_number) AS copy
                        FROM {source} WHERE file_row_number IN (SELECT pos FROM candidates))
        SELECT pos FROM ranked WHERE copy > 1""").fetchnumpy()["pos"]
    losers = dict.fromkeys(duplicates.tolist(), DUPLICATE_ROW)
    if table.key:
        key = ", ".join(sql_identifier(c) for c in table.key)
        complete = " + ".join(f"CAST({sql_identifier(c)} IS NOT NULL AS INTEGER)" for c in table.column_names)
        con.register("duplicates", pd.DataFrame({"pos": np.asarray(duplicates, dtype="int64")}))
        conflicts = con.execute(f"""
            WITH rows AS (SELECT {key}, file_row_number AS pos, {complete} AS complete FROM {source}
                          WHERE file_row_number NOT IN (SELECT pos FROM duplicates)),
                 shared AS (SELECT {key} FROM rows GROUP BY ALL HAVING count(*) > 1),
                 ranked AS (SELECT pos, row_number() OVER (PARTITION BY {key} ORDER BY complete DESC, pos DESC) AS rank
                            FROM rows SEMI JOIN shared USING ({key}))
            SELECT pos FROM ranked WHERE rank > 1""").fetchnumpy()["pos"]
        losers.update(dict.fromkeys(conflicts.tolist(), f"conflicting {', '.join(table.key)}"))
    return losers
