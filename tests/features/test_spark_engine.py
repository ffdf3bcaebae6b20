"""The Spark engine computes the same features as DuckDB (same SQL, transpiled by sqlglot).

One tiny random export (every table, fractional-second timestamps, several time zones),
one local SparkSession; every feature column must match DuckDB's to 1e-9 relative.
"""

from __future__ import annotations

import canonical_frames as cf
import pandas as pd
import pytest

from features.build import build_features
from features.engine import stop_spark, to_spark_sql, use_engine

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
