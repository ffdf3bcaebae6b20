"""The SQL plumbing shared by every feature family.

Each family is one SQL query run on an engine (``features.engine``: in-memory DuckDB by
default, or Spark) where the canonical
frames are registered as views. Two conventions keep the SQL portable (a later task
transpiles it to Spark) and point-in-time safe:

- timestamps are registered as *naive UTC* ``TIMESTAMP`` (tz dropped after converting to
  UTC), so a snapshot date compares to event times as "snapshot 00:00 UTC" with no
  session-time-zone surprises; the session time zone is pinned to UTC anyway;
- every family receives the distinct snapshot dates as a view ``snaps(snapshot_date)``
  and the (account, snapshot) rows as ``grid(account_id, snapshot_date)``; families join
  events to ``snaps`` with range conditions and aggregate, then left-join to ``grid``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.engine import DuckDBEngine, Engine, open_engine, sql_identifier, sql_literal

if TYPE_CHECKING:
    import pyarrow as pa

KEY = ["account_id", "snapshot_date"]


@dataclass(frozen=True)
class ParquetTable:
    """A canonical table left on disk: the engine reads it where it lies, a frame is never built.

    The large event tables (usage, e-mails) are tens of millions of rows; DuckDB scans the
    Parquet file in parallel, reading only the columns a family selects, with memory bounded
    by the query rather than by the table. Supports what the families ask of a frame:
    ``len``, ``columns``, ``empty`` and ``table[[columns]]``.
    """

    path: Path
    selected: tuple[str, ...] | None = None
    accounts: tuple[str, str] | None = None  # only rows whose account_id lies in [first, last]

    @property
    def columns(self) -> list[str]:
        import pyarrow.parquet as pq

        names = pq.ParquetFile(self.path).schema_arrow.names
        return [c for c in names if self.selected is None or c in self.selected]

    def __len__(self) -> int:
        import pyarrow.parquet as pq

        return pq.ParquetFile(self.path).metadata.num_rows

    @property
    def empty(self) -> bool:
        return len(self) == 0

    def __getitem__(self, columns: Sequence[str]) -> "ParquetTable":
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise KeyError(f"{self.path}: no column(s) {', '.join(missing)}")
        return ParquetTable(self.path, tuple(columns), self.accounts)

    def to_pandas(self) -> pd.DataFrame:
        filters = (
            [("account_id", ">=", self.accounts[0]), ("account_id", "<=", self.accounts[1])] if self.accounts else None
        )
        return read_frame(self.path, list(self.selected) if self.selected else None, filters)

    def view_sql(self) -> str:
        """A SELECT over the file with tz-aware timestamps as naive UTC, like ``naive_utc`` does for frames."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pq.ParquetFile(self.path).schema_arrow
        columns = []
        for name in self.columns:
            field = schema.field(name)
            quoted = sql_identifier(name)
            is_tz = pa.types.is_timestamp(field.type) and field.type.tz is not None
            columns.append(f"CAST({quoted} AS TIMESTAMP_NS) AS {quoted}" if is_tz else quoted)
        where = ""
        if self.accounts:
            first, last = (sql_literal(a) for a in self.accounts)
            where = f" WHERE account_id >= {first} AND account_id <= {last}"
        return f"SELECT {', '.join(columns)} FROM read_parquet({sql_literal(self.path)}){where}"


def read_frame(path: Path, columns: list[str] | None = None, filters: list | None = None) -> pd.DataFrame:
    """A canonical Parquet file as pandas, timestamps in nanoseconds (the files store microseconds, for Spark)."""
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=columns, filters=filters).to_pandas(coerce_temporal_nanoseconds=True)


def for_accounts(table: Table, first: str, last: str) -> Table:
    """The rows of accounts ``first`` to ``last`` (inclusive, in string order), lazily for Parquet."""
    if isinstance(table, ParquetTable):
        return ParquetTable(table.path, table.selected, (first, last))
    ids = table["account_id"].astype("string")
    return table[((ids >= first) & (ids <= last)).fillna(False).to_numpy()]


Table = pd.DataFrame | ParquetTable


def column_max(table: Table, column: str) -> object:
    """The largest value of one column, read from the file's own engine when the table is on disk."""
    if isinstance(table, ParquetTable):
        engine = DuckDBEngine()
        try:
            return engine.execute(
                f"SELECT max({sql_identifier(column)}) FROM ({table[[column]].view_sql()})"
            ).fetchone()[0]
        finally:
            engine.close()
    return table[column].max()


