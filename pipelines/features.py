"""The `features` stage: canonical tables in, labelled point-in-time features out.

Thin on purpose: read ``<interim>/<table>.parquet`` for the tables that exist, call
``features.build.build_features``, write ``features.parquet`` and ``feature_catalog.json``
atomically, and log rows in, rows out and rows/s.
"""

from __future__ import annotations

import logging
from pathlib import Path

from features.build import build_features
from features.duck import ParquetTable, Table
from features.engine import ENGINES, stop_spark, use_engine
from features.errors import InputError
from features.schemas import SCHEMAS, TABLES
from pipelines.config import settings
from pipelines.io import atomic_paths, json_text
from pipelines.logs import timed

LOG = logging.getLogger("churn.features")


IN_MEMORY = ("accounts", "contracts")  # one row per account or contract: small, and read by pandas code


def read_tables(interim: Path) -> dict[str, Table]:
    """Every canonical table present in ``interim``: accounts and contracts as validated frames,
    the event tables as ``ParquetTable`` references that the engine scans in place.

    The event tables were validated by ingest when written; here their columns are checked,
    so a hand-made or older interim folder fails with the file and the columns it lacks.
    """
    if not interim.is_dir():
        raise InputError(f"{interim}: canonical tables folder not found (run `churn ingest` first)")
    tables: dict[str, Table] = {}
    for name in TABLES:
        path = interim / f"{name}.parquet"
        if not path.exists():
            LOG.info("features: %s absent, its family will be dropped", path)
            continue
        table = ParquetTable(path)
        missing = [c for c in TABLES[name].column_names if c not in table.columns]
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
        if name in IN_MEMORY:
            tables[name] = SCHEMAS[name].validate(table.to_pandas()[TABLES[name].column_names])
        else:
            tables[name] = table[TABLES[name].column_names]
    return tables


def main(interim: Path | None = None, out: Path | None = None, engine: str | None = None) -> None:
    """Compute features and labels for every weekly snapshot and write them to ``out``."""
    cfg = settings()
    interim = Path(interim or cfg.paths.interim)
    out_dir = Path(out) if out is not None else cfg.paths.processed
    engine = engine or cfg.features.engine
    if engine not in ENGINES:
        raise InputError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")

    tables = read_tables(interim)
    rows_in = sum(len(t) for t in tables.values())
    LOG.info("features: engine %s", engine)
    with timed("features", rows_in) as info, use_engine(engine, cfg.features.duckdb_memory_limit):
        try:
            frame, catalogue = build_features(tables, None, cfg.features)
        finally:
            stop_spark()
        info["rows"] = rows_in
    LOG.info(
        "features: %s rows in, %s rows out (%d features)", f"{rows_in:,}", f"{len(frame):,}", len(catalogue["features"])
    )
    catalogue["engine"] = engine
    # the table and its catalogue go together: both are renamed into place only once both are written
    with atomic_paths(out_dir / "features.parquet", out_dir / "feature_catalog.json") as (table_tmp, catalog_tmp):
        frame.to_parquet(table_tmp, index=False)
        catalog_tmp.write_text(json_text(catalogue))
