"""The out-of-time windows: from ``params.yaml`` dates, or derived from the labelled snapshots (``auto``).

Only *fully labelled* snapshots count: those whose every row has its label. The last weeks
before the export's end carry a label only for the accounts whose churn is already confirmed
(every one a 1), so a window that took them would see churners and no renewals.

``auto`` puts the most recent ``test`` weeks of fully labelled snapshots in the test window,
the ``valid`` weeks before them (one gap earlier) in validation, and every labelled snapshot
one gap before that in train. A gap is at least ``horizon_days + grace_days``: a snapshot's
label is only known ``horizon + grace`` days after it (a churn is confirmed when no renewal
came within the grace period), so every train label is known by the first validation
snapshot and every validation label by the first test snapshot, as when the model is
trained at that date and used on what follows.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import pandas as pd

from features.errors import InputError
from models.params import TrainParams
from models.targets import HORIZON, Target, split_dates

WEEK = dt.timedelta(days=7)


@dataclass(frozen=True)
class Windows:
    """Snapshot-date windows of the out-of-time split (inclusive bounds).

    ``test_end`` None: every labelled snapshot from ``test_start`` on; ``train_start`` None:
    every labelled snapshot up to ``train_end``.
    """

    train_end: dt.date
    valid_start: dt.date
    valid_end: dt.date
    test_start: dt.date
    test_end: dt.date | None = None
    train_start: dt.date | None = None

    @classmethod
    def from_params(cls, p: TrainParams) -> Windows:
        """The explicit dates of ``train.windows: dates``."""
        if p.windows != "dates":
            raise ValueError("train.windows is auto: derive the windows with models.windows.resolve_windows")
        return cls(p.train_end, p.valid_start, p.valid_end, p.test_start, p.test_end)

    def as_dict(self) -> dict[str, str | None]:
        return {k: (None if v is None else v.isoformat()) for k, v in asdict(self).items()}

    def describe(self) -> str:
        """One line: each window's first and last snapshot."""

        def span(first: dt.date | None, last: dt.date | None) -> str:
            return f"{first or 'start'}..{last or 'last'}"

        return (
            f"train {span(self.train_start, self.train_end)}, valid {span(self.valid_start, self.valid_end)}, "
            f"test {span(self.test_start, self.test_end)}"
        )


def fully_labelled_dates(frame: pd.DataFrame, target: Target = HORIZON) -> list[dt.date]:
    """Split dates (``targets.split_dates``: snapshots, or term-end weeks) whose every row carries a label, sorted."""
    labelled = frame[target.label].notna().groupby(split_dates(frame, target).to_numpy()).all()
    return [pd.Timestamp(day).date() for day in sorted(labelled.index[labelled.to_numpy(dtype=bool)])]


def weeks_needed(test: int, valid: int, min_train: int, gap_days: int) -> int:
    """Weeks of weekly labelled snapshots that ``auto_windows`` needs: the windows and two gaps between them."""
    skipped = math.ceil(gap_days / 7) - 1  # snapshots between the last of one window and the first of the next
    return test + valid + min_train + 2 * skipped


