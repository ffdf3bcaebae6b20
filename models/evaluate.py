"""Metrics a CS team can act on: ranking, calibration, lift and ARR captured.

All functions are pure: labels, probabilities (and ARR) in, numbers or small frames out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from features.catalogue import LABEL_COLUMNS, Catalogue


def top_share_mask(probability: np.ndarray, share: float) -> np.ndarray:
    """The top ``share`` of rows by probability (ties broken by position, deterministically)."""
    n = max(1, int(round(share * len(probability))))
    order = np.argsort(-probability, kind="stable")
    mask = np.zeros(len(probability), dtype=bool)
    mask[order[:n]] = True
    return mask


def classification_metrics(y: np.ndarray, p: np.ndarray, arr: np.ndarray | None = None) -> dict[str, float]:
    """ROC AUC, PR AUC, Brier, log loss, lift and recall at 10%/20%, churned ARR captured at 10%."""
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    base_rate = y.mean()
    out = {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "base_rate": float(base_rate),
        "rows": int(len(y)),
        "positives": int(y.sum()),
    }
    for share in (0.1, 0.2):
        top = top_share_mask(p, share)
        pct = int(share * 100)
        out[f"lift_top{pct}"] = float(y[top].mean() / base_rate) if base_rate > 0 else float("nan")
        out[f"recall_top{pct}"] = float(y[top].sum() / max(y.sum(), 1))
    if arr is not None:
        churned_arr = np.where(y == 1, np.nan_to_num(np.asarray(arr, dtype=float)), 0.0)
        top = top_share_mask(p, 0.1)
        out["churned_arr_captured_top10"] = (
            float(churned_arr[top].sum() / churned_arr.sum()) if churned_arr.sum() > 0 else float("nan")
        )
    return out


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Observed churn rate against mean predicted probability in equal-width bins."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    frame = pd.DataFrame({"bin": which, "y": y, "p": p})
    grouped = frame.groupby("bin").agg(rows=("y", "size"), observed_rate=("y", "mean"), mean_predicted=("p", "mean"))
    grouped = grouped.reindex(range(bins))
    grouped.insert(0, "bin_upper", edges[1:])
    grouped.insert(0, "bin_lower", edges[:-1])
    grouped["rows"] = grouped["rows"].fillna(0).astype(int)
    return grouped.reset_index(drop=True)


def roc_points(y: np.ndarray, p: np.ndarray, model: str) -> pd.DataFrame:
    fpr, tpr, _ = roc_curve(y, p)
    return _thin(pd.DataFrame({"model": model, "fpr": fpr, "tpr": tpr}))


def pr_points(y: np.ndarray, p: np.ndarray, model: str) -> pd.DataFrame:
    precision, recall, _ = precision_recall_curve(y, p)
    return _thin(pd.DataFrame({"model": model, "recall": recall, "precision": precision}))


def lift_points(y: np.ndarray, p: np.ndarray, model: str, steps: int = 50) -> pd.DataFrame:
    """Cumulative gains: share of churners found when calling the top x% of accounts."""
    order = np.argsort(-p, kind="stable")
    found = np.cumsum(np.asarray(y)[order]) / max(np.sum(y), 1)
    shares = np.linspace(1 / steps, 1, steps)
    idx = np.clip((shares * len(p)).astype(int) - 1, 0, len(p) - 1)
    return pd.DataFrame({"model": model, "share_of_accounts": shares, "share_of_churners": found[idx]})


def _thin(frame: pd.DataFrame, max_points: int = 200) -> pd.DataFrame:
    """Keep plot files small: at most ``max_points`` evenly spaced points, ends included."""
    if len(frame) <= max_points:
        return frame.reset_index(drop=True)
    idx = np.unique(np.linspace(0, len(frame) - 1, max_points).astype(int))
    return frame.iloc[idx].reset_index(drop=True)


def metrics_by_group(frame: pd.DataFrame, group: str, y: str = "label", p: str = "p_model") -> pd.DataFrame:
    """ROC AUC and churn rate per segment/region, where both outcomes occur."""
    rows = []
    for value, part in frame.groupby(group, observed=True, dropna=False):
        labels = part[y].astype(int).to_numpy()
        auc = float(roc_auc_score(labels, part[p])) if 0 < labels.sum() < len(labels) else float("nan")
        rows.append({group: str(value), "rows": len(part), "churn_rate": float(labels.mean()), "roc_auc": auc})
    return pd.DataFrame(rows)


def improvement(model: dict[str, float], baseline: dict[str, float]) -> dict[str, float]:
    """By how much the model beats a baseline: AUC points gained, Brier reduced (relative)."""
    return {
        "roc_auc_gain": model["roc_auc"] - baseline["roc_auc"],
        "pr_auc_gain": model["pr_auc"] - baseline["pr_auc"],
        "brier_reduction_pct": 100 * (baseline["brier"] - model["brier"]) / baseline["brier"],
        "lift_top10_gain": model["lift_top10"] - baseline["lift_top10"],
    }


# ---------------------------------------------------------------- the test window, model and baselines side by side

MODEL_NAMES = ("model", "logistic", "health", "calendar")
BASELINES = MODEL_NAMES[1:]
BEYOND_DAYS = (90, 180)  # lead times the 90-day model cannot see: renewals further away than this
PREDICTION_KEYS = ("account_id", "snapshot_date", *LABEL_COLUMNS)


def test_predictions(test: pd.DataFrame, probabilities: dict[str, np.ndarray], catalogue: Catalogue) -> pd.DataFrame:
    """What evaluate needs without re-training: keys, label, ARR, context, and each model's probability."""
    keep = [*PREDICTION_KEYS, *catalogue.context]
    out = test[[c for c in keep if c in test]].reset_index(drop=True).copy()
    arr = catalogue.arr
    out["arr"] = test[arr].to_numpy(dtype=float) if arr in test else np.nan
    out["label"] = out["label"].astype(int)
    for name, p in probabilities.items():
        out[f"p_{name}"] = p
    return out


