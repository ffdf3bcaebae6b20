"""Read the canonical tables that ingest wrote: the one way the features and score stages (and
the notebooks) open ``data/interim``.

Accounts and contracts (one row per account or contract: small, and read by pandas code)
come back as validated frames; the event tables as ``ParquetTable`` references that the
engine scans in place, so no stage holds tens of millions of e-mails in memory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from features.duck import ParquetTable, Table
from features.errors import InputError
from features.export_date import RECORD, ExportDate, infer_from_tables
from features.schemas import SCHEMAS, TABLES

LOG = logging.getLogger("churn.features")
IN_MEMORY = ("accounts", "contracts")


def read_tables(interim: Path) -> dict[str, Table]:
    """Every canonical table present in ``interim`` (absent optional tables are left out).

    The event tables were validated by ingest when written; here their columns are checked,
    so a hand-made or older interim folder fails with the file and the columns it lacks.
    """
    if not interim.is_dir():
        raise InputError(f"{interim}: canonical tables folder not found (run `churn ingest` first)")
    refused = _record(interim).get("refused")
    if refused:
        raise InputError(f"{interim}: ingest stopped on this export ({refused}); fix it and run `dvc repro` again")
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


def read_canonical_tables(folder: Path) -> dict[str, Table]:
    """``read_tables``, failing in one line when a required table (accounts, contracts) is missing."""
    tables = read_tables(folder)
    missing = [name for name, t in TABLES.items() if t.required and name not in tables]
    if missing:
        raise InputError(f"{folder}: canonical table(s) {', '.join(missing)} not found; run `dvc repro ingest` first")
    return tables


def read_owners(interim: Path) -> pd.Series:
    """Each account's owner (string), by account id: whose budget of alerts an account falls in."""
    accounts = pd.read_parquet(interim / "accounts.parquet", columns=["account_id", "owner"])
    accounts = accounts.drop_duplicates("account_id")
    return accounts.set_index(accounts["account_id"].astype(str))["owner"].astype("string")


def read_export_date(interim: Path, tables: dict[str, Table] | None = None) -> ExportDate:
    """The export date ingest decided (``<interim>/export.json``): the grid's end, the labels' and the as-of's.

    A folder without the record (written by hand, or by an older ingest) gets the same rule
    applied to its canonical tables, and says so in the log.
    """
    doc = _record(interim)
    if "export_date" in doc:
        return ExportDate.from_dict(doc["export_date"])
    decided = infer_from_tables(tables if tables is not None else read_tables(interim))
    LOG.info("%s: no export date recorded by ingest; %s", interim / RECORD, decided.line())
    return decided


def _record(interim: Path) -> dict:
    path = interim / RECORD
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise InputError(f"{path}: not valid JSON; run `dvc repro ingest` again") from None


def read_feature_table(features: Path, catalog: Path, columns: list[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """The feature table (or some of its columns) and its catalogue, with a clear error when the features
    stage has not run."""
    if not features.exists() or not catalog.exists():
        raise InputError(f"{features}: feature table not found; run `dvc repro features` first")
    return pd.read_parquet(features, columns=columns), json.loads(catalog.read_text())


def iter_feature_rows(features: Path, positions: np.ndarray) -> Iterator[pd.DataFrame]:
    """The rows of the feature table at ``positions`` (ascending), every column, one row group at a time.

    A 100,000-account table of ~100 float columns is gigabytes; a model needs only its windows'
    rows, and a backtest scores its replayed weeks a part at a time. Row groups holding none of
    the positions are not read (the features stage writes one per batch of accounts).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(features)
    start = 0
    for group in range(file.metadata.num_row_groups):
        rows = file.metadata.row_group(group).num_rows
        lo, hi = np.searchsorted(positions, [start, start + rows])
        if hi > lo:
            table = file.read_row_group(group).take(pa.array(positions[lo:hi] - start))
            yield table.to_pandas()
        start += rows


def read_feature_rows(features: Path, positions: np.ndarray) -> pd.DataFrame:
    """``iter_feature_rows`` gathered in one frame (the rows at ``positions``, in order)."""
    parts = list(iter_feature_rows(features, positions))
    if not parts:
        return pd.read_parquet(features).iloc[:0]
    return pd.concat(parts, ignore_index=True)
