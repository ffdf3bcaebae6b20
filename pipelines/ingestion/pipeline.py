"""From an export folder to canonical tables, rejected rows and the ingestion report.

Per table: read as text, apply the preset's filters and column mapping, clean text,
type each column, derive missing values, then apply the reject rules in a fixed order
(unparseable, missing, value rules, unknown account, duplicates, key conflicts, schema).
A row carries the first reason it failed; validity rules run before duplicate handling
so that, of two versions of a record, a valid one is never dropped for an invalid one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.errors import InputError
from features.schemas import SCHEMAS, TABLES, Table, empty_table, pandas_dtype
from pipelines.ingestion import repairs
from pipelines.ingestion.presets import (BUILT_IN, Mapping, SourceSpec, apply_derivations, apply_filters,
                                         column_format, load_mapping, map_columns, unread_columns)
from pipelines.ingestion.readers import ROW, RawTable, find_file, looked_for, read_export_file, text_frame
from pipelines.ingestion.report import IngestReport, TableReport

REJECTED_META = ("file", "row")
TRUNCATED_ROW = "truncated row (file ends mid-row)"
WRONG_TYPE_MIN_ROWS = 2  # a single unparseable value is a bad row; a whole column of them, a wrong type


@dataclass
class TableResult:
    """One canonical table, its rejected rows (text, with ``reason``) and its report."""

    frame: pd.DataFrame
    rejected: pd.DataFrame
    report: TableReport


@dataclass
class IngestResult:
    """Every canonical table found in the export, their rejected rows and the run's report."""

    tables: dict[str, pd.DataFrame]
    rejected: dict[str, pd.DataFrame]
    report: IngestReport


def reference_date(export_dir: Path, today: dt.date | None = None) -> dt.date:
    """The latest date the export can hold: its folder name when that is a date, else today (UTC)."""
    try:
        return dt.date.fromisoformat(export_dir.name)
    except ValueError:
        return today or dt.datetime.now(dt.UTC).date()


def ingest_export(export_dir: Path, preset: str | Path = "canonical", reference: dt.date | None = None) -> IngestResult:
    """Read every canonical table the preset can find in ``export_dir``; accounts first, for the joins."""
    mapping = load_mapping(preset)
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise InputError(f"{export_dir}: export folder not found")
    reference = reference or reference_date(export_dir)
    report = IngestReport(export=export_dir, preset=mapping.name, reference_date=reference.isoformat())
    tables: dict[str, pd.DataFrame] = {}
    rejected: dict[str, pd.DataFrame] = {}
    known_accounts: pd.Index | None = None
    for name, table in TABLES.items():
        located = _locate(export_dir, mapping, table)
        if located is None:
            report.tables_absent.append(name)
            continue
        source, raw, ignored = located
        result = ingest_table(raw, source, table, reference, known_accounts)
        result.report.notes.extend(ignored)
        tables[name], rejected[name], report.tables[name] = result.frame, result.rejected, result.report
        if name == "accounts":
            known_accounts = pd.Index(result.frame["account_id"])
    return IngestResult(tables, rejected, report)


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
            raise InputError(f"{export_dir}: required table '{table.name}' not found (looked for {looked_for(names)})"
                             f"{_other_preset_hint(export_dir, mapping, table)}")
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


def ingest_table(raw: RawTable, source: SourceSpec, table: Table, reference: dt.date,
                 known_accounts: pd.Index | None) -> TableResult:
    """Turn one file into one canonical table, accounting for every row read."""
    report = TableReport(table.name, file=str(raw.path), rows_read=len(raw.frame), notes=list(raw.notes))
    if raw.empty_file:
        empty = empty_table(table.name)
        return TableResult(empty, _rejected_rows(empty, pd.Series(dtype="int64"), _Verdicts(empty.index), raw.path),
                           report)
    keep, filtered, notes = apply_filters(raw.frame, source, raw.path)
    report.rows_filtered.update(filtered)
    report.notes.extend(notes)
    rows = raw.frame.loc[keep, ROW]
    text = map_columns(raw.frame.loc[keep], source, table, raw.path)
    unread = unread_columns(raw.frame, source)
    if unread:
        report.notes.append(f"columns ignored (not in the mapping): {', '.join(unread)}")
    text, repaired = _clean_text(text, table)
    verdicts = _Verdicts(text.index)
    if raw.cut_last_row:
        verdicts.reject(rows == len(raw.frame), TRUNCATED_ROW)
    typed = _typed(text, source, table, verdicts, repaired, raw.path, rows)
    typed, derived = apply_derivations(typed, source.derive)
    for target, mask in derived.items():
        repaired[f"{target} derived ({source.derive[target]})"] = mask
    _apply_reject_rules(typed, table, reference, known_accounts, rows, verdicts)
    final = _validated(typed, table, verdicts, raw.path)

    alive = verdicts.alive
    report.rows_kept = int(alive.sum())
    report.rows_rejected.update(verdicts.reason[~alive].value_counts().to_dict())
    for rule, mask in repaired.items():
        count = int((mask.reindex(alive.index, fill_value=False) & alive).sum())
        if count:
            report.rows_repaired[rule] = count
    report.check_invariant()
    rejected = _rejected_rows(text, rows, verdicts, raw.path)
    return TableResult(final, rejected, report)


