"""Stage `ingest`: an export folder in, canonical PII-free Parquet tables and reports/ingest.json out.

Thin on purpose: the rules live in ``pipelines.ingestion``; this module resolves the
defaults from params.yaml, runs them and writes the outputs atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.config import settings
from pipelines.ingestion import IngestResult, ingest_export
from pipelines.io import replace_folder, write_json, write_parquet
from pipelines.logs import timed

LOG = logging.getLogger("churn.ingest")


def main(export: Path | None = None, preset: str | None = None, out: Path | None = None) -> None:
    """Ingest ``export`` with ``preset`` into ``out`` (each defaulting to params.yaml)."""
    cfg = settings()
    export = Path(export or cfg.data.export_dir)
    preset = preset or cfg.data.preset
    out = Path(out or cfg.paths.interim)
    with timed("ingest") as info:
        result = ingest_export(export, preset)
        write_outputs(result, out, cfg.paths.ingest_report)
        info["rows"] = sum(r.rows_read for r in result.report.tables.values())


def write_outputs(result: IngestResult, out: Path, report_path: Path) -> None:
    """``<out>/<table>.parquet``, ``<out>/rejected/<table>.parquet`` and the JSON report; one log line per table.

    ``out`` is replaced whole (staged, then swapped), so a failed or interrupted run never
    leaves tables of two runs side by side, and a table absent from this export is not read
    downstream from an earlier run. The report is written last: it describes what is in ``out``.
    """
    doc = result.report.to_dict()  # checks the accounting before anything is replaced

    def fill(staging: Path) -> None:
        for name, frame in result.tables.items():
            write_parquet(frame, staging / f"{name}.parquet")
            write_parquet(result.rejected[name], staging / "rejected" / f"{name}.parquet")

    replace_folder(out, fill)
    for name in result.tables:
        LOG.info(result.report.tables[name].summary_line())
    if result.report.tables_absent:
        LOG.info("tables absent (their features are left out): %s", ", ".join(result.report.tables_absent))
    write_json(doc, report_path)
