"""`evaluate` stage: metrics.json (model and baselines side by side), DVC plot data and PNG figures.

Thin: read the test predictions and evaluation that `train` wrote, call ``models.evaluate`` and
``models.figures``, write through ``pipelines.io`` and attach the files to the training run.
"""

from __future__ import annotations

import json
import logging

import pandas as pd

from features.catalogue import Catalogue
from features.errors import InputError
from models import evaluate, figures, tracking
from models.train import EVALUATION_FILE, PREDICTIONS_FILE, ChurnModel
from pipelines.config import settings
from pipelines.io import write_csv, write_figure, write_json

LOG = logging.getLogger("churn.evaluate")


def main() -> None:
    s = settings()
    model_dir = s.paths.models
    if not (model_dir / PREDICTIONS_FILE).exists():
        raise InputError(f"{model_dir}: no {PREDICTIONS_FILE}; run `dvc repro train` first")
    pred = pd.read_parquet(model_dir / PREDICTIONS_FILE)
    evaluation = json.loads((model_dir / EVALUATION_FILE).read_text())
    model = ChurnModel.load(model_dir)
    plots = s.paths.reports / "plots"
    curves = evaluate.curve_frames(pred)
    catalogue = Catalogue.from_json(json.loads(s.paths.feature_catalog.read_text())).only(model.features)
    importance = evaluate.importance_frame(model.booster, catalogue)
    by_reason = evaluate.importance_by_reason(importance)
    for name, frame in {**curves, "importance": importance, "importance_by_reason": by_reason}.items():
        write_csv(frame.round(6), plots / f"{name}.csv")
    pictures = [
        write_figure(fig, plots / "png" / f"{name}.png", **figures.CURVE_SAVE)
        for name, fig in figures.evaluation_figures(curves, by_reason).items()
    ]
    doc = evaluate.metrics_document(evaluation, pred)
    renewal_dir = s.paths.renewal_model
    if (renewal_dir / EVALUATION_FILE).exists():
        doc["renewal"] = evaluate.summary_document(json.loads((renewal_dir / EVALUATION_FILE).read_text()))
        beyond = doc["renewal"]["roc_auc_beyond"]
        LOG.info(
            "renewal model: test ROC AUC %.4f; beyond 90 days %s, beyond 180 days %s (renewal calendar %s, %s)",
            doc["renewal"]["model"]["roc_auc"],
            *(beyond.get(d, {}).get("model") for d in ("90d", "180d")),
            *(beyond.get(d, {}).get("calendar") for d in ("90d", "180d")),
        )
    else:
        LOG.info(
            "no renewal model in %s (run `dvc repro train_renewal`): metrics.json has the 90-day model only",
            renewal_dir,
        )
    metrics_file = s.paths.reports / "metrics.json"
    write_json(doc, metrics_file)
    for name in evaluate.BASELINES:
        gain = doc["model_vs"][name]
        LOG.info(
            "model vs %s: ROC AUC +%.3f, Brier -%.1f%%, lift@10%% +%.2f",
            *(name, gain["roc_auc_gain"], gain["brier_reduction_pct"], gain["lift_top10_gain"]),
        )
    run_file = model_dir / tracking.RUN_FILE
    if run_file.exists():  # a model folder made outside `train` has no run to attach to
        tracking.log_artifacts_to_run(json.loads(run_file.read_text()), [metrics_file, *pictures])
