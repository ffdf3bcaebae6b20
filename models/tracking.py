"""MLflow tracking and the model registry's champion/challenger gate.

The default store is an embedded SQLite file in the project; ``MLFLOW_TRACKING_URI``
points everything at any tracking server instead. The registered model carries the
calibrator and feature list as extra files, so ``models:/churn-lgbm-demo@champion`` is a
complete, scoreable model on its own.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from features.errors import InputError
from models.params import REFIT

LOG = logging.getLogger("churn.tracking")
CHAMPION = "champion"
CHALLENGER = "challenger"
RUN_FILE = "mlflow_run.json"  # in the model folder: which run and registered version the files are
MODEL_SHA_TAG = "model_sha256"  # on each registered version: the fingerprint of its model files
GATE_TAG, GATE_REASON_TAG = "gate_decision", "gate_reason"  # what the gate said when the version was registered


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


def existing_registry(uri: str):
    """A client of the store at ``uri``, or None when it is a SQLite file that does not exist.

    No store means no registry, so no gate to honour: the caller scores with the model folder.
    Connecting would create an empty database instead.
    """
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None
    return connect(uri)


def read_run_file(folder: Path) -> dict | None:
    """What ``churn train`` recorded about a model folder (run, registered name, version, alias), or None."""
    import json

    path = Path(folder) / RUN_FILE
    if not path.exists():
        return None
    try:
        run = json.loads(path.read_text())
    except (OSError, ValueError):
        run = None
    if not isinstance(run, dict) or not {"registered_model", "version"} <= set(run):
        raise InputError(f"{path}: not a run file written by `churn train`; retrain (`dvc repro train`) or delete it")
    return run


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


def version_with_fingerprint(client, name: str, fingerprint: str):
    """The registered version whose model files have this fingerprint, or None.

    A forced rerun that trains the very same model must not register it again: the
    registry would gain a version per rerun and the weekly list's ``model_version`` would
    change although nothing did.
    """
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return None
    same = [v for v in versions if (v.tags or {}).get(MODEL_SHA_TAG) == fingerprint]
    if not same:
        return None
    # search results may leave out aliases; the version itself carries them
    return client.get_model_version(name, min(same, key=lambda v: int(v.version)).version)


def score_champion_on_test(client, name: str, test, features: list[str], arr) -> tuple[dict | None, str | None]:
    """The current champion's metrics on *this* test window, so the gate compares like with like."""
    from models.evaluate import classification_metrics
    from models.train import LABEL, ChurnModel

    version = champion_version(client, name)
    if version is None:
        return None, None
    champion = ChurnModel.load(load_registered_files(f"models:/{name}@{CHAMPION}"))
    if champion.features != features:
        tags = version.tags or {}
        if "test_roc_auc" in tags and "test_brier" in tags:
            LOG.warning(
                "champion v%s has another feature list; comparing with its logged test figures", version.version
            )
            return {"roc_auc": float(tags["test_roc_auc"]), "brier": float(tags["test_brier"])}, version.version
        return None, version.version
    metrics = classification_metrics(test[LABEL].astype(int).to_numpy(), champion.predict_proba(test), arr)
    return metrics, version.version


CHOSEN_SETTING = ("num_leaves", "min_data_in_leaf", "lambda_l2", "learning_rate", "feature_fraction")
SEARCH_FILE = "tuning/search.json"  # the run's artifact: every candidate of the search, with wall times


def search_metrics(tuning: dict, fit_seconds: dict[str, float]) -> dict[str, float]:
    """The search of ``metadata.json`` (``tuning``) as flat MLflow metrics: ``search.<candidate>.<figure>``."""
    out = {}
    rows = [(c["name"], c) for c in tuning["candidates"]]
    if tuning.get("refit"):
        rows.append((REFIT, tuning["refit"]))
    for name, row in rows:
        for key in ("valid_roc_auc", "valid_log_loss", "best_iteration"):
            out[f"search.{name}.{key}"] = float(row[key])
        if name in fit_seconds:
            out[f"search.{name}.fit_seconds"] = round(float(fit_seconds[name]), 3)
    return out


@dataclass(frozen=True)
class TrainingRun:
    """What one training run logs: where, under which names, and with which parameters and data."""

    tracking_uri: str
    experiment: str
    registered_model: str
    params: dict
    tags: dict
    model_fingerprint: str
    test_window: str


