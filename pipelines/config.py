"""One typed, frozen view of ``params.yaml``: the only place paths and parameters come from.

Strict on purpose: a misspelt key in params.yaml fails at start-up with the key's name,
instead of silently falling back to a default.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from features.params import NO_DEFAULT, FeatureParams, StrictParams
from models.params import BacktestParams, MonitorParams, ScoreParams, TrainParams

PARAMS_FILE = "params.yaml"  # relative to the working directory, as DVC runs stages from the repo root
AUTO_SOURCE = "auto"
DEMO_SOURCE = "demo"
SOURCE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # a registered model name's suffix: no '/' or '@' (models:/name@alias)


class Paths(StrictParams):
    demo_export: Path
    ground_truth: Path
    interim: Path
    processed: Path
    models: Path
    renewal_model: Path
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

    @property
    def ingest_totals(self) -> Path:
        """The ingest report's totals alone: the numbers DVC compares between experiments."""
        return self.reports / "ingest_totals.json"

    @property
    def metrics(self) -> Path:
        return self.reports / "metrics.json"

    @property
    def history(self) -> Path:
        """Each weekly run's list, kept by date: no stage's output, so no run deletes it."""
        return self.reports / "history"

    @property
    def input_checks(self) -> Path:
        return self.reports / "input_checks.json"

    @property
    def monitoring(self) -> Path:
        return self.reports / "monitoring.json"

    @property
    def monitoring_summary(self) -> Path:
        return self.reports / "monitoring_summary.json"


MEMORY = r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"  # a DuckDB memory_limit


class RejectionShares(StrictParams):
    """The largest share of a table's rows ingest may reject before it stops: ``default``, or the table's own."""

    default: float = Field(ge=0, le=1)
    accounts: float | None = Field(default=None, ge=0, le=1)  # None (not set): the default applies
    contracts: float | None = Field(default=None, ge=0, le=1)
    emails: float | None = Field(default=None, ge=0, le=1)
    meetings: float | None = Field(default=None, ge=0, le=1)
    tickets: float | None = Field(default=None, ge=0, le=1)
    usage_events: float | None = Field(default=None, ge=0, le=1)
    surveys: float | None = Field(default=None, ge=0, le=1)

    def per_table(self) -> dict[str, float]:
        """Every canonical table's limit."""
        return {name: self.default if share is None else share for name, share in self if name != "default"}


class DataParams(StrictParams):
    """Which export ingest reads, how its columns map to the canonical tables, where it ends, what it may lose."""

    export_dir: Path
    source: str = Field(pattern=SOURCE_NAME)  # auto, or the fixed name of the export's registry lineage
    preset: str
    export_date: dt.date | None  # None: inferred from the bulk of the event tables
    max_rejected_share: RejectionShares


class DemoParams(StrictParams):
    """The simulated demo book."""

    accounts: int
    seed: int
    start: dt.date
    end: dt.date


class IngestRuntime(StrictParams):
    chunk_rows: int = Field(ge=1)  # rows per chunk at ingest: bounds memory, whatever the export's size
    workers: int = Field(ge=1)  # processes applying the row rules to chunks of large tables
    duckdb_memory_limit: str = Field(pattern=MEMORY)  # DuckDB's duplicate search spills past it


class FeaturesRuntime(StrictParams):
    batch_rows: int = Field(ge=1)  # event rows per batch of accounts in per-account families
    duckdb_memory_limit: str = Field(pattern=MEMORY)
    spark_source: str | None = None  # the canonical folder as Spark's executors see it (s3a://..., dbfs:/...)


class RuntimeParams(StrictParams):
    """How the work is done, never what it produces: no stage lists this section in dvc.yaml,
    so tuning memory, chunks or workers reruns nothing."""

    ingest: IngestRuntime
    features: FeaturesRuntime


class Settings(StrictParams):
    """params.yaml as one object; each section's type belongs to the code that consumes it."""

    paths: Paths
    data: DataParams
    demo: DemoParams
    features: FeatureParams
    train: TrainParams
    score: ScoreParams
    backtest: BacktestParams
    monitor: MonitorParams
    runtime: RuntimeParams

    @model_validator(mode="after")
    def _gaps_cover_the_horizon(self) -> Settings:
        """Out-of-time windows must be separated by at least the label horizon, or labels leak."""
        self.train.check_gaps(self.features.horizon_days)
        return self

    @property
    def source(self) -> str:
        """The data source's name: ``data.source``, or with ``auto`` ``demo`` / a slug of the export folder's name."""
        if self.data.source != AUTO_SOURCE:
            return self.data.source
        if os.path.abspath(self.data.export_dir) == os.path.abspath(self.paths.demo_export):
            return DEMO_SOURCE
        slug = re.sub(r"[^a-z0-9]+", "-", Path(os.path.abspath(self.data.export_dir)).name.lower()).strip("-")
        return slug or "export"

    def registered_names(self) -> dict[str, str]:
        """The registered model name of each target (``horizon``, ``renewal``): ``<train name>-<source>``.

        The one place these names are made. The registry gate compares a new model only with the
        champion of its own name, so models of different data (the demo, a customer's export) must
        never share a name: the first real export's model would be gated against the demo's
        champion, on another book, and the weekly list scored by whichever won. One name per data
        source gives each its own versions and its own champion; switching ``data.export_dir``
        to another source starts its own lineage.
        """
        return {
            "horizon": f"{self.train.registered_model}-{self.source}",
            "renewal": f"{self.train.renewal_registered_model}-{self.source}",
        }


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
        raise ConfigError(f"{path}: {first_problem(exc)}") from None


def first_problem(exc: ValidationError) -> str:
    """One line for the most telling error: a misspelt key before the key it was meant to be."""
    order = {"extra_forbidden": 0, "missing": 1}
    error = min(exc.errors(), key=lambda e: order.get(e["type"], 2))
    where = ".".join(str(p) for p in error["loc"])
    if error["type"] == "missing":
        return f"{where}: {NO_DEFAULT}"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key (misspelt?)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if not where or message.startswith((f"{where}.", f"{where}:")):
        return message  # a check that names its own keys (e.g. train.valid_start)
    return f"{where}: {message}"


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The project's settings, loaded once per process."""
    return load_settings()
