"""What a model predicts: churn within the horizon, or the current term going unrenewed.

Both models share the features, the training machinery and the evaluation; a target says
which label column they learn, which date keeps rows together in the out-of-time split, and
the least gap between two windows (how long after that date a label is known).

- ``horizon``: ``label`` (churn within ``horizon_days`` of the snapshot), split by snapshot
  date, gaps of ``horizon_days + grace_days``.
- ``renewal``: ``renewal_label`` (the term covering the snapshot ends without a renewal),
  split by the term's end (``term_end``): every snapshot of one term shares its label, so a
  term split across two windows would let early stopping and the test metrics measure memory
  of the account, not foresight. A term's label is known ``grace_days`` after it ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

LABEL = "label"  # the column training, baselines and evaluation read (``Target.view`` fills it)


@dataclass(frozen=True)
class Target:
    name: str
    label: str  # the grid's label column
    split_on: str  # the date a window is chosen by
    meaning: str

    def gap_days(self, horizon_days: int, grace_days: int) -> int:
        """Least days between two windows' dates: how long after that date the label is known."""
        return horizon_days + grace_days if self.split_on == "snapshot_date" else grace_days

    def view(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature table with this target's label in ``label`` (a lazy copy under copy-on-write)."""
        return frame if self.label == LABEL else frame.assign(**{LABEL: frame[self.label]})


HORIZON = Target("horizon", "label", "snapshot_date", "churn within horizon_days of the snapshot")
RENEWAL = Target("renewal", "renewal_label", "term_end", "the current term ends without a renewal")
TARGETS = {t.name: t for t in (HORIZON, RENEWAL)}


def split_dates(frame: pd.DataFrame, target: Target) -> pd.Series:
    """The date each row's window is chosen by: its snapshot, or the Monday of its term's end week."""
    dates = pd.to_datetime(frame[target.split_on])
    if target.split_on == "snapshot_date":
        return dates
    return (dates - pd.to_timedelta(dates.dt.weekday, unit="D")).dt.normalize()
