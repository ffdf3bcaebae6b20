"""Stage `ingest`: an export folder in, canonical PII-free Parquet tables and reports/ingest.json out.

Thin on purpose: the rules live in ``pipelines.ingestion``; this module resolves the
defaults from params.yaml, runs them and writes the outputs atomically. When a table loses
more rows to rejection than ``data.max_rejected_share`` allows, the outputs are still
written (to read what was rejected and why), marked as refused, and the stage ends with
one line and exit code 2, so nothing downstream runs on them.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from features.errors import InputError
from pipelines.config import settings
from pipelines.ingestion import IngestReport, ingest_export_to
from pipelines.ingestion.pipeline import write_record
from pipelines.ingestion.thresholds import refusal
from pipelines.io import replace_folder, write_json
from pipelines.logs import timed

LOG = logging.getLogger("churn.ingest")


def main(export: Path | None = None, preset: str | None = None, out: Path | None = None) -> None:
    """Ingest ``export`` with ``preset`` into ``out`` (each defaulting to params.yaml)."""
    cfg = settings()
    export = Path(export or cfg.data.export_dir)
    preset = preset or cfg.data.preset
    out = Path(out or cfg.paths.interim)
    with timed("ingest") as info:
        report = write_outputs(
            export,
            preset,
            out,
            cfg.paths.ingest_report,
            cfg.runtime.ingest.chunk_rows,
            cfg.runtime.ingest.workers,
            cfg.runtime.ingest.duckdb_memory_limit,
            export_date=cfg.data.export_date,
            limits=cfg.data.max_rejected_share.per_table(),
        )
        write_json(totals(report), cfg.paths.ingest_totals)
        info["rows"] = sum(r.rows_read for r in report.tables.values())
    if report.refused:
        raise InputError(report.refused)


def totals(report: IngestReport) -> dict:
    """Rows read, kept, repaired, rejected and filtered over all tables: the metrics experiments compare."""
    doc = report.to_dict()
    repaired = sum(sum(r.rows_repaired.values()) for r in report.tables.values())
    return {**doc["totals"], "rows_repaired": repaired, "tables": len(report.tables)}


def write_outputs(
    export: Path,
    preset: str,
    out: Path,
    report_path: Path,
    chunk_rows: int,
    workers: int = 1,
    memory_limit: str | None = None,
    export_date: dt.date | None = None,
    limits: dict[str, float] | None = None,
) -> IngestReport:
    """``<out>/<table>.parquet``, ``<out>/rejected/<table>.parquet`` and the JSON report; one log line per table.

    ``out`` is replaced whole (staged, then swapped), so a failed or interrupted run never
    leaves tables of two runs side by side, and a table absent from this export is not read
    downstream from an earlier run. The report is written last: it describes what is in ``out``.
    ``export_date`` (None: inferred) and ``limits`` (the share of rows each table may lose
    to rejection; None: no limit) are ``data.export_date`` and ``data.max_rejected_share``.
    """
    reports: list[IngestReport] = []

    def fill(staging: Path) -> None:
        report = ingest_export_to(
            export, staging, preset, export_date, chunk_rows=chunk_rows, workers=workers, memory_limit=memory_limit
        )
        report.to_dict()  # checks the accounting before anything is replaced
        if limits is not None:
            report.refused = refusal(report, limits, staging / "rejected", out / "rejected", report_path)
            write_record(staging, report.export_date, report.refused)
        reports.append(report)

    replace_folder(out, fill)
    report = reports[0]
    for name in report.tables:
        LOG.info(report.tables[name].summary_line())
    if report.tables_absent:
        LOG.info("tables absent (their features are left out): %s", ", ".join(report.tables_absent))
    write_json(report.to_dict(), report_path)
    return report
