"""Assemble the feature table: snapshot grid, labels, then one engine query per family and batch of accounts.

Pure: canonical tables and parameters in, (feature frame, catalogue document) out; the stage
writes the same table batch by batch (``write_features``) so it never holds all of it.
A family whose optional table is absent (or empty) is dropped, and the catalogue says so
in ``dropped_families``, so training and scoring never guess which columns to expect.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features import adoption, context, qbr, responsiveness, support, tenure, usage, voice
from features.catalogue import FeatureSpec, catalogue_to_json
from features.duck import KEY, Table, for_accounts
from features.errors import InputError
from features.export_date import export_last_date
from features.history import first_snapshot_after, history_start
from features.params import FeatureParams
from features.schemas import TABLES
from features.snapshots import build_grid, normalise_dates, snapshot_dates

LOG = logging.getLogger("churn.features")


@dataclass(frozen=True)
class Family:
    """One feature family: the tables it needs, its specs and its function.

    ``per_account``: each account's features depend on that account's rows (and on ``shared``,
    computed once from the whole book), so the family can run on batches of accounts: exactly
    the same values, a fraction of the memory. Adoption shares the product's feature catalogue.

    ``specs_for``: a family whose columns depend on the export (usage metrics per event type)
    builds its specs from ``shared``; ``shared`` is then given the caller's fixed vocabularies
    (a model's, when scoring) so the columns are the model's, not this export's.
    """

    name: str
    requires: tuple[str, ...]
    specs: list[FeatureSpec]
    compute: Callable[[dict[str, Table], pd.DataFrame, FeatureParams, Any], pd.DataFrame]
    per_account: bool = True
    shared: Callable[[dict[str, Table], FeatureParams, Mapping[str, dict]], Any] = lambda tables, p, fixed: None
    specs_for: Callable[[Any], list[FeatureSpec]] | None = None

    def specs_of(self, shared: Any) -> list[FeatureSpec]:
        """This run's specs: the static list, or those built from the shared vocabulary."""
        return self.specs if self.specs_for is None else self.specs_for(shared)


FAMILIES: tuple[Family, ...] = (
    Family(
        "responsiveness",
        ("emails",),
        responsiveness.SPECS,
        lambda t, g, p, _: responsiveness.responsiveness_features(t, g, p.business_hours),
    ),
    Family("qbr", ("meetings",), qbr.SPECS, lambda t, g, p, _: qbr.qbr_features(t, g)),
    Family(
        "adoption",
        ("usage_events",),
        adoption.SPECS,
        lambda t, g, p, first_days: adoption.adoption_features(t, g, first_days),
        shared=lambda tables, p, fixed: adoption.feature_first_days(tables),
    ),
    Family(
        "usage",
        ("usage_events",),
        usage.SPECS,
        lambda t, g, p, vocabulary: usage.usage_features(t, g, vocabulary),
        shared=lambda tables, p, fixed: usage.vocabulary_from(tables, p.usage.max_event_types, fixed),
        specs_for=usage.vocabulary_specs,
    ),
    Family("support", ("tickets",), support.TICKET_SPECS, lambda t, g, p, _: support.ticket_features(t, g)),
    # proactive touches belong to the support family but are read from e-mails
    Family("support", ("emails",), support.PROACTIVE_SPECS, lambda t, g, p, _: support.proactive_features(t, g)),
    Family("voice", ("surveys",), voice.SPECS, lambda t, g, p, _: voice.voice_features(t, g)),
    Family("tenure", ("contracts",), tenure.SPECS, lambda t, g, p, _: tenure.tenure_features(t, g)),
    # categories are every region and segment of the book, so context sees all accounts at once
    Family(
        "context", ("accounts",), context.SPECS, lambda t, g, p, _: context.context_features(t, g), per_account=False
    ),
)


def all_specs() -> list[FeatureSpec]:
    """Every feature with a fixed name, in output order (learned families add their vocabulary's)."""
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


LONGEST_WINDOW_DAYS = 120  # the longest look-back: usage trends per event type read the 90 days before the last 30


def first_snapshot(
    params: FeatureParams, tables: Mapping[str, Table], scoring_day: pd.Timestamp
) -> tuple[pd.Timestamp, dict]:
    """``features.first_snapshot``, or with ``auto`` the first day ``LONGEST_WINDOW_DAYS`` into the history
    that falls on the weekday of ``scoring_day``.

    The weekly list is scored the day after the export date; training on snapshots of the same
    weekday keeps recency features (days since last use, the oldest unanswered e-mail) on one
    footing: a Saturday sees Friday's activity one day old, a Monday three days old, and a
    model trained on Mondays would read every Saturday as a busier week than it was.

    Returns:
        The first snapshot date and what the catalogue records about how it was chosen.
    """
    if params.first_snapshot != "auto":
        return pd.Timestamp(params.first_snapshot), {"rule": "params.yaml"}
    start = history_start(tables)
    first = first_snapshot_after(start.day, LONGEST_WINDOW_DAYS, scoring_day.weekday())
    LOG.info(
        "features: first snapshot %s (auto: history from %s, set by %s, + %d days of look-back, on a %s like the "
        "scoring day %s)",
        first.date(),
        start.day.date(),
        start.source,
        LONGEST_WINDOW_DAYS,
        first.day_name(),
        scoring_day.date(),
    )
    return first, {
        "rule": "auto",
        "lookback_days": LONGEST_WINDOW_DAYS,
        "weekday": first.day_name(),
        "history": start.as_dict(),
    }


def resolve_snapshots(
    snapshots: Iterable | pd.Series | None, first: pd.Timestamp | None, last_date: pd.Timestamp, frequency_days: int
) -> pd.DatetimeIndex:
    """The regular grid from ``first`` to the export's last date, or the explicit dates asked for."""
    if snapshots is None:
        return snapshot_dates(first, last_date, frequency_days)
    return normalise_dates(list(snapshots))


def account_batches(
    grid: pd.DataFrame, rows_in: int, batch_rows: int, frequency_days: int = 7
) -> list[tuple[str, str]]:
    """Ranges of account ids (first, last) splitting the grid's accounts into batches of ~``batch_rows`` rows.

    An event row is held once per snapshot whose window covers it: up to 90 / 7 ≈ 13 times on the
    weekly grid, but only once or twice when scoring at two dates, which then needs fewer batches.
    """
    accounts = np.sort(grid["account_id"].astype("string").unique().to_numpy(dtype=object))
    snapshots = grid["snapshot_date"].nunique()
    covering = -(-LONGEST_WINDOW_DAYS // max(frequency_days, 1))
    held = rows_in * min(snapshots, covering) / covering
    n = min(len(accounts), max(1, int(np.ceil(held / max(batch_rows, 1)))))
    if n == 0:
        return []
    return [(str(part[0]), str(part[-1])) for part in np.array_split(accounts, n) if len(part)]


def family_grid(grid: pd.DataFrame, family: Family, shift_days: Mapping[str, int]) -> pd.DataFrame:
    """The (account, snapshot) keys a family is computed on: moved back when one of its tables stopped early.

    Every snapshot moves by the same days, so the keys stay unique and the result aligns on the grid's rows.
    """
    days = max((shift_days.get(t, 0) for t in family.requires), default=0)
    if not days:
        return grid[KEY]
    return grid[KEY].assign(snapshot_date=grid["snapshot_date"] - pd.Timedelta(days=days))


@dataclass
class FamilyRun:
    """One usable family of this run: its shared values and specs, and the time spent on it so far."""

    family: Family
    shared: Any
    specs: list[FeatureSpec]
    rows_in: int
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.family.name} ({', '.join(self.family.requires)})"


@dataclass
class FeaturePlan:
    """What ``feature_batches`` computes: the labelled grid (ordered by account, then snapshot), the
    usable families and the catalogue document. Made once; the batches then follow one another."""

    grid: pd.DataFrame
    runs: list[FamilyRun]
    doc: dict
    tables: dict[str, Table]
    params: FeatureParams
    shift_days: Mapping[str, int]

    @property
    def held_rows(self) -> int:
        """Event rows of the largest table a per-account family reads: what sizes the batches."""
        return max((r.rows_in for r in self.runs if r.family.per_account), default=0)


def plan_features(
    tables: Mapping[str, pd.DataFrame],
    snapshots: Iterable | pd.Series | None,
    params: FeatureParams,
    export_end: dt.date | None = None,
    vocabulary: Mapping[str, dict] | None = None,
    shift_days: Mapping[str, int] | None = None,
) -> FeaturePlan:
    """The grid, the families that can run (and their shared values: adoption's feature catalogue, usage's
    vocabulary, computed once over the whole book) and the catalogue document. Arguments as ``build_features``."""
    p = params
    check_tables(tables)
    usable, missing = usable_tables(tables)
    if "contracts" not in usable:
        raise InputError("contracts: the table has no rows, so no account is ever active")
    last_date = pd.Timestamp(export_end) if export_end is not None else export_last_date(usable)
    scoring_day = last_date + pd.Timedelta(days=1)  # ``models.scoring.default_as_of``
    first, first_doc = first_snapshot(p, usable, scoring_day) if snapshots is None else (None, None)
    if first is not None and first > last_date:
        raise InputError(
            f"features.first_snapshot {first.date()} is after the export's last date {last_date.date()}: "
            + ("the history is shorter than the features' look-back" if p.first_snapshot == "auto" else "no snapshot")
        )
    dates = resolve_snapshots(snapshots, first, last_date, p.frequency_days)
    grid = build_grid(usable["contracts"], dates, p.horizon_days, p.grace_days, last_date)
    LOG.info("features: %d snapshots to %s, %d (account, snapshot) rows", len(dates), last_date.date(), len(grid))

    runs: list[FamilyRun] = []
    specs: list[FeatureSpec] = []
    dropped: dict[str, str] = {}
    dropped_features: dict[str, str] = {}
    vocabularies: dict[str, dict] = {}
    for family in FAMILIES:
        absent = [missing[t] for t in family.requires if t in missing]
        if absent:
            for spec in family.specs:
                dropped_features[spec.name] = "; ".join(absent)
            continue
        start = time.perf_counter()
        shared = family.shared(usable, p, vocabulary or {})
        family_specs = family.specs_of(shared)
        if family.specs_for is not None:
            vocabularies.update({table: shared.as_dict() for table in family.requires})
        rows_in = sum(len(usable[t]) for t in family.requires)
        runs.append(FamilyRun(family, shared, family_specs, rows_in, time.perf_counter() - start))
        specs.extend(family_specs)
    produced = {s.family for s in specs}
    for family in FAMILIES:
        if family.name not in produced and family.name not in dropped:
            dropped[family.name] = "; ".join(missing[t] for t in family.requires if t in missing)

    doc = catalogue_to_json(specs, dropped)
    doc["dropped_features"] = dropped_features
    doc["vocabulary"] = vocabularies
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
    if first_doc is not None:
        doc["snapshots"]["first_snapshot_choice"] = first_doc
    return FeaturePlan(grid, runs, doc, dict(usable), p, shift_days or {})


def feature_batches(plan: FeaturePlan, batch_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """The feature table batch by batch of accounts, in grid order (account, then snapshot).

    Every family's values for an account depend on that account's rows only (and on the shared
    values), so a batch computes exactly what the whole book would, with memory bounded by the
    batch: exact percentiles cannot spill to disk, and a 100,000-account table of ~100 float
    columns does not fit in memory at once. Families that need every account (context: the
    book's categories) run once on the whole grid and are sliced.
    """
    grid = plan.grid
    ranges = account_batches(grid, plan.held_rows, batch_rows, plan.params.frequency_days) if batch_rows else []
    whole = {id(r): _run(r, plan.tables, grid, plan) for r in plan.runs if not r.family.per_account}
    ids = grid["account_id"].astype("string")
    bounds = [(None, None)] if len(ranges) <= 1 else ranges
    for number, (first, last) in enumerate(bounds, 1):
        if first is None:
            rows, subset = np.arange(len(grid)), plan.tables
        else:
            rows = np.flatnonzero(((ids >= first) & (ids <= last)).to_numpy(dtype=bool))
            subset = {n: for_accounts(t, first, last) if n != "accounts" else t for n, t in plan.tables.items()}
        keys = grid.iloc[rows].reset_index(drop=True)
        columns: dict[str, Any] = {}
        for run in plan.runs:
            if not run.family.per_account:
                result = whole[id(run)].iloc[rows].reset_index(drop=True)
            else:
                result = _run(run, subset, keys, plan)
            for spec in run.specs:
                values = result[spec.name]
                columns[spec.name] = values.values if spec.dtype == "category" else values.to_numpy()
        if len(bounds) > 1:
            LOG.info("features: batch %d of %d (accounts %s to %s)", number, len(bounds), first, last)
        yield pd.concat([keys, pd.DataFrame(columns, index=keys.index)], axis=1)
    for run in plan.runs:
        LOG.info(
            "features: %s: %s rows in, %s rows out in %.2f s (%.0f rows/s)",
            *(run.label, f"{run.rows_in:,}", f"{len(grid):,}", run.seconds, run.rows_in / max(run.seconds, 1e-9)),
        )


def _run(run: FamilyRun, tables: Mapping[str, Table], keys: pd.DataFrame, plan: FeaturePlan) -> pd.DataFrame:
    """One family on some (account, snapshot) keys, timed into ``run.seconds``; aligned on ``keys``' rows."""
    start = time.perf_counter()
    result = run.family.compute(dict(tables), family_grid(keys, run.family, plan.shift_days), plan.params, run.shared)
    run.seconds += time.perf_counter() - start
    return result


def build_features(
    tables: Mapping[str, pd.DataFrame],
    snapshots: Iterable | pd.Series | None,
    params: FeatureParams,
    export_end: dt.date | None = None,
    batch_rows: int | None = None,
    vocabulary: Mapping[str, dict] | None = None,
    shift_days: Mapping[str, int] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The labelled, point-in-time feature table and its catalogue document.

    Args:
        tables: canonical frames by table name (accounts and contracts required).
        snapshots: explicit snapshot dates (e.g. scoring's as-of and as-of minus 7 days),
            or None for every ``frequency_days`` from ``first_snapshot`` (a date, or ``auto``: see
            ``first_snapshot``) to the export's end.
        params: the ``features`` section of params.yaml.
        export_end: the export date, the last day it observes (the pipeline passes the one ingest
            recorded); None: ``features.export_date.export_last_date`` of ``tables``.
        batch_rows: run per-account families on batches of accounts holding about this many
            event rows (bounds memory; the values are the same), or None for one pass.
        vocabulary: the learned families' vocabularies by table (a catalogue's ``vocabulary``
            section: the model's, when scoring), or None to learn them from ``tables``.
        shift_days: tables that stopped arriving early (a stale connector, scored with anyway)
            and by how many days: the families reading them are computed that many days before
            each snapshot, as of the table's last row, so its silence is never read as the
            customers going quiet.

    Returns:
        The frame with ``account_id``, ``snapshot_date``, ``label`` (Int8), ``churn_date``,
        then one float64 (or category) column per feature, ordered by account then snapshot;
        and the catalogue JSON document. ``write_features`` writes the same table batch by batch.
    """
    plan = plan_features(tables, snapshots, params, export_end, vocabulary, shift_days)
    frame = pd.concat(list(feature_batches(plan, batch_rows)), ignore_index=True)
    return frame, plan.doc


def write_features(plan: FeaturePlan, target: Any, batch_rows: int | None = None) -> int:
    """``feature_batches`` appended to one Parquet file as they come (one row group per batch); returns the rows.

    The file reads back as ``build_features``' frame (same columns, dtypes and rows), while the
    stage never holds more than one batch of it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, rows = None, 0
    try:
        for batch in feature_batches(plan, batch_rows):
            table = pa.Table.from_pandas(batch, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema)
            writer.write_table(table.cast(writer.schema))
            rows += len(batch)
    finally:
        if writer is not None:
            writer.close()
    return rows
