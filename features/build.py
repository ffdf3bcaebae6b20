"""Assemble the feature table: snapshot grid, labels, then one DuckDB pass per family.

Pure: canonical tables and parameters in, (feature frame, catalogue document) out.
A family whose optional table is absent (or empty) is dropped, and the catalogue says so
in ``dropped_families``, so training and scoring never guess which columns to expect.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from features import adoption, context, qbr, responsiveness, support, tenure, voice
from features.catalogue import FeatureSpec, catalogue_to_json
from features.duck import KEY
from features.errors import InputError
from features.schemas import TABLES
from features.snapshots import build_grid, export_last_date, normalise_dates, snapshot_dates

LOG = logging.getLogger("churn.features")

LABEL_COLUMNS = ["label", "churn_date"]


@dataclass(frozen=True)
class SnapshotParams:
    """The parameters the features need (a subset of ``pipelines.config.FeatureParams``)."""

    first_snapshot: dt.date
    frequency_days: int = 7
    horizon_days: int = 90
    grace_days: int = 30
    business_hours: tuple[int, int] = (9, 18)

    @classmethod
    def coerce(cls, params: Any) -> "SnapshotParams":
        """Accept FeatureParams, this class or a plain mapping (tests, notebooks)."""
        if isinstance(params, cls):
            return params
        get = params.get if isinstance(params, Mapping) else lambda k, d=None: getattr(params, k, d)
        return cls(
            first_snapshot=pd.Timestamp(get("first_snapshot")).date(),
            frequency_days=int(get("frequency_days", 7)),
            horizon_days=int(get("horizon_days", 90)),
            grace_days=int(get("grace_days", 30)),
            business_hours=tuple(int(h) for h in get("business_hours", (9, 18))),
        )


@dataclass(frozen=True)
class Family:
    """One feature family: the tables it needs, its specs and its function."""

    name: str
    requires: tuple[str, ...]
    specs: list[FeatureSpec]
    compute: Callable[[dict[str, pd.DataFrame], pd.DataFrame, SnapshotParams], pd.DataFrame]


FAMILIES: tuple[Family, ...] = (
    Family("responsiveness", ("emails",), responsiveness.SPECS,
           lambda t, g, p: responsiveness.responsiveness_features(t, g, p.business_hours)),
    Family("qbr", ("meetings",), qbr.SPECS, lambda t, g, p: qbr.qbr_features(t, g)),
    Family("adoption", ("usage_events",), adoption.SPECS, lambda t, g, p: adoption.adoption_features(t, g)),
    Family("support", ("tickets",), support.TICKET_SPECS, lambda t, g, p: support.ticket_features(t, g)),
    # proactive touches belong to the support family but are read from e-mails
    Family("support", ("emails",), support.PROACTIVE_SPECS, lambda t, g, p: support.proactive_features(t, g)),
    Family("voice", ("surveys",), voice.SPECS, lambda t, g, p: voice.voice_features(t, g)),
    Family("tenure", ("contracts",), tenure.SPECS, lambda t, g, p: tenure.tenure_features(t, g)),
    Family("context", ("accounts",), context.SPECS, lambda t, g, p: context.context_features(t, g)),
)


def all_specs() -> list[FeatureSpec]:
    """Every feature the stage can produce, in output order."""
    return [spec for family in FAMILIES for spec in family.specs]


def check_tables(tables: Mapping[str, pd.DataFrame]) -> None:
    """Required tables and every canonical column must be there; raise InputError naming what is missing."""
    for name in ("accounts", "contracts"):
        if name not in tables:
            raise InputError(f"{name}: required table is missing")
    for name, frame in tables.items():
        if name not in TABLES:
            continue
        missing = [c for c in TABLES[name].column_names if c not in frame.columns]
        if missing:
            raise InputError(f"{name}: missing column(s) {', '.join(missing)}")


def usable_tables(tables: Mapping[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Tables with rows, and why each absent or empty optional table is unusable."""
    usable: dict[str, pd.DataFrame] = {}
    missing: dict[str, str] = {}
    for name in TABLES:
        if name not in tables:
            missing[name] = f"{name} table absent"
        elif len(tables[name]) == 0:
            missing[name] = f"{name} table is empty"
        else:
            usable[name] = tables[name]
    return usable, missing


