"""MLflow tracking and the model registry's champion/challenger gate.

The default store is an embedded SQLite file in the project; ``MLFLOW_TRACKING_URI``
points everything at any tracking server instead. The registered model carries the
calibrator and feature list as extra files, so ``models:/churn-lgbm@champion`` is a
complete, scoreable model on its own.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from features.errors import InputError

LOG = logging.getLogger("churn.tracking")
CHAMPION = "champion"
CHALLENGER = "challenger"


def resolve_tracking_uri(default_db: Path) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the project's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(default_db).resolve()}"


def connect(uri: str):
    """Point MLflow at ``uri`` and fail in one line, naming it, if it cannot be reached."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    # Progress bars would flood the stage logs; pip requirements are pinned explicitly, so
    # MLflow need not inspect the uv project to infer them.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_UV_AUTO_DETECT", "false")
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        client.search_experiments(max_results=1)
    except Exception as exc:  # any transport or store error means the same thing to the user
        reason = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
        raise InputError(f"MLflow tracking server {uri} is unreachable ({reason}); check MLFLOW_TRACKING_URI") from None
    return client


def ensure_experiment(client, name: str, uri: str) -> str:
    """The experiment id; a SQLite store keeps its artifacts in a folder beside the database."""
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


def git_commit() -> str:
    """The commit the run was trained from ('unknown' outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass(frozen=True)
class GateDecision:
    """Which alias the new version got, and the figures the decision was made on."""

    alias: str
    new: dict[str, float]
    champion: dict[str, float] | None
    reason: str


def decide_alias(new: dict[str, float], champion: dict[str, float] | None) -> GateDecision:
    """Champion only if ROC AUC and Brier are no worse than the current champion's on the same window."""
    if champion is None:
        return GateDecision(CHAMPION, new, None, "no champion yet")
    auc_ok = new["roc_auc"] >= champion["roc_auc"] - 1e-12
    brier_ok = new["brier"] <= champion["brier"] + 1e-12
    if auc_ok and brier_ok:
        return GateDecision(CHAMPION, new, champion, "ROC AUC and Brier no worse than the champion's")
    worse = [name for name, ok in (("ROC AUC", auc_ok), ("Brier", brier_ok)) if not ok]
    return GateDecision(CHALLENGER, new, champion, f"{' and '.join(worse)} worse than the champion's")


def champion_version(client, name: str):
    """The registered version holding the champion alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def version_label(client, model_uri: str) -> str:
    """``name/version`` for a registry URI (aliases resolved), so the CSV says which model scored it."""
    ref = model_uri.removeprefix("models:/")
    if not model_uri.startswith("models:/") or "@" not in ref:
        return ref
    name, alias = ref.split("@", 1)
    try:
        return f"{name}/{client.get_model_version_by_alias(name, alias).version}"
    except Exception:  # an alias that vanished between download and lookup: keep the URI
        return ref


def download_model(model_uri: str, dest: Path | None = None) -> Path:
    """Download a registered/logged model folder (``models:/name@alias`` or ``runs:/...``)."""
    import mlflow

    dest = Path(dest or tempfile.mkdtemp(prefix="churn-model-"))
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dest))
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
        raise InputError(f"model {model_uri}: cannot be loaded from the registry ({reason})") from None
    return Path(local)


def load_registered_files(model_uri: str) -> Path:
    """Download a logged model and lay its files out as ``ChurnModel.load`` expects them.

    The lightgbm flavour stores the booster as ``model.lgb`` (LightGBM text format) and our
    calibrator, feature list and metadata under ``extra_files/``.
    """
    downloaded = download_model(model_uri)
    booster = downloaded / "model.lgb"
    extras = downloaded / "extra_files"
    if not booster.exists() or not (extras / "features.json").exists():
        raise InputError(f"model {model_uri}: not a churn model logged by `churn train` (no model.lgb / extra_files)")
    (extras / "model.txt").write_bytes(booster.read_bytes())
    return extras
