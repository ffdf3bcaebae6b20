"""Where the feature SQL runs: DuckDB in-process (default) or Spark (local or a cluster).

Every family writes one portable query in DuckDB's dialect against views named after the
canonical tables (plus ``grid`` and ``snaps``). An *engine* is the small surface those
queries need: ``register(name, frame)`` and ``query(sql) -> pandas``. The DuckDB engine
runs the SQL as written; the Spark engine transpiles it with sqlglot
(``read="duckdb", write="spark"``) and runs it with ``spark.sql``, so both engines compute
the same definitions and ``tests/features/test_spark_engine.py`` proves they agree.

Which engine ``features.duck.connect`` opens is chosen by ``use_engine`` (a context
variable), so the family modules stay engine-agnostic.
"""

from __future__ import annotations

import contextvars
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import duckdb
import pandas as pd

ENGINES = ("duckdb", "spark")
_CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("feature_engine", default="duckdb")
_MEMORY_LIMIT: contextvars.ContextVar[str | None] = contextvars.ContextVar("duckdb_memory_limit", default=None)
_SPARK_SOURCE: contextvars.ContextVar[str | None] = contextvars.ContextVar("spark_source", default=None)


class Engine(Protocol):
    """What a feature family needs from a SQL engine."""

    name: str

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """Expose a pandas frame (naive-UTC timestamps) as a view called ``name``."""

    def register_parquet(self, name: str, table: Any) -> None:
        """Expose a ``features.duck.ParquetTable`` as a view: the engine reads the file, the caller holds no frame."""

    def query(self, sql: str) -> pd.DataFrame:
        """Run one DuckDB-dialect query and return its result as pandas."""

    def close(self) -> None:
        """Release the views and memory this engine holds."""


def sql_identifier(name: str) -> str:
    """A column or view name quoted for SQL, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(text: str | object) -> str:
    """A string (a path, an id) as a quoted SQL literal."""
    return "'" + str(text).replace("'", "''") + "'"


class DuckDBEngine:
    """An in-memory DuckDB connection, session time zone pinned to UTC."""

    name = "duckdb"

    def __init__(self, memory_limit: str | None = None) -> None:
        self.con = duckdb.connect(database=":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        # spill files go to the system's temp folder, never into the working directory
        self.con.execute(f"SET temp_directory = {sql_literal(f'{tempfile.gettempdir()}/churn-duckdb-{os.getpid()}')}")
        if memory_limit:
            # past the limit, joins, aggregates and sorts spill to disk instead of taking the machine's memory
            self.con.execute(f"SET memory_limit = {sql_literal(memory_limit)}")

    def register(self, name: str, frame: pd.DataFrame) -> None:
        self.con.register(name, frame)

    def register_parquet(self, name: str, table: Any) -> None:
        """A view over a ``features.duck.ParquetTable``: DuckDB scans the file, no frame is built."""
        self.con.execute(f"CREATE OR REPLACE VIEW {sql_identifier(name)} AS {table.view_sql()}")

    def query(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def execute(self, sql: str) -> Any:
        """Raw access for callers that need DuckDB itself (e.g. EXPLAIN ANALYZE when profiling)."""
        return self.con.execute(sql)

    def close(self) -> None:
        self.con.close()


def to_spark_sql(sql: str) -> str:
    """The DuckDB-dialect query in Spark SQL (sqlglot), plus two fixes sqlglot does not make.

    - ``quantile_cont(x, q)`` becomes ``percentile(x, q)``: both interpolate linearly between
      the two nearest values (sqlglot writes ``PERCENTILE_CONT(x, q)``, which Spark refuses);
    - ``timezone(tz, CAST(ts AS TIMESTAMPTZ))`` (naive UTC to local wall clock) becomes
      ``from_utc_timestamp(ts, tz)``; both read the IANA time-zone database, so DST is the same;
    - ``date_diff('second', a, b)`` counts second boundaries crossed in DuckDB, while Spark's
      ``DATEDIFF(SECOND, ...)`` truncates the elapsed time: ``unix_timestamp(b) - unix_timestamp(a)``
      (whole seconds since the epoch, floored) is DuckDB's definition;
    - decimal literals (``1.0``, ``3600.0``) are doubles: DuckDB computes with them in double
      precision, Spark would round to a fixed decimal scale.
    Anything else sqlglot cannot express in Spark raises instead of running a different query.
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ErrorLevel

    def percentile(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.PercentileCont) and node.expression is not None:
            return exp.Anonymous(this="percentile", expressions=[node.this, node.expression])
        return node

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous) and str(node.this).lower() == "timezone" and len(node.expressions) == 2:
            zone, value = node.expressions
            if isinstance(value, exp.Cast):
                value = value.this
            return exp.Anonymous(this="from_utc_timestamp", expressions=[value, zone])
        if isinstance(node, exp.DateDiff) and str(node.args.get("unit") or "").upper() == "SECOND":
            end = exp.Anonymous(this="unix_timestamp", expressions=[node.this])
            start = exp.Anonymous(this="unix_timestamp", expressions=[node.expression])
            return exp.Paren(this=exp.Sub(this=end, expression=start))
        if isinstance(node, exp.Literal) and not node.is_string and "." in node.this:
            return exp.Cast(this=node.copy(), to=exp.DataType.build("DOUBLE"))
        return node

    tree = sqlglot.parse_one(sql, read="duckdb").transform(fix).transform(percentile)
    return tree.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)


_SPARK = None


