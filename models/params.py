"""The model's parameters (``train`` and ``score`` sections of params.yaml), typed and without defaults.

Light on purpose: ``pipelines.config`` imports this module for every stage, so it pulls in
nothing but pydantic (no LightGBM, no scikit-learn).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator, model_validator

from features.params import NO_DEFAULT, StrictParams

WINDOW_DATES = ("train_end", "valid_start", "valid_end", "test_start", "test_end")
REFIT = "refit"  # the winner refitted on the whole train window, beside the candidates in logs and MLflow


class WindowWeeks(StrictParams):
    """Sizes of the automatic windows, in weeks of labelled snapshots."""

    test: int = Field(ge=1)  # the most recent labelled weeks
    valid: int = Field(ge=1)  # the weeks before them, one gap earlier
    min_train: int = Field(ge=1)  # fewer weeks left before the next gap: too little history, an error
    min_outcomes: int = Field(ge=0)  # test and validation reach back until each holds this many churned and retained


class Candidate(StrictParams):
    """One LightGBM setting the search tries (an item of ``train.tuning.candidates``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")  # in the log, metadata and MLflow metric keys
    num_leaves: int = Field(ge=2)  # 2: stumps, one split per tree, an additive model
    min_data_in_leaf_share: float = Field(gt=0, lt=1)  # of the rows the candidate is fitted on (at least the floor)
    lambda_l2: float = Field(ge=0)
    learning_rate: float = Field(gt=0, le=1)
    feature_fraction: float = Field(gt=0, le=1)


class Tuning(StrictParams):
    """The small search that chooses LightGBM's setting on the validation window, per fit.

    Every candidate is fitted with early stopping on validation; the best validation ROC AUC
    wins and a tie goes to the candidate listed first (list them simplest first). A training
    window larger than ``search_rows`` is searched on a deterministic sample of that many rows,
    and the winner refitted on the whole window.
    """

    candidates: list[Candidate] = Field(min_length=1)  # a list: its order, not a mapping's, breaks ties
    min_data_in_leaf_floor: int = Field(ge=1)  # min_data_in_leaf = max(floor, share x rows fitted on)
    search_rows: int = Field(ge=1)
    num_boost_round: int = Field(ge=1)
    early_stopping_rounds: int = Field(ge=1)
    bagging_fraction: float = Field(gt=0, le=1)
    bagging_freq: int = Field(ge=0)

    @field_validator("candidates")
    @classmethod
    def _names_are_unique(cls, candidates: list[Candidate]) -> list[Candidate]:
        names = [c.name for c in candidates]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"candidate name(s) {', '.join(twice)} given twice")
        if REFIT in names:
            raise ValueError(f"candidate name {REFIT!r} is taken: the winner's refit is recorded under it")
        return candidates


class TrainParams(StrictParams):
    """The ``train`` section of params.yaml: windows, LightGBM's search, calibration, registry names.

    ``windows: auto`` derives the out-of-time windows from the feature table's labelled
    snapshots with the sizes in ``window_weeks``; ``windows: dates`` takes the four dates and
    ``test_end`` instead. Each mode's keys are required with it and refused with the other, so
    a setting is never silently unread. The ``None`` below mark a key as absent, not a default.
    """

    windows: Literal["auto", "dates"]
    window_weeks: WindowWeeks | None = None
    train_end: dt.date | None = None
    valid_start: dt.date | None = None
    valid_end: dt.date | None = None
    test_start: dt.date | None = None
    test_end: dt.date | None = None  # with dates, null: the last fully labelled snapshot
    calibration: Literal["isotonic", "sigmoid"]
    seed: int  # LightGBM's and the logistic baseline's
    tuning: Tuning
    scale_pos_weight: float | Literal["auto"]
    max_window_rows: int = Field(ge=1)  # a larger train or validation window keeps every k-th weekly snapshot
    monotone: bool
    registered_model: str  # a prefix: registered as <this>-<data.source> (pipelines.config.Settings.registered_names)
    renewal_registered_model: str  # likewise, <this>-<data.source>
    experiment: str

    @model_validator(mode="after")
    def _keys_of_the_chosen_mode(self) -> TrainParams:
        """``auto`` reads ``window_weeks`` and no date; ``dates`` reads the dates and no sizes."""
        given = self.model_fields_set
        if self.windows == "auto":
            if "window_weeks" not in given or self.window_weeks is None:
                raise ValueError(f"train.window_weeks: {NO_DEFAULT}")
            for key in WINDOW_DATES:
                if key in given:
                    raise ValueError(f"train.{key}: only read with train.windows: dates (auto derives the windows)")
            return self
        for key in WINDOW_DATES:
            if key not in given or (key != "test_end" and getattr(self, key) is None):
                raise ValueError(f"train.{key}: {NO_DEFAULT} (train.windows: dates)")
        if "window_weeks" in given:
            raise ValueError("train.window_weeks: only read with train.windows: auto")
        if self.valid_end < self.valid_start:
            raise ValueError("train.valid_end must not be before train.valid_start")
        if self.test_end is not None and self.test_end < self.test_start:
            raise ValueError("train.test_end must not be before train.test_start")
        return self

    def check_gaps(self, horizon_days: int) -> None:
        """Out-of-time windows must be separated by at least the label horizon, or labels leak.

        Explicit dates only: ``auto`` leaves ``horizon_days + grace_days`` between windows by construction.
        """
        if self.windows != "dates":
            return
        horizon = dt.timedelta(days=horizon_days)
        if self.valid_start - self.train_end < horizon:
            raise ValueError(f"train.valid_start must be at least {horizon.days} days after train.train_end")
        if self.test_start - self.valid_end < horizon:
            raise ValueError(f"train.test_start must be at least {horizon.days} days after train.valid_end")


