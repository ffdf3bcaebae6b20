"""`train` stage: out-of-time LightGBM + baselines, MLflow run, registry gate, data/models/."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.catalogue import catalogue_from_json, catalogue_hash
from features.errors import InputError
from models import baselines, evaluate, explain, tracking
from models.train import (
    LABEL,
    ChurnModel,
    Windows,
    categorical_columns,
    feature_columns,
    split_out_of_time,
    train_model,
)
from pipelines.config import Settings, settings
from pipelines.logs import timed

LOG = logging.getLogger("churn.train")
PREDICTIONS_FILE = "test_predictions.parquet"
EVALUATION_FILE = "evaluation.json"
RUN_FILE = "mlflow_run.json"
MODEL_NAMES = ("model", "logistic", "health")


def load_features(s: Settings) -> tuple[pd.DataFrame, dict]:
    """The feature table and its catalogue, with a clear error when the features stage has not run."""
    path, catalog_path = s.paths.features, s.paths.feature_catalog
    if not path.exists() or not catalog_path.exists():
        raise InputError(f"{path}: feature table not found; run `dvc repro features` first")
    return pd.read_parquet(path), json.loads(catalog_path.read_text())


def file_fingerprint(path: Path) -> str:
    """sha256 of a file, the identity of the data a run was trained on."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def windows_from(s: Settings) -> Windows:
    t = s.train
    return Windows(t.train_end, t.valid_start, t.valid_end, t.test_start, t.test_end)


def fit_baselines(parts: dict[str, pd.DataFrame], catalog: dict, seed: int) -> dict:
    """The logistic-regression pipeline (fit on train) and the health score (mapped on validation)."""
    features = feature_columns(catalog)
    categorical = categorical_columns(catalog)
    numeric = [f for f in features if f not in categorical]
    logistic = baselines.logistic_baseline(numeric, categorical, seed=seed)
    logistic.fit(
        baselines.as_object_categoricals(parts["train"][features], categorical), parts["train"][LABEL].astype(int)
    )
    health = baselines.HealthScore().fit(parts["valid"], parts["valid"][LABEL].astype(int).to_numpy())
    return {"logistic": logistic, "health": health, "categorical": categorical, "features": features}


