"""A synthetic feature table with known truth: churn risk rises with latency, QBR gap and falling usage."""

import datetime as dt
import os
import shutil
from pathlib import Path

# LightGBM trains on 2 OpenMP threads whose default is to spin while waiting: on a machine whose
# cores are busy with other work a 2-second fit then takes 30 seconds or more. Sleeping waiters
# change nothing in the model (deterministic, same thread count). Set before lightgbm loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
import pytest

from features.catalogue import FeatureSpec, catalogue_hash, catalogue_to_json
from models.params import TrainParams
from models.train import Windows, split_out_of_time, train_model
from pipelines.config import load_settings

SPECS = [
    FeatureSpec(
        "reply_latency_median_hours_90d",
        "responsiveness",
        "responsiveness",
        "Median reply latency",
        "Customer e-mails wait {value} for a reply (median, last 90 days)",
        "hours",
        1,
    ),
    FeatureSpec("qbr_since_last_days", "qbr", "qbr", "Days since last QBR", "Last QBR was {value} ago", "days", 1),
    FeatureSpec(
        "usage_trend_ratio_30d",
        "adoption",
        "adoption",
        "Usage trend",
        "Usage is at {value} of its previous level",
        "ratio",
        -1,
    ),
    FeatureSpec(
        "tenure_first_year_flag", "tenure", "first_year", "First-year account", "First-year account: {value}", "flag", 1
    ),
    FeatureSpec("renewal_days_to_next_days", "tenure", "renewal", "Days to renewal", "Renewal in {value}", "days", -1),
    FeatureSpec("arr_current_currency", "tenure", "commercial", "Current ARR", "ARR is {value}", "currency", 0),
    FeatureSpec("segment", "context", "context", "Segment", "Segment: {value}", "category", 0, dtype="category"),
]


def synthetic_features(accounts: int = 400, seed: int = 0) -> pd.DataFrame:
    """Weekly snapshots 2024-10-07..2026-07-20; each account's risk drifts; labels from a known logit."""
    rng = np.random.default_rng(seed)
    snaps = pd.date_range("2024-10-07", "2026-07-20", freq="7D")
    n = accounts * len(snaps)
    acc = np.repeat([f"A{i:04d}" for i in range(accounts)], len(snaps))
    snap = np.tile(snaps, accounts)
    latency = rng.gamma(2.0, 12.0, n)
    qbr = rng.uniform(0, 200, n)
    trend = rng.normal(1.0, 0.25, n)
    first = rng.random(n) < 0.2
    renewal = rng.uniform(0, 365, n)
    logit = -5.0 + 2.0 * (latency > 48) + 1.5 * (qbr > 90) + 1.5 * (trend < 0.8) + 0.8 * first + 2.5 * (renewal < 90)
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {
            "account_id": pd.array(acc, dtype="string"),
            "snapshot_date": snap,
            "label": pd.array(label, dtype="Int8"),
            "churn_date": pd.NaT,
            "reply_latency_median_hours_90d": latency,
            "qbr_since_last_days": qbr,
            "usage_trend_ratio_30d": trend,
            "tenure_first_year_flag": first.astype(float),
            "renewal_days_to_next_days": renewal,
            "arr_current_currency": rng.lognormal(10, 1, n),
            "segment": pd.Categorical(rng.choice(["SMB", "Mid-Market", "Enterprise"], n)),
        }
    )
    frame.loc[frame["snapshot_date"] > "2026-07-01", "label"] = pd.NA
    return frame


@pytest.fixture(scope="session")
def synthetic():
    return synthetic_features(), catalogue_to_json(SPECS, {})


# ---------------------------------------------------------------- shared: the synthetic table split and one trained model

ROOT = Path(__file__).resolve().parents[2]
WINDOWS = Windows(dt.date(2025, 6, 30), dt.date(2025, 9, 29), dt.date(2025, 12, 29), dt.date(2026, 3, 30))


def truth_probability(frame: pd.DataFrame) -> np.ndarray:
    """The churn probability ``synthetic_features`` draws its labels from (the best any model can do)."""
    logit = (
        -5.0
        + 2.0 * (frame["reply_latency_median_hours_90d"] > 48)
        + 1.5 * (frame["qbr_since_last_days"] > 90)
        + 1.5 * (frame["usage_trend_ratio_30d"] < 0.8)
        + 0.8 * frame["tenure_first_year_flag"]
        + 2.5 * (frame["renewal_days_to_next_days"] < 90)
    )
    return 1 / (1 + np.exp(-logit.to_numpy(dtype=float)))


@pytest.fixture(scope="session")
def train_params():
    """The ``train`` section of the project's params.yaml."""
    return load_settings(ROOT / "params.yaml").train


def with_tuning(params: TrainParams, **changes) -> TrainParams:
    """``params`` with some of ``train.tuning`` changed, e.g. fewer rounds for a quick model."""
    return params.model_copy(update={"tuning": params.tuning.model_copy(update=changes)})


@pytest.fixture(scope="session")
def synthetic_parts(synthetic):
    """The synthetic table split into the train, valid and test windows of ``WINDOWS``."""
    frame, _ = synthetic
    return split_out_of_time(frame, WINDOWS)


@pytest.fixture(scope="session")
def synthetic_model(synthetic, synthetic_parts, train_params):
    """The LightGBM model trained with the project's params on the synthetic table (a few seconds, once)."""
    _, catalog = synthetic
    return train_model(synthetic_parts, catalog, catalogue_hash(catalog), train_params, WINDOWS)


# ---------------------------------------------------------------- shared: an MLflow store with its tables made once


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory):
    """An MLflow SQLite store with its tables created (a few seconds), once per session."""
    from models import tracking

    folder = tmp_path_factory.mktemp("mlflow-template")
    tracking.connect(f"sqlite:///{folder / 'mlflow.db'}")
    return folder / "mlflow.db"


@pytest.fixture
def store(empty_db, tmp_path, monkeypatch) -> str:
    """A fresh, empty store in tmp_path; MLflow's process-wide URIs are put back afterwards."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
    shutil.copy(empty_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri
