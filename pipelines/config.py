"""One typed, frozen view of ``params.yaml``: the only place paths and parameters come from.

Strict on purpose: a misspelt key in params.yaml fails at start-up with the key's name,
instead of silently falling back to a default.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PARAMS_FILE = "params.yaml"  # relative to the working directory, as DVC runs stages from the repo root


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Paths(_Strict):
    demo_export: Path
    ground_truth: Path
    interim: Path
    processed: Path
    models: Path
    reports: Path
    mlflow_db: Path
    playbook: Path

    @property
    def rejected(self) -> Path:
        return self.interim / "rejected"

    @property
    def features(self) -> Path:
        return self.processed / "features.parquet"

    @property
    def feature_catalog(self) -> Path:
        return self.processed / "feature_catalog.json"

    @property
    def ingest_report(self) -> Path:
        return self.reports / "ingest.json"


MEMORY = r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"  # a DuckDB memory_limit


class DataParams(_Strict):
    export_dir: Path
    preset: str = "canonical"
    chunk_rows: int = Field(500_000, ge=1)  # rows per chunk at ingest: bounds memory, whatever the export's size
    workers: int = Field(2, ge=1)  # processes applying the row rules to chunks of large tables
    duckdb_memory_limit: str = Field("2GB", pattern=MEMORY)  # DuckDB's duplicate search spills past it


class DemoParams(_Strict):
    accounts: int = 2000
    seed: int = 7
    start: dt.date
    end: dt.date


class FeatureParams(_Strict):
    frequency_days: int = 7
    first_snapshot: dt.date
    horizon_days: int = 90
    grace_days: int = 30
    business_hours: tuple[int, int] = (9, 18)
    engine: Literal["duckdb", "spark"] = "duckdb"
    batch_rows: int = Field(2_500_000, ge=1)  # event rows per batch of accounts in per-account families
    duckdb_memory_limit: str = Field("6GB", pattern=MEMORY)


class TrainParams(_Strict):
    train_end: dt.date
    valid_start: dt.date
    valid_end: dt.date
    test_start: dt.date
    test_end: dt.date | None = None
    calibration: Literal["isotonic", "sigmoid"] = "sigmoid"
    seed: int = 42
    num_boost_round: int = 2000
    early_stopping_rounds: int = 100
    learning_rate: float = 0.03
    num_leaves: int = 15
    min_data_in_leaf: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    scale_pos_weight: float | Literal["auto"] = "auto"
    monotone: bool = True
    registered_model: str = "churn-lgbm"
    experiment: str = "churn"


class ScoreParams(_Strict):
    as_of: dt.date | None = None
    top_reasons: int = 3
    tiers: dict[str, float]


class Settings(_Strict):
    paths: Paths
    data: DataParams
    demo: DemoParams
    features: FeatureParams
    train: TrainParams
    score: ScoreParams

    @model_validator(mode="after")
    def _gaps_cover_the_horizon(self) -> "Settings":
        """Out-of-time windows must be separated by at least the label horizon, or labels leak."""
        horizon = dt.timedelta(days=self.features.horizon_days)
        t = self.train
        if t.valid_start - t.train_end < horizon:
            raise ValueError(f"train.valid_start must be at least {horizon.days} days after train.train_end")
        if t.test_start - t.valid_end < horizon:
            raise ValueError(f"train.test_start must be at least {horizon.days} days after train.valid_end")
        return self


class ConfigError(Exception):
    """params.yaml is missing or invalid; the message is one line for the user."""


def load_settings(params_file: Path | str | None = None) -> Settings:
    """Read and validate params.yaml (``CHURN_PARAMS`` overrides the location)."""
    path = Path(params_file or os.environ.get("CHURN_PARAMS") or PARAMS_FILE)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: parameters file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The project's settings, loaded once per process."""
    return load_settings()
