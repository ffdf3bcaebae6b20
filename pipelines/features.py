"""The `features` stage: canonical tables in, labelled point-in-time features out.

Thin on purpose: read ``<interim>/<table>.parquet`` for the tables that exist and the export
date ingest recorded (the grid's last snapshot, the labels' end), call
``features.build``, write ``features.parquet`` (batch by batch of accounts) and ``feature_catalog.json``
atomically, and log rows in, rows out and rows/s.
"""

from __future__ import annotations

import logging
from pathlib import Path

from features.build import plan_features, write_features
from features.engine import ENGINES, stop_spark, use_engine
from features.errors import InputError
from pipelines.canonical import read_export_date, read_tables
from pipelines.config import settings
from pipelines.io import atomic_paths, json_text
from pipelines.logs import timed

LOG = logging.getLogger("churn.features")


def main(
    interim: Path | None = None, out: Path | None = None, engine: str | None = None, spark_source: str | None = None
) -> None:
    """Compute features and labels for every weekly snapshot and write them to ``out``."""
    cfg = settings()
    interim = Path(interim or cfg.paths.interim)
    out_dir = Path(out) if out is not None else cfg.paths.processed
    engine = engine or cfg.features.engine
    if engine not in ENGINES:
        raise InputError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")

    tables = read_tables(interim)
    export_date = read_export_date(interim, tables)
    rows_in = sum(len(t) for t in tables.values())
    LOG.info("features: engine %s; export date %s (%s)", engine, export_date.date, export_date.decided_by)
    runtime = cfg.runtime.features
    source = spark_source or runtime.spark_source
    with timed("features", rows_in) as info, use_engine(engine, runtime.duckdb_memory_limit, source):
        try:
            plan = plan_features(tables, None, cfg.features, export_end=export_date.date)
            catalogue = {**plan.doc, "engine": engine}
            # the table and its catalogue go together: both are renamed into place only once both are written
            with atomic_paths(out_dir / "features.parquet", out_dir / "feature_catalog.json") as (table_tmp, catalog):
                rows_out = write_features(plan, table_tmp, batch_rows=runtime.batch_rows)
                catalog.write_text(json_text(catalogue))
        finally:
            stop_spark()
        info["rows"] = rows_in
    LOG.info(
        "features: %s rows in, %s rows out (%d features)",
        f"{rows_in:,}",
        f"{rows_out:,}",
        len(catalogue["features"]),
    )
