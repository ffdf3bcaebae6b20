"""`train` stage: out-of-time LightGBM and its baselines, an MLflow run, the registry gate, data/models/.

Thin: read settings and the feature table, call ``models``, write the model folder (swapped in
whole, so a failure keeps the old model) and log the run.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features.catalogue import LABEL_COLUMNS, Catalogue
from models import baselines, evaluate, tracking
from models.targets import HORIZON, TARGETS, Target
from models.train import (
    CALIBRATOR_FILE,
    EVALUATION_FILE,
    FEATURES_FILE,
    KEY_COLUMNS,
    LABEL,
    METADATA_FILE,
    MODEL_FILE,
    POSITION,
    PREDICTIONS_FILE,
    fit_model,
    split_out_of_time,
    thin_windows,
)
from models.windows import Windows, resolve_windows, rule
from pipelines.canonical import read_feature_rows, read_feature_table
from pipelines.config import Settings, settings
from pipelines.io import file_sha256, replace_folder, write_json, write_parquet
from pipelines.logs import timed

LOG = logging.getLogger("churn.train")


def flat(prefix: str, values: dict) -> dict:
    """``{"a": {"b": 1}}`` as ``{"prefix.a.b": 1}``: MLflow params are flat; absent values are left out."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flat(f"{prefix}.{key}", value))
        elif value is not None:
            out[f"{prefix}.{key}"] = value
    return out


def read_windows(
    s: Settings, target: Target, stage: str
) -> tuple[Windows, dict[str, pd.DataFrame], dict[str, int], dict]:
    """The target's windows, thinned (``thin_windows``), read from the feature table without loading all of it.

    The windows and the thinning are decided on the keys and labels alone; then only the rows
    they keep are read, every column. Returns the windows, the parts, the strides and the catalogue.
    """
    horizon, grace = s.features.horizon_days, s.features.grace_days
    keys, catalog = read_feature_table(s.paths.features, s.paths.feature_catalog, [*KEY_COLUMNS, *LABEL_COLUMNS])
    windows = resolve_windows(keys, s.train, horizon, grace, target)
    LOG.info("%s: windows (%s): %s", stage, rule(s.train, horizon, grace, target), windows.describe())
    keys[POSITION] = np.arange(len(keys))
    chosen = split_out_of_time(keys, windows, target)
    for name, part in chosen.items():
        LOG.info("%s window: %s rows, churn rate %.1f%%", name, f"{len(part):,}", 100 * part[LABEL].astype(int).mean())
    chosen, strides = thin_windows(chosen, s.train.max_window_rows)
    positions = {name: part[POSITION].to_numpy() for name, part in chosen.items()}
    wanted = np.unique(np.concatenate(list(positions.values())))
    rows = target.view(read_feature_rows(s.paths.features, wanted))
    parts = {
        name: rows.iloc[np.searchsorted(wanted, where)].reset_index(drop=True) for name, where in positions.items()
    }
    return windows, parts, strides, catalog


def main(target_name: str = HORIZON.name) -> None:
    """Train the model of one target (``horizon``: churn within 90 days; ``renewal``: the term goes unrenewed)."""
    s = settings()
    target = TARGETS[target_name]
    folder = s.paths.models if target is HORIZON else s.paths.renewal_model
    registered = s.registered_names()[target.name]
    stage = "train" if target is HORIZON else f"train {target.name}"
    with timed(f"{stage}: split") as t:
        windows, parts, strides, catalog = read_windows(s, target, stage)
        t["rows"] = sum(len(p) for p in parts.values())
    catalogue = Catalogue.from_json(catalog)
    with timed(f"{stage}: lightgbm + calibration", rows_in=len(parts["train"])):
        model = fit_model(parts, catalog, s.train, windows, strides)
    with timed(f"{stage}: baselines"):
        fitted = baselines.fit_baselines(parts, catalogue, s.train.seed)
    test = parts["test"]
    probabilities = {"model": model.predict_proba(test), **fitted.predict_proba(test)}
    flags = [f.description for f in fitted.health.usable_flags(test)]
    evaluation = evaluate.test_evaluation(test, probabilities, catalogue, flags)
    for name, m in evaluation["test"].items():
        LOG.info(
            "test %-8s ROC AUC %.4f  PR AUC %.4f  Brier %.4f  lift@10%% %.2f",
            *(name, m["roc_auc"], m["pr_auc"], m["brier"], m["lift_top10"]),
        )
    predictions = evaluate.test_predictions(test, probabilities, catalogue)

    def fill(folder):
        model.save(folder)
        write_parquet(predictions, folder / PREDICTIONS_FILE)
        write_json(evaluation, folder / EVALUATION_FILE)

    replace_folder(folder, fill)
    model_files = (MODEL_FILE, CALIBRATOR_FILE, FEATURES_FILE, METADATA_FILE)
    fingerprint = "".join(file_sha256(folder / f) for f in model_files)
    run = tracking.TrainingRun(
        tracking_uri=tracking.resolve_tracking_uri(s.paths.mlflow_db),
        experiment=s.train.experiment,
        registered_model=registered,
        params={
            **flat("train", s.train.model_dump(mode="json", exclude_none=True)),
            **flat("windows", windows.as_dict()),
            "features.first_snapshot": catalog.get("snapshots", {}).get("first_snapshot"),
            "features.horizon_days": s.features.horizon_days,
            "features.grace_days": s.features.grace_days,
            "tuning.chosen": model.metadata["tuning"]["chosen"],
            **{f"lightgbm.{k}": model.metadata["lightgbm_params"][k] for k in tracking.CHOSEN_SETTING},
            "best_iteration": model.metadata["best_iteration"],
            "positive_weight": round(model.metadata["positive_weight"], 6),
            "n_features": len(model.features),
        },
        tags={"features_sha256": file_sha256(s.paths.features), "catalog_hash": model.catalog_hash},
        model_fingerprint=tracking.fingerprint(fingerprint),
        test_window=f"{windows.test_start}..{windows.test_end or 'last'}",
    )
    with timed(f"{stage}: mlflow run + registry"):
        logged = tracking.log_training_run(run, model, test, evaluation, folder, evaluate.arr_values(test, catalogue))
    write_json(logged, folder / tracking.RUN_FILE)
