"""Nothing lost quietly: a table that loses too many of its rows to rejection stops ingest.

Rejected rows are counted and kept aside, but a mapping that misses a column can reject a
whole table (every usage row `missing event_at`), and an empty optional table would then
silently drop its feature family. So when a table's rejected rows exceed its share in
``data.max_rejected_share`` (of the rows read, less those its preset filters out on
purpose), or no row of a table survives, ingest ends with one line: the table, the share,
the most frequent reason with a source row, and the likely fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.schemas import TABLES
from pipelines.ingestion.report import IngestReport, TableReport

Hint = Callable[[str, re.Match], str]


def _missing(table: str, match: re.Match) -> str:
    column = match["column"]
    return (
        f"map {table}.{column} to the export's column that holds it (`columns: {{{column}: <its column>}}` "
        "in a mapping file), or give it a value for empty cells (`defaults:`)"
    )


def _unparseable(table: str, match: re.Match) -> str:
    column = match["column"]
    if TABLES[table].column(column).dtype in ("timestamp", "date"):
        return (
            f'give {table}.{column}\'s date format in the mapping (`timestamp_format: "%d/%m/%Y %H:%M"`, '
            "or `format:` on the column)"
        )
    return f"check that the mapping reads {table}.{column} from the right column, and its number format"


def _vocabulary(table: str, match: re.Match) -> str:
    column = match["column"]
    allowed = ", ".join(TABLES[table].column(column).allowed or ())
    return f"translate the export's values of {table}.{column} with `values:` in the mapping (to {allowed})"


def _conflicting(table: str, match: re.Match) -> str:
    return f"several rows share one {match['key']}: map it to a column that is unique per record"


# Reject reason (as in reports/ingest.json) -> the most likely fix; the first pattern that matches wins.
FIXES: list[tuple[re.Pattern, Hint]] = [
    (re.compile(r"^missing (?P<column>\w+)$"), _missing),
    (re.compile(r"^unparseable (?P<column>\w+)$"), _unparseable),
    (re.compile(r"^failed check isin\(.*\) on (?P<column>\w+)$"), _vocabulary),
    (
        re.compile(r"^future-dated"),
        lambda t, m: (
            "check the export date (logged, and in the ingest report; set `data.export_date` when "
            "it is wrong) and the date format (day and month swapped?)"
        ),
    ),
    (
        re.compile(r"^unknown account$"),
        lambda t, m: (
            f"map {t}.account_id to the same id as the accounts file's account_id, "
            "and check the accounts' own rejections"
        ),
    ),
    (re.compile(r"^duplicate row$"), lambda t, m: "the file repeats whole rows (appended twice?): export it once"),
    (re.compile(r"^conflicting (?P<key>.+)$"), _conflicting),
    (re.compile(r"^truncated row"), lambda t, m: "the file is cut off: export it again"),
]


def refusal(
    report: IngestReport,
    limits: Mapping[str, float],
    rejected: Path,
    shown: Path | None = None,
    report_path: Path | None = None,
) -> str | None:
    """The line ingest stops with, or None when every table is within its limit.

    Tables are judged in ingest order, so a problem upstream (accounts) is named before the
    ones it causes downstream (their rows become `unknown account`). ``rejected`` is where
    the rejected rows are read from (for an example row), ``shown`` where they will be once
    the stage's outputs are in place, ``report_path`` where the report will be.
    """
    for name, table in report.tables.items():
        line = _table_refusal(name, table, limits[name], rejected, shown, report_path)
        if line:
            return line
    return None


def _table_refusal(
    name: str, table: TableReport, limit: float, rejected: Path, shown: Path | None, report_path: Path | None
) -> str | None:
    lost = sum(table.rows_rejected.values())
    considered = table.rows_read - sum(table.rows_filtered.values())
    if not lost or (lost / considered <= limit and table.rows_kept):
        return None
    reason, count = table.rows_rejected.most_common(1)[0]
    row = example_row(rejected / f"{name}.parquet", reason)
    share = f"{lost / considered:.1%}"
    over = (
        f"every row, and an empty {name} table is never taken as absent"
        if not table.rows_kept
        else f"more than data.max_rejected_share allows: {limit:.0%}"
    )
    return (
        f"{table.file}: {name}: {lost:,} of {considered:,} rows rejected ({share}: {over}); "
        f"most as '{reason}' ({count:,}, e.g. row {row}): {fix(name, reason, shown, report_path)}"
    )


def fix(table: str, reason: str, rejected: Path | None = None, report_path: Path | None = None) -> str:
    """The likely fix for a reject reason; else where to look."""
    for pattern, hint in FIXES:
        match = pattern.match(reason)
        if match:
            return hint(table, match)
    where = [f"the reasons in {report_path}" if report_path else None]
    where.append(f"the rows in {rejected / f'{table}.parquet'}" if rejected else None)
    listed = " and ".join(w for w in where if w)
    return f"see {listed}" if listed else f"run `churn ingest` on this export and read its rejected {table} rows"


def example_row(path: Path, reason: str) -> int | None:
    """The first source row rejected for ``reason`` (1-based, as a spreadsheet counts)."""
    if not path.exists():
        return None
    rows = pq.read_table(path, columns=["row", "reason"], filters=[("reason", "==", reason)])
    return int(pc.min(rows["row"]).as_py()) if rows.num_rows else None
