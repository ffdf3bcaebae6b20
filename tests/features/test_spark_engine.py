"""The Spark engine computes the same features as DuckDB (same SQL, transpiled by sqlglot).

One tiny random export (every table, fractional-second timestamps, several time zones),
one local SparkSession; every feature column must match DuckDB's to 1e-9 relative.
"""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import canonical_frames as cf
import pandas as pd
import psutil
import pyarrow.parquet as pq
import pytest

from features.build import build_features
from features.engine import stop_spark, to_spark_sql, use_engine
from pipelines.canonical import read_tables
from pipelines.ingestion.pipeline import write_canonical

pytest.importorskip("pyspark")

PARAMS = cf.feature_params(first_snapshot="2024-03-04", frequency_days=14)


def test_transpiler_fixes_the_constructs_sqlglot_gets_wrong() -> None:
    sql = to_spark_sql(
        "SELECT quantile_cont(x, 0.9) AS q, timezone(tz, CAST(ts AS TIMESTAMPTZ)) AS l, "
        "date_diff('second', a, b) / 3600.0 AS h FROM t"
    )
    assert "PERCENTILE(" in sql.upper() and "PERCENTILE_CONT" not in sql.upper()
    assert "FROM_UTC_TIMESTAMP(TS, TZ)" in sql.upper()
    assert "UNIX_TIMESTAMP(B) - UNIX_TIMESTAMP(A)" in sql.upper()
    assert "CAST(3600.0 AS DOUBLE)" in sql.upper()


@pytest.mark.slow
def test_spark_gives_the_same_features_as_duckdb() -> None:
    tables = cf.random_export(n_accounts=6, seed=3, days=400)
    expected, catalogue = build_features(tables, None, PARAMS)
    try:
        with use_engine("spark"):
            actual, spark_catalogue = build_features(tables, None, PARAMS)
    finally:
        stop_spark()

    assert len(expected) > 50 and expected["reply_latency_median_business_hours_90d"].notna().any()
    assert list(actual.columns) == list(expected.columns)
    assert spark_catalogue["features"] == catalogue["features"]
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False, rtol=1e-9, atol=1e-9)


def write_interim(tables: dict[str, pd.DataFrame], folder: Path) -> Path:
    """The tables as ingest writes them (canonical columns, timestamps in microseconds)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        write_canonical(frame, name, folder / f"{name}.parquet")
    return folder


@pytest.mark.slow
def test_spark_reads_the_canonical_parquet_itself_and_gives_duckdbs_features(tmp_path) -> None:
    """The stage's path on Spark: the event tables are files Spark scans (in batches of accounts), not frames."""
    tables = cf.random_export(n_accounts=6, seed=3, days=400)
    interim = write_interim(tables, tmp_path)
    assert pq.read_schema(interim / "emails.parquet").field("sent_at").type.unit == "us"  # a unit Spark reads
    expected, catalogue = build_features(tables, None, PARAMS)
    batch_rows = max(len(tables["usage_events"]) // 3, 1)
    try:
        with use_engine("spark"):
            actual, spark_catalogue = build_features(read_tables(interim), None, PARAMS, batch_rows=batch_rows)
    finally:
        stop_spark()
    assert spark_catalogue["features"] == catalogue["features"]
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False, rtol=1e-9, atol=1e-9)


def _peak_rss_growth_mib(run) -> float:
    """How far this process's RSS rose above its level at the start while ``run()`` ran (sampled every 20 ms)."""
    process = psutil.Process()
    gc.collect()
    start = process.memory_info().rss
    peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run()
    finally:
        done.set()
        sampler.join()
    return (peak - start) / 2**20


@pytest.mark.slow
def test_the_spark_driver_never_holds_an_event_table(tmp_path) -> None:
    """The Python driver's memory stays flat while the usage table grows 40-fold: Spark reads the file itself.

    Same accounts, contracts and snapshots, so the feature table is the same size; only the
    events grow. Before Spark read the Parquet itself, the driver built each event table in
    pandas and shipped it through Arrow: its peak grew with the table.
    """
    small = cf.random_export(n_accounts=10, seed=7, days=200, usage_per_day=8)
    large = cf.random_export(n_accounts=10, seed=7, days=200, usage_per_day=300)
    keep = ("accounts", "contracts", "usage_events")
    folders = {
        size: write_interim({name: export[name] for name in keep}, tmp_path / size)
        for size, export in (("small", small), ("large", large))
    }
    params = cf.feature_params(first_snapshot="2024-05-06", frequency_days=28)
    results = {}

    def features(size: str) -> None:
        results[size] = build_features(read_tables(folders[size]), None, params)[0]

    try:
        with use_engine("spark"):
            # the small run also starts the session and the JVM's gateway: its rise is the (generous) baseline
            growth = {size: _peak_rss_growth_mib(lambda size=size: features(size)) for size in ("small", "large")}
    finally:
        stop_spark()

    held = read_tables(folders["large"])["usage_events"].to_pandas()
    table_mib = held.memory_usage(deep=True).sum() / 2**20
    print(f"driver peak growth {growth}, the large usage table in pandas {table_mib:.0f} MiB, {len(held):,} rows")
    assert len(held) > 35 * len(small["usage_events"]) and table_mib > 25
    assert len(results["large"]) == len(results["small"])
    # holding the table would add at least its own size (it was built, copied to naive UTC, then to Arrow)
    assert growth["large"] < growth["small"] + 0.5 * table_mib, (growth, table_mib)