def auto_windows(
    dates: Iterable[dt.date],
    test: int,
    valid: int,
    min_train: int,
    gap_days: int,
    gap_rule: str = "horizon_days + grace_days",
    what: str = "fully labelled weeks",
    units: dict[dt.date, tuple[set, set]] | None = None,
    min_outcomes: int = 0,
) -> Windows:
    """The windows derived from the fully labelled snapshot dates (see the module).

    Args:
        dates: the fully labelled snapshot dates (any order, repeats allowed).
        test, valid: weeks of the test and validation windows; ``min_train``: the fewest weeks
            the train window may have.
        gap_days: the least number of days between the last snapshot of a window and the
            first of the next (``horizon_days + grace_days``).

        units: per date, the retained and the churned units (accounts, or terms for the renewal
            model) labelled there; with ``min_outcomes``, the test and validation windows reach
            further back, a week at a time, until each holds at least that many of both (on a
            small book a quarter of term ends may hold no unrenewed term at all).

    Raises:
        InputError: too little history for three windows, in one line with how many
            labelled weeks there are and how many are needed.
    """
    days = sorted(set(dates))
    gap = dt.timedelta(days=gap_days)
    need = weeks_needed(test, valid, min_train, gap_days)

    def too_short() -> InputError:
        have = 0 if not days else (days[-1] - days[0]).days // 7 + 1
        span = f" ({days[0]} to {days[-1]})" if days else ""
        return InputError(
            f"features.parquet: {have} {what}{span}, train.windows auto needs {need}: "
            f"train >= {min_train}, validation {valid} and test {test} weeks (train.window_weeks), "
            f"with {gap_days} days ({gap_rule}) between them; "
            "lower train.window_weeks or use a longer export"
        )

    def widened(start: dt.date, end: dt.date) -> dt.date:
        """``start`` moved back until [start, end] holds ``min_outcomes`` units of each outcome (or history ends)."""
        if not units or not min_outcomes:
            return start
        earlier = [d for d in days if d < start]
        while True:
            inside = [units[d] for d in days if start <= d <= end and d in units]
            retained = set().union(*(u[0] for u in inside))
            churned = set().union(*(u[1] for u in inside))
            if (len(retained) >= min_outcomes and len(churned) >= min_outcomes) or not earlier:
                return start
            start = earlier.pop()

    if not days:
        raise too_short()
    test_start = widened(min(d for d in days if d > days[-1] - test * WEEK), days[-1])
    valid_end = max((d for d in days if d <= test_start - gap), default=None)
    if valid_end is None:
        raise too_short()
    valid_start = widened(min(d for d in days if d > valid_end - valid * WEEK), valid_end)
    train_end = max((d for d in days if d <= valid_start - gap), default=None)
    if train_end is None or (train_end - days[0]).days // 7 + 1 < min_train:
        raise too_short()
    return Windows(train_end, valid_start, valid_end, test_start, days[-1], train_start=days[0])


def outcome_units(frame: pd.DataFrame, target: Target = HORIZON) -> dict[dt.date, tuple[set, set]]:
    """Per split date, the retained and the churned units labelled there: accounts, or (account, term end) terms."""
    labelled = frame[frame[target.label].notna()]
    when = split_dates(labelled, target).dt.date.to_numpy()
    unit = (
        labelled["account_id"].astype(str)
        if target is HORIZON
        else labelled["account_id"].astype(str) + "@" + labelled["term_end"].astype(str)
    ).to_numpy()
    churned = labelled[target.label].astype(int).to_numpy() == 1
    out: dict[dt.date, tuple[set, set]] = {}
    for day, u, c in zip(when, unit, churned):
        out.setdefault(day, (set(), set()))[int(c)].add(u)
    return out


def resolve_windows(
    frame: pd.DataFrame, p: TrainParams, horizon_days: int, grace_days: int, target: Target = HORIZON
) -> Windows:
    """The windows ``params.yaml`` asks for on this feature table, over the target's split dates.

    ``dates``: the given dates, ``test_end: null`` resolved to the last fully labelled split date.
    ``auto``: ``auto_windows`` with ``train.window_weeks`` and the target's gaps (``horizon_days +
    grace_days`` between snapshot dates; ``grace_days`` between term ends for the renewal model).
    """
    dates = fully_labelled_dates(frame, target)
    if p.windows == "dates":
        windows = Windows.from_params(p)
        if windows.test_end is None and dates:
            windows = Windows(**{**asdict(windows), "test_end": dates[-1]})
        return windows
    w = p.window_weeks
    gap = target.gap_days(horizon_days, grace_days)
    units = outcome_units(frame, target)
    if target is HORIZON:
        return auto_windows(dates, w.test, w.valid, w.min_train, gap, units=units, min_outcomes=w.min_outcomes)
    return auto_windows(
        dates,
        *(w.test, w.valid, w.min_train, gap, "grace_days", "weeks of fully labelled term ends"),
        units=units,
        min_outcomes=w.min_outcomes,
    )


def rule(p: TrainParams, horizon_days: int, grace_days: int, target: Target = HORIZON) -> str:
    """How the windows were chosen, for the log line and the run's parameters."""
    by = "" if target is HORIZON else ", by term end"
    if p.windows == "dates":
        return f"dates from params.yaml{by}"
    w = p.window_weeks
    return (
        f"auto{by}: test {w.test} + valid {w.valid} weeks or more until each holds {w.min_outcomes} churned and "
        f"retained, train the rest (>= {w.min_train}), gaps >= {target.gap_days(horizon_days, grace_days)} days"
    )