def predict_all(model: ChurnModel, fitted: dict, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Churn probabilities of the model and both baselines for the same rows."""
    X = baselines.as_object_categoricals(frame[fitted["features"]], fitted["categorical"])
    return {
        "model": model.predict_proba(frame),
        "logistic": fitted["logistic"].predict_proba(X)[:, 1],
        "health": fitted["health"].predict_proba(frame),
    }


def arr_feature(catalog: dict) -> str | None:
    """The catalogue's current-ARR feature (signal commercial, unit currency), for ARR-weighted metrics."""
    return next(
        (f["name"] for f in catalog["features"] if f["signal"] == "commercial" and f["unit"] == "currency"), None
    )


def context_features(catalog: dict) -> list[str]:
    """Context features (region, segment...), for per-group metrics."""
    return [f["name"] for f in catalog["features"] if f["signal"] == "context"]


def test_predictions(test: pd.DataFrame, probabilities: dict[str, np.ndarray], catalog: dict) -> pd.DataFrame:
    """What evaluate needs, without re-training: keys, label, ARR, context, and each model's probability."""
    arr = arr_feature(catalog)
    keep = ["account_id", "snapshot_date", LABEL, "churn_date", *context_features(catalog)]
    out = test[[c for c in keep if c in test]].reset_index(drop=True).copy()
    out["arr"] = test[arr].to_numpy(dtype=float) if arr in test else np.nan
    out[LABEL] = out[LABEL].astype(int)
    for name, p in probabilities.items():
        out[f"p_{name}"] = p
    return out


def arr_values(frame: pd.DataFrame, catalog: dict) -> np.ndarray | None:
    arr = arr_feature(catalog)
    return frame[arr].to_numpy(dtype=float) if arr in frame else None


def score_champion_on_test(
    client, name: str, test: pd.DataFrame, features: list[str], arr: np.ndarray | None
) -> tuple[dict | None, str | None]:
    """The current champion's metrics on *this* test window, so the gate compares like with like."""
    version = tracking.champion_version(client, name)
    if version is None:
        return None, None
    champion = ChurnModel.load(tracking.load_registered_files(f"models:/{name}@{tracking.CHAMPION}"))
    if champion.features != features:
        tags = version.tags or {}
        if "test_roc_auc" in tags and "test_brier" in tags:
            LOG.warning(
                "champion v%s has another feature list; comparing with its logged test figures", version.version
            )
            return {"roc_auc": float(tags["test_roc_auc"]), "brier": float(tags["test_brier"])}, version.version
        return None, version.version
    metrics = evaluate.classification_metrics(test[LABEL].astype(int).to_numpy(), champion.predict_proba(test), arr)
    return metrics, version.version


def write_model_folder(target: Path, model: ChurnModel, predictions: pd.DataFrame, evaluation: dict) -> None:
    """Write data/models/ in a temporary folder and swap it in, so a failure keeps the old model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".models-", dir=target.parent))
    try:
        model.save(staging)
        predictions.to_parquet(staging / PREDICTIONS_FILE, index=False)
        (staging / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=2, sort_keys=True) + "\n")
        backup = target.with_name(f".{target.name}.old")
        shutil.rmtree(backup, ignore_errors=True)
        if target.exists():
            target.rename(backup)
        staging.rename(target)
        shutil.rmtree(backup, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def log_to_mlflow(
    s: Settings, model: ChurnModel, parts: dict, evaluation: dict, features_sha: str, model_dir: Path, catalog: dict
) -> dict:
    """One MLflow run: params, data fingerprint, metrics, the model (registered), and the gate decision."""
    import mlflow
    from mlflow.models import infer_signature

    uri = tracking.resolve_tracking_uri(s.paths.mlflow_db)
    client = tracking.connect(uri)
    experiment_id = tracking.ensure_experiment(client, s.train.experiment, uri)
    name = s.train.registered_model
    champion_metrics, champion_version = score_champion_on_test(
        client, name, parts["test"], model.features, arr_values(parts["test"], catalog)
    )

    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params({f"train.{k}": v for k, v in s.train.model_dump(mode="json").items()})
        mlflow.log_params(
            {
                "features.horizon_days": s.features.horizon_days,
                "features.grace_days": s.features.grace_days,
                "best_iteration": model.metadata["best_iteration"],
                "positive_weight": round(model.metadata["positive_weight"], 6),
                "n_features": len(model.features),
            }
        )
        mlflow.set_tags(
            {
                "git_commit": tracking.git_commit(),
                "features_sha256": features_sha,
                "catalog_hash": model.catalog_hash,
                "test_window": f"{s.train.test_start}..{s.train.test_end or 'last'}",
            }
        )
        for which, metrics in evaluation["test"].items():
            mlflow.log_metrics({f"{which}_{k}": v for k, v in metrics.items() if np.isfinite(v)})
        X_example = model.matrix(parts["test"].head(5))
        signature = infer_signature(X_example, model.booster.predict(X_example, raw_score=True))
        extras = [str(model_dir / f) for f in ("calibrator.json", "features.json", "metadata.json")]
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
        mlflow.log_artifact(str(model_dir / "calibrator.json"), artifact_path="calibrator")
        mlflow.log_artifact(str(model_dir / EVALUATION_FILE), artifact_path="evaluation")
        version = str(info.registered_model_version)
        new = evaluation["test"]["model"]
        decision = tracking.decide_alias(new, champion_metrics)
        client.set_registered_model_alias(name, decision.alias, version)
        for key in ("roc_auc", "brier"):
            client.set_model_version_tag(name, version, f"test_{key}", f"{new[key]:.6f}")
        client.set_model_version_tag(
            name, version, "test_window", f"{s.train.test_start}..{s.train.test_end or 'last'}"
        )
        mlflow.set_tags(
            {
                "gate_decision": decision.alias,
                "gate_reason": decision.reason,
                "champion_version_before": champion_version or "none",
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
            "run_id": run.info.run_id,
            "experiment_id": experiment_id,
            "tracking_uri": uri,
            "registered_model": name,
            "version": version,
            "alias": decision.alias,
            "reason": decision.reason,
        }


def main() -> None:
    s = settings()
    frame, catalog = load_features(s)
    windows = windows_from(s)
    with timed("train: split", rows_in=len(frame)) as t:
        parts = split_out_of_time(frame, windows)
        t["rows"] = sum(len(p) for p in parts.values())
    del frame  # the windows are copies; the whole table need not stay in memory through training
    for name, part in parts.items():
        LOG.info("%s window: %s rows, churn rate %.1f%%", name, f"{len(part):,}", 100 * part[LABEL].astype(int).mean())
    with timed("train: lightgbm + calibration", rows_in=len(parts["train"])):
        model = train_model(parts, catalog, catalogue_hash(catalog), s.train, windows)
    specs = {spec.name: spec for spec in catalogue_from_json(catalog)}
    model.metadata["retained_reference"] = explain.reference_values(parts["train"], specs)
    with timed("train: baselines"):
        fitted = fit_baselines(parts, catalog, s.train.seed)
    probabilities = predict_all(model, fitted, parts["test"])
    y_test = parts["test"][LABEL].astype(int).to_numpy()
    test_metrics = {
        name: evaluate.classification_metrics(y_test, p, arr_values(parts["test"], catalog))
        for name, p in probabilities.items()
    }
    evaluation = {
        "test": test_metrics,
        "improvement": {
            b: evaluate.improvement(test_metrics["model"], test_metrics[b]) for b in ("logistic", "health")
        },
        "health_flags": [f.description for f in baselines.HealthScore().usable_flags(parts["test"])],
    }
    for name, m in test_metrics.items():
        LOG.info(
            "test %-8s ROC AUC %.4f  PR AUC %.4f  Brier %.4f  lift@10%% %.2f",
            name,
            m["roc_auc"],
            m["pr_auc"],
            m["brier"],
            m["lift_top10"],
        )
    model_dir = s.paths.models
    write_model_folder(model_dir, model, test_predictions(parts["test"], probabilities, catalog), evaluation)
    with timed("train: mlflow run + registry"):
        run = log_to_mlflow(s, model, parts, evaluation, file_fingerprint(s.paths.features), model_dir, catalog)
    (model_dir / RUN_FILE).write_text(json.dumps(run, indent=2, sort_keys=True) + "\n")