class BacktestParams(StrictParams):
    """The ``backtest`` section of params.yaml."""

    min_weeks: int = Field(ge=1)  # the replay runs from the first week both models can be fitted; fewer weeks: an error
    alerts_per_owner: int = Field(ge=1)  # each week's list: the top N accounts of each owner
    lookback_days: int = Field(ge=1)  # an alert counts for a churn at most this many days before it


class ScoreParams(StrictParams):
    """The ``score`` section of params.yaml."""

    as_of: dt.date | None  # None: the day after the export date (recorded by ingest)
    rank_by: Literal["renewal", "horizon"]  # the score the list is ranked, tiered and explained by
    top_reasons: int
    tiers: dict[str, float]  # thresholds per tier, on the ranking's probability


EVENT_TABLES = ("emails", "meetings", "tickets", "usage_events", "surveys")


class MaxLagDays(StrictParams):
    """Days an event table's last row may lag the export date: ``default``, or the table's own."""

    default: int = Field(ge=0)
    emails: int | None = Field(default=None, ge=0)  # None (not set): the default applies
    meetings: int | None = Field(default=None, ge=0)
    tickets: int | None = Field(default=None, ge=0)
    usage_events: int | None = Field(default=None, ge=0)
    surveys: int | None = Field(default=None, ge=0)

    def per_table(self) -> dict[str, int]:
        """Every event table's limit."""
        return {name: self.default if days is None else days for name, days in self if name != "default"}


class VolumeParams(StrictParams):
    """The weekly volume check (``features.freshness``)."""

    trailing_weeks: int = Field(ge=1)  # the usual level: the median of this many complete weeks before
    min_ratio: float = Field(gt=0, le=1)  # the last complete week below this share of its expected level: a warning
    min_usual_rows: float = Field(ge=1)  # tables and segments usually below this many rows a week are not judged


class DriftParams(StrictParams):
    """Drift of this week's scored accounts against the model's test window (``models.monitoring``)."""

    bins: int = Field(ge=2)  # quantile bins of the reference
    max_psi: float = Field(gt=0)  # a feature (or the score) past this PSI is named in a warning
    max_missing_change: float = Field(gt=0, le=1)  # ... and one whose share of missing values moved by more
    top: int = Field(ge=1)  # the warning names at most this many features


class MonitorParams(StrictParams):
    """The ``monitor`` section of params.yaml: the guardrails of the weekly run."""

    max_lag_days: MaxLagDays
    allow_stale: list[str]  # tables scored with anyway (`churn score --allow-stale TABLE` adds one for a run)
    volume: VolumeParams
    drift: DriftParams
    max_auc_drop: float = Field(gt=0, lt=1)  # judged lists this far below the test window's ROC AUC: retrain
    judged_weeks: int = Field(ge=1)  # the recommendation pools the most recent judged lists, this many weeks

    @field_validator("allow_stale")
    @classmethod
    def _event_tables(cls, tables: list[str]) -> list[str]:
        unknown = [t for t in tables if t not in EVENT_TABLES]
        if unknown:
            raise ValueError(f"not event table(s): {', '.join(unknown)} (one of {', '.join(EVENT_TABLES)})")
        return tables
