"""Typed, frozen parameters: each consumer declares its own, ``pipelines.config.Settings`` combines them.

No field that changes a result has a default here: ``params.yaml`` is the one place a value
is set, and a key missing from it is an error naming the key, never a silent second default.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator


class StrictParams(BaseModel):
    """Unknown keys are errors (a typo fails) and values cannot be changed after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureParams(StrictParams):
    """What the snapshot grid, the labels and the feature families need."""

    frequency_days: int
    first_snapshot: dt.date
    horizon_days: int
    grace_days: int
    business_hours: tuple[int, int]
    engine: Literal["duckdb", "spark"]

    @field_validator("business_hours")
    @classmethod
    def _open_before_close(cls, hours: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= hours[0] < hours[1] <= 24:
            raise ValueError(f"business_hours must be [open, close] with 0 <= open < close <= 24, got {list(hours)}")
        return hours
