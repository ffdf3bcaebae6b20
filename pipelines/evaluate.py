"""`evaluate` stage: metrics.json (model and baselines side by side), DVC plot data and PNG figures."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from features.errors import InputError
from models import evaluate
from models.train import ChurnModel
from pipelines.config import settings
from pipelines.io import write_atomic, write_json
from pipelines.train import EVALUATION_FILE, MODEL_NAMES, PREDICTIONS_FILE, RUN_FILE

LOG = logging.getLogger("churn.evaluate")


def curve_frames(pred: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """ROC, PR, reliability and lift points for the model and both baselines, long format."""
    y = pred["label"].to_numpy()
    frames: dict[str, list[pd.DataFrame]] = {"roc": [], "pr": [], "calibration": [], "lift": []}
    for name in MODEL_NAMES:
        p = pred[f"p_{name}"].to_numpy()
        frames["roc"].append(evaluate.roc_points(y, p, name))
        frames["pr"].append(evaluate.pr_points(y, p, name))
        table = evaluate.reliability_table(y, p).dropna(subset=["mean_predicted"])
        table.insert(0, "model", name)
        frames["calibration"].append(table)
        frames["lift"].append(evaluate.lift_points(y, p, name))
    return {k: pd.concat(v, ignore_index=True) for k, v in frames.items()}


def importance_frame(model: ChurnModel) -> pd.DataFrame:
    """Gain importance per feature, largest first."""
    gains = model.booster.feature_importance(importance_type="gain")
    frame = pd.DataFrame({"feature": model.booster.feature_name(), "importance": gains})
    return frame.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def draw_figures(curves: dict[str, pd.DataFrame], importance: pd.DataFrame, folder: Path) -> list[Path]:
    """One titled, labelled PNG per curve."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = {
        "roc": ("fpr", "tpr", "ROC curve (test window)", "False positive rate", "True positive rate"),
        "pr": ("recall", "precision", "Precision-recall (test window)", "Recall", "Precision"),
        "calibration": (
            "mean_predicted",
            "observed_rate",
            "Reliability (test window)",
            "Mean predicted probability",
            "Observed churn rate",
        ),
        "lift": (
            "share_of_accounts",
            "share_of_churners",
            "Cumulative gains (test window)",
            "Share of account-snapshots called",
            "Share of churners found",
        ),
    }
    paths = []
    for name, (x, y, title, xlabel, ylabel) in specs.items():
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        for model_name, part in curves[name].groupby("model", sort=False):
            ax.plot(part[x], part[y], marker="o" if name == "calibration" else None, label=model_name)
        if name in ("roc", "calibration", "lift"):
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.legend()
        fig.tight_layout()
        paths.append(_save_png(fig, folder / f"{name}.png"))
    top = importance.head(20).iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    ax.barh(top["feature"], top["importance"])
    ax.set(title="Feature importance (gain)", xlabel="Total gain", ylabel="")
    fig.tight_layout()
    paths.append(_save_png(fig, folder / "importance.png"))
    return paths


def _save_png(fig, path: Path) -> Path:
    # Fixed metadata keeps the PNG bytes identical from one run to the next.
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
    plt.close(fig)
    return path


def metrics_document(evaluation: dict, pred: pd.DataFrame) -> dict:
    """metrics.json: model and baselines side by side, improvements, reliability and per-segment AUC."""
    doc = {name: {k: round(v, 6) for k, v in evaluation["test"][name].items()} for name in MODEL_NAMES}
    doc["model_vs"] = {b: {k: round(v, 6) for k, v in d.items()} for b, d in evaluation["improvement"].items()}
    y, p = pred["label"].to_numpy(), pred["p_model"].to_numpy()
    doc["reliability"] = evaluate.reliability_table(y, p).round(6).to_dict(orient="records")
    context = [
        c
        for c in pred.columns
        if c not in ("account_id", "snapshot_date", "label", "churn_date", "arr") and not c.startswith("p_")
    ]
    for group in context:
        doc[f"by_{group}"] = evaluate.metrics_by_group(pred, group).round(6).to_dict(orient="records")
    return doc


def log_figures_to_run(run_file: Path, files: list[Path]) -> None:
    """Attach the report and figures to the training run recorded by `train` (skipped when there is none)."""
    if not run_file.exists():
        return

    from models import tracking

    run = json.loads(run_file.read_text())
    client = tracking.connect(run["tracking_uri"])
    for path in files:
        client.log_artifact(run["run_id"], str(path), artifact_path="evaluation")


def main() -> None:
    s = settings()
    model_dir = s.paths.models
    if not (model_dir / PREDICTIONS_FILE).exists():
        raise InputError(f"{model_dir}: no {PREDICTIONS_FILE}; run `dvc repro train` first")
    pred = pd.read_parquet(model_dir / PREDICTIONS_FILE)
    evaluation = json.loads((model_dir / EVALUATION_FILE).read_text())
    model = ChurnModel.load(model_dir)
    reports = s.paths.reports
    plots = reports / "plots"
    curves = curve_frames(pred)
    importance = importance_frame(model)
    for name, frame in {**curves, "importance": importance}.items():
        write_atomic(plots / f"{name}.csv", lambda tmp, f=frame: f.round(6).to_csv(tmp, index=False))
    figures = draw_figures(curves, importance, plots / "png")
    doc = metrics_document(evaluation, pred)
    write_json(doc, reports / "metrics.json")
    for name in ("logistic", "health"):
        gain = doc["model_vs"][name]
        LOG.info(
            "model vs %s: ROC AUC +%.3f, Brier -%.1f%%, lift@10%% +%.2f",
            name,
            gain["roc_auc_gain"],
            gain["brier_reduction_pct"],
            gain["lift_top10_gain"],
        )
    log_figures_to_run(model_dir / RUN_FILE, [reports / "metrics.json", *figures])