def _clean_text(text: pd.DataFrame, table: Table) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Trim text, lowercase fixed vocabularies and hash user ids, before anything is kept or rejected."""
    text, id_fixed = repairs.strip_text(text, table)
    text, lowered = repairs.lowercase_categories(text, table)
    if "user_id" in text.columns:
        text["user_id"] = repairs.hash_user_ids(text["user_id"])
    return text, {"id whitespace stripped": id_fixed, "category case normalised": lowered}


def _typed(text: pd.DataFrame, source: SourceSpec, table: Table, verdicts: _Verdicts,
           repaired: dict[str, pd.Series], path: Path, rows: pd.Series) -> pd.DataFrame:
    """Coerce column by column; an unparseable value rejects its row with the column's name."""
    typed = pd.DataFrame(index=text.index)
    converted = pd.Series(False, index=text.index)
    for column in table.columns:
        parsed = repairs.coerce(text[column.name], column, column_format(source, column.name))
        _refuse_wrong_type(text[column.name], parsed.bad, column, source, path, rows)
        typed[column.name] = parsed.values
        verdicts.reject(parsed.bad, f"unparseable {column.name}")
        converted |= parsed.converted
    repaired["offset converted to UTC"] = converted
    return typed


def _refuse_wrong_type(values: pd.Series, bad: pd.Series, column, source: SourceSpec, path: Path,
                       rows: pd.Series) -> None:
    """A column where no value parses (two or more) has the wrong type: one error, not thousands of rejects.

    Rejecting every row would leave an empty table that fails later, far from its cause.
    """
    filled = int(values.notna().sum())
    if filled < WRONG_TYPE_MIN_ROWS or int(bad.sum()) < filled:
        return
    spec = source.columns.get(column.name)
    named = f"'{spec.source[0]}' ({column.name})" if spec and spec.source != [column.name] else f"'{column.name}'"
    where = _row_list(rows[bad])
    example = str(values[bad].iloc[0])[:30]
    expected = {"timestamp": "a timestamp", "date": "a date", "float": "a number", "int": "a whole number",
                "bool": "true/false"}.get(column.dtype, column.dtype)
    hint = " or set its format in a mapping file" if column.dtype in ("timestamp", "date") else ""
    raise InputError(f"{path}: column {named}: no value parses as {expected} ({where}, e.g. {example!r}); "
                     f"fix the column in the export{hint}")


def _row_list(rows: pd.Series, shown: int = 3) -> str:
    """``rows 1, 2, 3 and 1170 more``: enough to find them, short enough for one line."""
    numbers = [str(int(r)) for r in rows.head(shown)]
    more = len(rows) - len(numbers)
    return f"rows {', '.join(numbers)}" + (f" and {more:,} more" if more > 0 else "")


def _apply_reject_rules(typed: pd.DataFrame, table: Table, reference: dt.date, known_accounts: pd.Index | None,
                        rows: pd.Series, verdicts: _Verdicts) -> None:
    for column, mask in repairs.missing_values(typed, table).items():
        verdicts.reject(mask, f"missing {column}")
    if table.name == "contracts":
        verdicts.reject(repairs.negative_amounts(typed), "negative arr")
        verdicts.reject(repairs.ends_before_start(typed), "end_date before start_date")
    for mask in repairs.future_dated(typed, table, reference).values():
        verdicts.reject(mask, "future-dated")
    if known_accounts is not None and "account_id" in typed.columns:
        verdicts.reject(repairs.unknown_accounts(typed, known_accounts), "unknown account")
    alive = verdicts.alive
    verdicts.reject(repairs.exact_duplicates(typed[alive], table.column_names), "duplicate row")
    alive = verdicts.alive
    key = list(table.key)
    conflicts = repairs.key_conflicts(typed[alive], key, rows[alive])
    verdicts.reject(conflicts, f"conflicting {', '.join(key)}")


def _validated(typed: pd.DataFrame, table: Table, verdicts: _Verdicts, path: Path) -> pd.DataFrame:
    """The surviving rows in canonical dtypes, after the pandera schema had its say."""
    final = _canonical_dtypes(typed[verdicts.alive], table)
    verdicts.reject_each(repairs.schema_failures(final, SCHEMAS[table.name], str(path)))
    final = _canonical_dtypes(typed[verdicts.alive], table)
    return final.reset_index(drop=True)


def _canonical_dtypes(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    return pd.DataFrame({c.name: frame[c.name].astype(pandas_dtype(c)) for c in table.columns}, index=frame.index)


def _rejected_rows(text: pd.DataFrame, rows: pd.Series, verdicts: _Verdicts, path: Path) -> pd.DataFrame:
    """Rejected rows as read (canonical columns only, so no personal data), with file, row and reason."""
    gone = ~verdicts.alive
    out = text_frame(text[gone])
    out.insert(0, "row", rows[gone].astype("int64"))
    out.insert(0, "file", pd.Series(path.name, index=out.index, dtype="string"))
    out["reason"] = verdicts.reason[gone].astype("string")
    return out.reset_index(drop=True)
