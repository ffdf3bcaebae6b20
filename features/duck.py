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

from collections.abc import Mapping

import pandas as pd

from features.engine import Engine, open_engine

KEY = ["account_id", "snapshot_date"]


def naive_utc(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose tz-aware columns are naive UTC (DuckDB would otherwise need pytz to hand them back)."""
    out = frame.copy()
    for name, dtype in out.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[name] = out[name].dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def connect(tables: Mapping[str, pd.DataFrame], grid: pd.DataFrame | None = None) -> Engine:
    """An engine of the current kind (``features.engine.use_engine``) with the tables and grid as views."""
    con = open_engine()
    for name, frame in tables.items():
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
    result = result.copy()
    result["account_id"] = result["account_id"].astype("string")
    result["snapshot_date"] = pd.to_datetime(result["snapshot_date"]).astype("datetime64[ns]")
    out = grid[KEY].merge(result[KEY + names], on=KEY, how="left", validate="one_to_one")
    for name in names:
        out[name] = pd.to_numeric(out[name], errors="coerce").astype("float64")
        if name in counts:
            out[name] = out[name].fillna(0.0)
    return out