def naive_utc(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose tz-aware columns are naive UTC (DuckDB would otherwise need pytz to hand them back)."""
    out = frame.copy()
    for name, dtype in out.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[name] = out[name].dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def connect(tables: Mapping[str, Table], grid: pd.DataFrame | None = None) -> Engine:
    """An engine of the current kind (``features.engine.use_engine``) with the tables and grid as views."""
    con = open_engine()
    for name, frame in tables.items():
        if isinstance(frame, ParquetTable):
            con.register_parquet(name, frame)  # the engine scans the file; no frame is built here
        else:
            con.register(name, naive_utc(frame))
    if grid is not None:
        con.register("grid", grid[KEY])
        snaps = pd.DataFrame({"snapshot_date": pd.Series(grid["snapshot_date"].unique()).sort_values()})
        con.register("snaps", snaps)
    return con


def query(con: Engine, sql: str) -> pd.DataFrame:
    """Run one (DuckDB-dialect, portable) query and return a pandas frame."""
    return con.query(sql)


def finish(grid: pd.DataFrame, result: pd.DataFrame, names: list[str], counts: tuple[str, ...] = ()) -> pd.DataFrame:
    """Align a family's result on the grid, keyed (account_id, snapshot_date), features as float64.

    ``counts`` are the features where "no rows in the window" means a true zero (the table is
    present, the account simply had none); every other missing value stays NaN ("no data").
    """
    where = grid_positions(grid, result)
    out = grid[KEY].copy()
    for name in names:
        values = pd.to_numeric(result[name], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        aligned = np.full(len(grid), np.nan)
        found = where >= 0
        aligned[found] = values[where[found]]
        if name in counts:
            aligned = np.nan_to_num(aligned, nan=0.0)
        out[name] = aligned
    return out


def arrow_ids(values: pd.Series) -> "pa.Array | pa.ChunkedArray":
    """Ids as an Arrow string array (zero-copy for Arrow-backed pandas strings)."""
    import pyarrow as pa

    return pa.array(values.astype("string"), from_pandas=True)


def positions_in(values: pd.Series, among: "pa.Array | pa.ChunkedArray") -> np.ndarray:
    """Where each id of ``values`` sits in ``among`` (-1 when absent or missing).

    Arrow's hash lookup: pandas' string ``isin``/``map``/``get_indexer`` walk the values in
    Python, seconds per call on millions of rows.
    """
    import pyarrow.compute as pc

    return pc.index_in(arrow_ids(values), value_set=among).fill_null(-1).to_numpy().astype("int64")


def grid_positions(grid: pd.DataFrame, result: pd.DataFrame) -> np.ndarray:
    """For each grid row, the row of ``result`` with the same (account_id, snapshot_date), or -1.

    Accounts and snapshot dates become small integer codes, and (account, date) one dense
    slot number, so aligning millions of rows is an array lookup, not a pandas merge on
    strings. A key twice in ``result`` is a bug of the family's SQL.
    """
    import pyarrow.compute as pc

    def dates(frame: pd.DataFrame) -> np.ndarray:
        return pd.to_datetime(frame["snapshot_date"]).astype("datetime64[ns]").to_numpy()

    accounts = pc.unique(arrow_ids(grid["account_id"]))
    snapshot_days = np.unique(dates(grid))

    def slots(frame: pd.DataFrame) -> np.ndarray:
        account = positions_in(frame["account_id"], accounts)
        when = dates(frame)
        day = np.searchsorted(snapshot_days, when)
        known = (account >= 0) & (day < len(snapshot_days))
        known[known] = snapshot_days[day[known]] == when[known]
        return np.where(known, account * len(snapshot_days) + day, -1)

    result_slots = slots(result)
    table = np.full(len(accounts) * len(snapshot_days), -1, dtype="int64")
    mine = np.flatnonzero(result_slots >= 0)  # rows of accounts or dates outside the grid are not wanted
    if np.bincount(result_slots[mine], minlength=1).max(initial=0) > 1:
        raise ValueError("a feature family returned two rows for one (account_id, snapshot_date)")
    table[result_slots[mine]] = mine
    return table[slots(grid)]
