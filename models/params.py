"""The model's parameters (``train`` and ``score`` sections of params.yaml), typed and without defaults.

Light on purpose: ``pipelines.config`` imports this module for every stage, so it pulls in
nothing but pydantic (no LightGBM, no scikit-learn).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from features.params import StrictParams


class TrainParams(StrictParams):
    """The ``train`` section of params.yaml: windows, LightGBM, calibration, registry names."""

    train_end: dt.date
    valid_start: dt.date
    valid_end: dt.date
    test_start: dt.date
    test_end: dt.date | None
    calibration: Literal["isotonic", "sigmoid"]
    seed: int
    num_boost_round: int
    early_stopping_rounds: int
    learning_rate: float
    num_leaves: int
    min_data_in_leaf: int
    feature_fraction: float
    bagging_fraction: float
    bagging_freq: int
    lambda_l2: float
    scale_pos_weight: float | Literal["auto"]
    monotone: bool
    registered_model: str
    experiment: str

    def check_gaps(self, horizon_days: int) -> None:
        """Out-of-time windows must be separated by at least the label horizon, or labels leak."""
        horizon = dt.timedelta(days=horizon_days)
        if self.valid_start - self.train_end < horizon:
            raise ValueError(f"train.valid_start must be at least {horizon.days} days after train.train_end")
        if self.test_start - self.valid_end < horizon:
            raise ValueError(f"train.test_start must be at least {horizon.days} days after train.valid_end")


class ScoreParams(StrictParams):
    """The ``score`` section of params.yaml."""

    as_of: dt.date | None  # None: the day after the export date (recorded by ingest)
    top_reasons: int
    tiers: dict[str, float]  # churn-probability thresholds per tier
