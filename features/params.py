"""Typed, frozen parameters: each consumer declares its own, ``pipelines.config.Settings`` combines them.

No field that changes a result has a default here: ``params.yaml`` is the one place a value
is set, and a key missing from it is an error naming the key, never a silent second default.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NO_DEFAULT = "missing; every setting that changes results is set here, the code has no default"


class StrictParams(BaseModel):
    """Unknown keys are errors (a typo fails) and values cannot be changed after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class UsageParams(StrictParams):
    """The learned usage family: how much of the export's event vocabulary gets its own metrics."""

    max_event_types: int = Field(ge=1)  # the types with most events; the rest pooled as "other events"


class FeatureParams(StrictParams):
    """What the snapshot grid, the labels and the feature families need."""

    frequency_days: int
    # a date, or ``auto``: the first Monday with the longest look-back of history before it
    first_snapshot: dt.date | Literal["auto"]
    horizon_days: int
    grace_days: int
    business_hours: tuple[int, int]
    engine: Literal["duckdb", "spark"]
    usage: UsageParams

    @field_validator("first_snapshot", mode="before")
    @classmethod
    def _date_or_auto(cls, value: object) -> object:
        if isinstance(value, str) and value != "auto":
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"a date (YYYY-MM-DD) or auto, got {value!r}") from None
        return value

    @field_validator("business_hours")
    @classmethod
    def _open_before_close(cls, hours: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= hours[0] < hours[1] <= 24:
            raise ValueError(f"business_hours must be [open, close] with 0 <= open < close <= 24, got {list(hours)}")
        return hours