def arr_values(frame: pd.DataFrame, catalogue: Catalogue) -> np.ndarray | None:
    """Each row's current ARR, for ARR-weighted metrics (None when the export has no ARR)."""
    arr = catalogue.arr
    return frame[arr].to_numpy(dtype=float) if arr in frame else None


def test_evaluation(
    test: pd.DataFrame, probabilities: dict[str, np.ndarray], catalogue: Catalogue, health_flags: list[str]
) -> dict:
    """Metrics of the model and each baseline on the test window, and the model's gain over each baseline."""
    y = test["label"].astype(int).to_numpy()
    arr = arr_values(test, catalogue)
    metrics = {name: classification_metrics(y, p, arr) for name, p in probabilities.items()}
    return {
        "test": metrics,
        "improvement": {b: improvement(metrics["model"], metrics[b]) for b in BASELINES if b in metrics},
        "health_flags": health_flags,
        "roc_auc_beyond": auc_beyond(test, probabilities, catalogue),
    }


def auc_beyond(test: pd.DataFrame, probabilities: dict[str, np.ndarray], catalogue: Catalogue) -> dict:
    """ROC AUC of each model on the rows whose renewal is more than 90 (180) days away: early warning."""
    days = catalogue.days_to_renewal
    if days not in test:
        return {}
    y = test["label"].astype(int).to_numpy()
    countdown = pd.to_numeric(test[days], errors="coerce").fillna(0).to_numpy(dtype=float)
    out: dict[str, dict] = {}
    for beyond in BEYOND_DAYS:
        rows = countdown > beyond
        both = rows.any() and 0 < y[rows].sum() < rows.sum()
        out[f"{beyond}d"] = {
            "rows": int(rows.sum()),
            "positives": int(y[rows].sum()),
            **{name: (float(roc_auc_score(y[rows], p[rows])) if both else None) for name, p in probabilities.items()},
        }
    return out


def curve_frames(pred: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """ROC, PR, reliability and lift points for the model and both baselines, long format."""
    y = pred["label"].to_numpy()
    frames: dict[str, list[pd.DataFrame]] = {"roc": [], "pr": [], "calibration": [], "lift": []}
    for name in MODEL_NAMES:
        p = pred[f"p_{name}"].to_numpy()
        frames["roc"].append(roc_points(y, p, name))
        frames["pr"].append(pr_points(y, p, name))
        table = reliability_table(y, p).dropna(subset=["mean_predicted"])
        table.insert(0, "model", name)
        frames["calibration"].append(table)
        frames["lift"].append(lift_points(y, p, name))
    return {k: pd.concat(v, ignore_index=True) for k, v in frames.items()}


def importance_frame(booster, catalogue: Catalogue | None = None) -> pd.DataFrame:
    """Gain importance per feature of a LightGBM booster, largest first; with the catalogue, each feature's reason."""
    gains = booster.feature_importance(importance_type="gain")
    frame = pd.DataFrame({"feature": booster.feature_name(), "importance": gains})
    if catalogue is not None:
        titles = {s.name: s.group_title for s in catalogue.specs}
        frame["reason"] = frame["feature"].map(titles)
    return frame.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def importance_by_reason(importance: pd.DataFrame) -> pd.DataFrame:
    """Gain summed per reason (a signal family, or one event type's learned metrics), largest first.

    A hundred learned usage columns split their gain four ways per event type; summed, the
    table reads like the reasons on the list.
    """
    grouped = importance.groupby("reason", sort=False)["importance"].sum().reset_index()
    return grouped.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def summary_document(evaluation: dict) -> dict:
    """The model and its baselines side by side, the gains and the AUC beyond 90/180 days, rounded."""
    doc = {name: {k: round(v, 6) for k, v in evaluation["test"][name].items()} for name in MODEL_NAMES}
    doc["model_vs"] = {b: {k: round(v, 6) for k, v in d.items()} for b, d in evaluation["improvement"].items()}
    doc["roc_auc_beyond"] = {
        days: {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}
        for days, d in evaluation.get("roc_auc_beyond", {}).items()
    }
    return doc


def metrics_document(evaluation: dict, pred: pd.DataFrame) -> dict:
    """metrics.json: model and baselines side by side, improvements, reliability and per-segment AUC."""
    doc = summary_document(evaluation)
    y, p = pred["label"].to_numpy(), pred["p_model"].to_numpy()
    doc["reliability"] = reliability_table(y, p).round(6).to_dict(orient="records")
    context = [c for c in pred.columns if c not in (*PREDICTION_KEYS, "arr") and not c.startswith("p_")]
    for group in context:
        doc[f"by_{group}"] = metrics_by_group(pred, group).round(6).to_dict(orient="records")
    return doc