def spark_session() -> Any:
    """The process's SparkSession: ``local[*]`` unless ``spark-submit``/``SPARK_MASTER`` says otherwise.

    UTC session time zone so naive timestamps mean what they mean in DuckDB; Arrow for fast
    pandas <-> Spark conversion; few shuffle partitions, since a local run has few cores.
    """
    global _SPARK
    if _SPARK is None:
        import warnings

        from pyspark.sql import SparkSession

        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")

        builder = SparkSession.builder.appName("churn-features")
        if "SPARK_MASTER" in os.environ or not os.environ.get("SPARK_ENV_LOADED"):
            builder = builder.master(os.environ.get("SPARK_MASTER", "local[*]"))
        _SPARK = (
            builder.config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config(
                "spark.sql.shuffle.partitions", os.environ.get("CHURN_SPARK_PARTITIONS", str(2 * (os.cpu_count() or 2)))
            )
            .config("spark.sql.ansi.enabled", "false")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate()
        )
        _SPARK.sparkContext.setLogLevel("ERROR")
    return _SPARK


def stop_spark() -> None:
    """Stop the shared session (end of a stage or a test)."""
    global _SPARK
    if _SPARK is not None:
        _SPARK.stop()
        _SPARK = None


class SparkEngine:
    """Spark SQL over temp views; each query is transpiled from DuckDB's dialect by sqlglot.

    Canonical Parquet tables are read by Spark itself (``register_parquet``): on a cluster the
    executors scan the files where they lie, and the driver never holds an event table. Only
    small frames (accounts, contracts, the snapshot grid) travel from the driver.
    """

    name = "spark"

    def __init__(self, source: str | None = None) -> None:
        self.spark = spark_session()
        self.source = source
        self.views: list[str] = []

    def register(self, name: str, frame: pd.DataFrame) -> None:
        self.spark.createDataFrame(_spark_ready(frame)).createOrReplaceTempView(name)
        self.views.append(name)

    def location(self, table: Any) -> str:
        """Where Spark reads a ``features.duck.ParquetTable``: its path, or the same file name in ``source``.

        ``source`` is the canonical folder as the cluster sees it (``s3a://lake/churn/interim``,
        ``abfss://...``, ``dbfs:/mnt/...``) when the driver reads it through a mount or a copy.
        """
        if self.source is None:
            return str(table.path)
        return f"{self.source.rstrip('/')}/{table.path.name}"

    def register_parquet(self, name: str, table: Any) -> None:
        """A view over the Parquet file read by Spark (columns selected, the account range pushed down).

        Timestamps are instants in UTC (the session time zone), i.e. the naive-UTC values DuckDB
        sees; a timestamp without time zone (TIMESTAMP_NTZ) is read as the same wall clock in UTC.
        """
        from pyspark.sql import functions as F
        from pyspark.sql.types import TimestampNTZType

        frame = self.spark.read.parquet(self.location(table))
        if table.selected is not None:
            frame = frame.select(*table.selected)
        if table.accounts:
            first, last = table.accounts
            frame = frame.where((F.col("account_id") >= first) & (F.col("account_id") <= last))
        for field in frame.schema.fields:
            if isinstance(field.dataType, TimestampNTZType):
                frame = frame.withColumn(field.name, F.col(field.name).cast("timestamp"))
        frame.createOrReplaceTempView(name)
        self.views.append(name)

    def query(self, sql: str) -> pd.DataFrame:
        return self.spark.sql(to_spark_sql(sql)).toPandas()

    def close(self) -> None:
        for name in self.views:
            self.spark.catalog.dropTempView(name)
        self.views.clear()


def _spark_ready(frame: pd.DataFrame) -> Any:
    """An Arrow table Spark can take as is: types come from pandas' dtypes, not from guessing.

    Going through Arrow keeps all-null columns typed (a pandas ``string`` column of NULLs
    stays a string) and maps nullable ints, booleans and naive timestamps one to one.
    """
    import pyarrow as pa

    plain = frame.copy()
    for name, dtype in plain.dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype):
            plain[name] = plain[name].astype("string")
    table = pa.Table.from_pandas(plain, preserve_index=False)
    fields = [pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) else f for f in table.schema]
    return table.cast(pa.schema(fields))


def current_engine() -> str:
    """The engine ``open_engine`` will create in this context."""
    return _CURRENT.get()


@contextmanager
def use_engine(name: str, memory_limit: str | None = None, spark_source: str | None = None) -> Iterator[None]:
    """Run the feature families inside this block on engine ``name`` (duckdb or spark).

    ``memory_limit`` (e.g. ``4GB``) caps each DuckDB connection; by default DuckDB allows
    itself 80% of the machine, which a 100,000-account book would take. ``spark_source``: the
    canonical folder as Spark's executors see it (``SparkEngine.location``), else the local path.
    """
    if name not in ENGINES:
        raise ValueError(f"unknown feature engine {name!r}; expected one of {', '.join(ENGINES)}")
    tokens = (_CURRENT.set(name), _MEMORY_LIMIT.set(memory_limit), _SPARK_SOURCE.set(spark_source))
    try:
        yield
    finally:
        for var, token in zip((_CURRENT, _MEMORY_LIMIT, _SPARK_SOURCE), tokens):
            var.reset(token)


def open_engine() -> Engine:
    """A fresh engine of the current kind."""
    if current_engine() == "spark":
        return SparkEngine(_SPARK_SOURCE.get())
    return DuckDBEngine(_MEMORY_LIMIT.get())
