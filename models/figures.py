"""The pictures people look at: evaluation curves and SHAP plots, drawn as matplotlib figures.

Drawing only: each function returns a ``Figure`` and writes nothing. ``pipelines.io.write_figure``
saves it (atomically, with byte-stable PNG metadata) and closes it.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files, not windows: stages and tests run without a display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from models.explain import Contributions

CURVES = {
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


def evaluation_figures(curves: dict[str, pd.DataFrame], importance: pd.DataFrame) -> dict[str, Figure]:
    """One titled, labelled figure per curve (model and baselines) and one of gain importance.

    ``importance``: ``feature, importance`` (``evaluate.importance_frame``) or ``reason, importance``
    (``evaluate.importance_by_reason``), largest first; the first column labels the bars.
    """
    figures: dict[str, Figure] = {}
    for name, (x, y, title, xlabel, ylabel) in CURVES.items():
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        for model_name, part in curves[name].groupby("model", sort=False):
            ax.plot(part[x], part[y], marker="o" if name == "calibration" else None, label=model_name)
        if name in ("roc", "calibration", "lift"):
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.legend()
        fig.tight_layout()
        figures[name] = fig
    top = importance.head(20).iloc[::-1]
    by = importance.columns[0]  # "feature", or "reason" for gain summed per reason
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    ax.barh(top[by], top["importance"])
    ax.set(
        title="Feature importance (gain)" if by == "feature" else "Importance by reason (gain)",
        xlabel="Total gain",
        ylabel="",
    )
    fig.tight_layout()
    figures["importance"] = fig
    return figures


def lead_time_figure(curve: pd.DataFrame) -> Figure:
    """Share of churned ARR alerted at least d days before churning, one line per ranking."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, part in curve.groupby("ranking", sort=False):
        ax.plot(part["days_before_churn"], part["share_of_churned_arr_alerted"], label=name)
    ax.axvline(90, linestyle="--", color="grey", linewidth=0.8)
    ax.set(
        title="Lead time (backtest)",
        xlabel="Days before churn (at least)",
        ylabel="Share of churned ARR alerted",
        ylim=(0, 1),
    )
    ax.legend()
    fig.tight_layout()
    return fig


def shap_summary_figure(contrib: Contributions, X: pd.DataFrame) -> Figure:
    """SHAP beeswarm of the scored accounts."""
    import shap

    numeric = X.apply(lambda c: c.cat.codes.astype(float) if c.dtype.name == "category" else c.astype(float))
    plt.figure()  # SHAP draws on the current figure: give it a new one, never one a caller has open
    # The beeswarm places and layers its dots at random: a seeded generator makes the same
    # scores draw the same picture, byte for byte.
    shap.summary_plot(
        contrib.values.to_numpy(), numeric, show=False, max_display=15, plot_size=(8, 7), rng=np.random.default_rng(0)
    )
    fig = plt.gcf()
    fig.suptitle("What drives churn risk this week (SHAP, log-odds)")
    return fig


def waterfall_figure(contrib: Contributions, X: pd.DataFrame, account_id: str, probability: float) -> Figure:
    """One account's SHAP waterfall: from the average account to this account's score."""
    import shap

    i = X.index.get_loc(account_id)
    values = X.iloc[i]
    data = np.array([v if not isinstance(v, str) else np.nan for v in values.astype(object)], dtype=float)
    exp = shap.Explanation(
        values=contrib.values.iloc[i].to_numpy(),
        base_values=contrib.base_value,
        data=data,
        feature_names=list(X.columns),
    )
    plt.figure()  # SHAP draws on the current figure: give it a new one, never one a caller has open
    shap.plots.waterfall(exp, max_display=12, show=False)
    fig = plt.gcf()
    fig.set_size_inches(11, 7)
    fig.suptitle(f"Account {account_id}: churn probability {probability:.0%} (SHAP, log-odds)")
    return fig


# How each kind of figure is saved: evaluation curves at their own size; SHAP plots cropped
# ("tight" keeps the long feature names and the f(x) label inside the picture).
CURVE_SAVE: dict = {}
SHAP_SAVE: dict = {"dpi": 90, "bbox_inches": "tight"}