def resolve_snapshots(
    snapshots: Iterable | pd.Series | None, params: SnapshotParams, last_date: pd.Timestamp
) -> pd.DatetimeIndex:
    """The regular weekly grid up to the export's last date, or the explicit dates asked for."""
    if snapshots is None:
        return snapshot_dates(params.first_snapshot, last_date, params.frequency_days)
    return normalise_dates(list(snapshots))


def build_features(
    tables: Mapping[str, pd.DataFrame],
    snapshots: Iterable | pd.Series | None,
    params: Any,
    export_end: dt.date | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The labelled, point-in-time feature table and its catalogue document.

    Args:
        tables: canonical frames by table name (accounts and contracts required).
        snapshots: explicit snapshot dates (e.g. scoring's as-of and as-of minus 7 days),
            or None for every ``frequency_days`` from ``first_snapshot`` to the export's end.
        params: ``FeatureParams`` (or a mapping with the same keys).
        export_end: override of the export's last observed day (default: derived from the data).

    Returns:
        The frame with ``account_id``, ``snapshot_date``, ``label`` (Int8), ``churn_date``,
        then one float64 (or category) column per feature; and the catalogue JSON document.
    """
    p = SnapshotParams.coerce(params)
    check_tables(tables)
    usable, missing = usable_tables(tables)
    if "contracts" not in usable:
        raise InputError("contracts: the table has no rows, so no account is ever active")
    last_date = pd.Timestamp(export_end) if export_end is not None else export_last_date(usable)
    dates = resolve_snapshots(snapshots, p, last_date)
    grid = build_grid(usable["contracts"], dates, p.horizon_days, p.grace_days, last_date)
    LOG.info("features: %d snapshots to %s, %d (account, snapshot) rows", len(dates),
             last_date.date(), len(grid))

    frame = grid.copy()
    specs: list[FeatureSpec] = []
    dropped: dict[str, str] = {}
    dropped_features: dict[str, str] = {}
    for family in FAMILIES:
        absent = [missing[t] for t in family.requires if t in missing]
        if absent:
            for spec in family.specs:
                dropped_features[spec.name] = "; ".join(absent)
            continue
        start = time.perf_counter()
        result = family.compute(usable, grid[KEY], p)
        seconds = time.perf_counter() - start
        rows_in = sum(len(usable[t]) for t in family.requires)
        LOG.info("features: %s (%s): %s rows in, %s rows out in %.2f s (%.0f rows/s)", family.name,
                 ", ".join(family.requires), f"{rows_in:,}", f"{len(result):,}", seconds,
                 rows_in / max(seconds, 1e-9))
        for spec in family.specs:
            frame[spec.name] = result[spec.name].to_numpy() if spec.dtype != "category" else result[spec.name].values
        specs.extend(family.specs)
    produced = {s.family for s in specs}
    for family in FAMILIES:
        if family.name not in produced and family.name not in dropped:
            dropped[family.name] = "; ".join(missing[t] for t in family.requires if t in missing)

    doc = catalogue_to_json(specs, dropped)
    doc["dropped_features"] = dropped_features
    doc["snapshots"] = {
        "export_last_date": last_date.date().isoformat(),
        "first_snapshot": dates.min().date().isoformat() if len(dates) else None,
        "last_snapshot": dates.max().date().isoformat() if len(dates) else None,
        "n_snapshots": int(len(dates)),
        "frequency_days": p.frequency_days if snapshots is None else None,
        "horizon_days": p.horizon_days,
        "grace_days": p.grace_days,
        "business_hours": list(p.business_hours),
        "explicit_dates": snapshots is not None,
    }
    return frame, doc