def log_training_run(run: TrainingRun, model, test, evaluation: dict, model_dir: Path, arr) -> dict:
    """One MLflow run: params, data fingerprint, metrics, the search, the model (registered), and the gate decision.

    When the registry already holds a version with the same model files (a forced rerun on the
    same data and parameters), nothing new is logged or registered: the existing run and version
    are returned, so the model folder and the weekly list stay byte-identical.
    """
    import lightgbm as lgb
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    from models.train import CALIBRATOR_FILE, EVALUATION_FILE, FEATURES_FILE, METADATA_FILE

    client = connect(run.tracking_uri)
    name = run.registered_model
    existing = version_with_fingerprint(client, name, run.model_fingerprint)
    if existing is not None:
        aliases = ", ".join(existing.aliases) or "no alias"
        LOG.info("model identical to %s v%s (%s): nothing new registered", name, existing.version, aliases)
        tags = existing.tags or {}
        return {
            "run_id": existing.run_id,
            "experiment_id": client.get_run(existing.run_id).info.experiment_id,
            "tracking_uri": run.tracking_uri,
            "registered_model": name,
            "version": str(existing.version),
            "alias": next((a for a in (CHAMPION, CHALLENGER) if a in existing.aliases), tags.get(GATE_TAG, CHALLENGER)),
            "reason": tags.get(GATE_REASON_TAG, "identical to an already registered version"),
        }

    experiment_id = ensure_experiment(client, run.experiment, run.tracking_uri)
    champion_metrics, champion_before = score_champion_on_test(client, name, test, model.features, arr)
    with mlflow.start_run(experiment_id=experiment_id) as active:
        mlflow.log_params(run.params)
        mlflow.set_tags({**run.tags, "git_commit": git_commit(), "test_window": run.test_window})
        for which, metrics in evaluation["test"].items():
            mlflow.log_metrics({f"{which}_{k}": v for k, v in metrics.items() if np.isfinite(v)})
        tuning = model.metadata.get("tuning")
        if tuning:  # every candidate's validation figures, as metrics and as one JSON table
            mlflow.log_metrics(search_metrics(tuning, model.fit_seconds))
            seconds = {name: round(value, 3) for name, value in model.fit_seconds.items()}
            mlflow.log_dict({**tuning, "fit_seconds": seconds}, SEARCH_FILE)
        for days, by_model in evaluation.get("roc_auc_beyond", {}).items():
            mlflow.log_metrics(
                {
                    f"{m}_roc_auc_beyond_{days}": v
                    for m, v in by_model.items()
                    if m in evaluation["test"] and v is not None
                }
            )
        X_example = model.matrix(test.head(5))
        signature = infer_signature(X_example, model.booster.predict(X_example, raw_score=True))
        extras = [str(model_dir / f) for f in (CALIBRATOR_FILE, FEATURES_FILE, METADATA_FILE)]
        # The input example documents the expected frame; serving validation is skipped because
        # JSON cannot carry pandas categoricals (region, segment): score through `churn score`.
        info = mlflow.lightgbm.log_model(
            model.booster,
            name="model",
            signature=signature,
            input_example=X_example,
            validate_serving_input=False,
            pip_requirements=[f"lightgbm=={lgb.__version__}", f"pandas=={pd.__version__}", f"numpy=={np.__version__}"],
            extra_files=extras,
            registered_model_name=name,
        )
        mlflow.log_artifact(str(model_dir / CALIBRATOR_FILE), artifact_path="calibrator")
        mlflow.log_artifact(str(model_dir / EVALUATION_FILE), artifact_path="evaluation")
        version = str(info.registered_model_version)
        new = evaluation["test"]["model"]
        decision = decide_alias(new, champion_metrics)
        client.set_registered_model_alias(name, decision.alias, version)
        for key in ("roc_auc", "brier"):
            client.set_model_version_tag(name, version, f"test_{key}", f"{new[key]:.6f}")
        client.set_model_version_tag(name, version, "test_window", run.test_window)
        client.set_model_version_tag(name, version, MODEL_SHA_TAG, run.model_fingerprint)
        client.set_model_version_tag(name, version, GATE_TAG, decision.alias)
        client.set_model_version_tag(name, version, GATE_REASON_TAG, decision.reason)
        mlflow.set_tags(
            {
                "gate_decision": decision.alias,
                "gate_reason": decision.reason,
                "champion_version_before": champion_before or "none",
            }
        )
        if champion_metrics:
            mlflow.log_metrics(
                {"champion_roc_auc": champion_metrics["roc_auc"], "champion_brier": champion_metrics["brier"]}
            )
        LOG.info(
            "registered %s v%s as %s (%s): ROC AUC %.4f, Brier %.4f%s",
            name,
            version,
            decision.alias,
            decision.reason,
            new["roc_auc"],
            new["brier"],
            f"; champion ROC AUC {champion_metrics['roc_auc']:.4f}, Brier {champion_metrics['brier']:.4f}"
            if champion_metrics
            else "",
        )
        return {
            "run_id": active.info.run_id,
            "experiment_id": experiment_id,
            "tracking_uri": run.tracking_uri,
            "registered_model": name,
            "version": version,
            "alias": decision.alias,
            "reason": decision.reason,
        }


def log_artifacts_to_run(run: dict, files: list[Path]) -> None:
    """Attach report files and figures to a training run recorded in the model folder's run file."""
    client = connect(run["tracking_uri"])
    for path in files:
        client.log_artifact(run["run_id"], str(path), artifact_path="evaluation")


def log_metrics_to_run(run: dict, metrics: dict[str, float]) -> None:
    """Add metrics (e.g. the backtest's) to a training run recorded in the model folder's run file."""
    client = connect(run["tracking_uri"])
    for key, value in metrics.items():
        client.log_metric(run["run_id"], key, float(value))


def fingerprint(text: str) -> str:
    """A short, stable digest of a text (e.g. the model files' sha256s one after another)."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def log_monitoring_run(
    uri: str, experiment: str, as_of: str, params: dict[str, str], metrics: dict[str, float], files: list[Path]
) -> str:
    """One MLflow run per weekly check (``monitor <as_of>``): what the list was scored with and how far it drifted."""
    client = connect(uri)
    run = client.create_run(
        ensure_experiment(client, experiment, uri), run_name=f"monitor {as_of}", tags={"kind": "monitor"}
    )
    run_id = run.info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for key, value in metrics.items():
        if math.isfinite(value):
            client.log_metric(run_id, key, float(value))
    for path in files:
        client.log_artifact(run_id, str(path), artifact_path="monitoring")
    client.set_terminated(run_id)
    return run_id
