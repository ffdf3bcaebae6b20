"""Is the model still describing the accounts it scores, and were last quarter's lists right?

- **Drift**: this week's scored accounts against the model's test window, the most recent
  weeks whose outcomes were observed and on which its published figures were measured. Per
  feature: the population stability index (PSI) on the reference's deciles, missing values
  kept apart (their share is reported on its own, so a feed that breaks shows as missing,
  not as a shifted distribution), and the same for the score. PSI because it is symmetric,
  bounded by the bins, reads the same for every feature whatever its unit, and has the
  thresholds the credit-risk trade uses (0.1 moderate, 0.25 a real shift). The earliest
  training weeks are not the reference: every export's first year has truncated 365-day
  look-backs, so they would flag the export's start, every week, rather than a change.
- **Lists judged**: each kept weekly list (``reports/history``) whose horizon has been
  observed gets what happened: ROC AUC of its churn probability, the precision of its alert
  list at the owners' budget, churned ARR on and off that list, promised against observed
  churn per tier; next to the test-window figures the model showed at training.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

PSEUDO_COUNT = (
    0.5  # added to each bin's count (Jeffreys): an empty bin of a small book neither makes PSI infinite nor huge
)


# ---------------------------------------------------------------- drift


def psi(reference: pd.Series, current: pd.Series, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``, missing values left out.

    Numeric: the reference's quantile bins (ties merged). Categorical: one bin per category.
    NaN when either side has no value.
    """
    ref, cur = reference.dropna(), current.dropna()
    if ref.empty or cur.empty:
        return float("nan")
    if isinstance(ref.dtype, pd.CategoricalDtype) or ref.dtype == object or pd.api.types.is_string_dtype(ref.dtype):
        p = ref.astype("string").value_counts()
        q = cur.astype("string").value_counts()
        p, q = p.align(q, fill_value=0)
        return _psi(p.to_numpy(dtype=float), q.to_numpy(dtype=float))
    r, c = ref.to_numpy(dtype=float), cur.to_numpy(dtype=float)
    edges = np.unique(np.quantile(r, np.linspace(0, 1, bins + 1)[1:-1]))
    p = np.bincount(np.searchsorted(edges, r, side="right"), minlength=len(edges) + 1)
    q = np.bincount(np.searchsorted(edges, c, side="right"), minlength=len(edges) + 1)
    return _psi(p.astype(float), q.astype(float))


def _psi(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    p = (p_counts + PSEUDO_COUNT) / (p_counts.sum() + PSEUDO_COUNT * len(p_counts))
    q = (q_counts + PSEUDO_COUNT) / (q_counts.sum() + PSEUDO_COUNT * len(q_counts))
    return float(np.sum((q - p) * np.log(q / p)))


Z_99 = 2.3263  # the standard normal's 99th percentile


def psi_noise(reference: pd.Series, current: pd.Series, bins: int) -> float:
    """The PSI that two samples of these sizes stay under 99 times in 100 when nothing drifted.

    On equal distributions PSI / (1/n + 1/m) is about chi-square with bins - 1 degrees of
    freedom (PSI is a symmetric Kullback-Leibler divergence); its 99th percentile by the
    Wilson-Hilferty approximation. A book of 60 accounts reaches a PSI of 0.37 from sampling
    alone, which a fixed threshold would read as drift every few weeks.
    """
    n, m = int(reference.notna().sum()), int(current.notna().sum())
    if not n or not m:
        return float("nan")
    dof = max(bins - 1, 1)
    quantile = dof * (1 - 2 / (9 * dof) + Z_99 * np.sqrt(2 / (9 * dof))) ** 3
    return float(quantile * (1 / n + 1 / m))


def feature_drift(reference: pd.DataFrame, current: pd.DataFrame, titles: dict[str, str], bins: int) -> pd.DataFrame:
    """PSI, its no-drift level for these sample sizes and the share of missing values per feature, most drifted first.

    ``titles``: each feature's words from the catalogue, for the warning a person reads.
    """
    rows = []
    for name in titles:
        if name not in reference or name not in current:
            continue
        rows.append(
            {
                "feature": name,
                "title": titles[name],
                "psi": psi(reference[name], current[name], bins),
                "psi_noise": psi_noise(reference[name], current[name], bins),
                "missing_reference": float(reference[name].isna().mean()),
                "missing_current": float(current[name].isna().mean()),
            }
        )
    columns = ["feature", "title", "psi", "psi_noise", "missing_reference", "missing_current"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["missing_change"] = frame["missing_current"] - frame["missing_reference"]
    return frame.sort_values(["psi", "feature"], ascending=[False, True], na_position="last").reset_index(drop=True)


def drifted(drift: pd.DataFrame, max_psi: float, max_missing_change: float) -> pd.DataFrame:
    """The features past either limit: a shifted distribution (PSI past ``max_psi`` and past what
    sampling alone gives a book this size, ``psi_noise``), or a jump in missing values."""
    shifted = (drift["psi"] > max_psi) & (drift["psi"] > drift["psi_noise"].fillna(0.0))
    return drift[shifted | (drift["missing_change"].abs() > max_missing_change)]


def drift_line(flagged: pd.DataFrame, top: int) -> str:
    """One warning naming the most drifted features in the catalogue's words."""
    parts = [
        f"{r.title} (PSI {r.psi:.2f}, missing {r.missing_reference:.0%} -> {r.missing_current:.0%})"
        for r in flagged.head(top).itertuples()
    ]
    more = f" and {len(flagged) - top} more" if len(flagged) > top else ""
    return f"{len(flagged)} feature(s) drifted from the model's test window: {'; '.join(parts)}{more}"


def score_distribution(scores: pd.Series, reference: pd.Series, bins: int) -> dict:
    """This week's probabilities against the test window's: PSI, means and quantiles."""
    quantiles = [0.1, 0.5, 0.9, 0.99]
    return {
        "psi": psi(reference, scores, bins),
        "mean_reference": float(reference.mean()),
        "mean_current": float(scores.mean()),
        "quantiles_reference": {str(q): float(reference.quantile(q)) for q in quantiles},
        "quantiles_current": {str(q): float(scores.quantile(q)) for q in quantiles},
    }


# ---------------------------------------------------------------- last quarter's lists


HISTORY_COLUMNS = [
    "as_of",
    "account_id",
    "owner",
    "arr",
    "renewal_risk",
    "churn_probability",
    "risk_tier",
    "rank",
    "model_version",
    "data_note",
]


def matured(as_of: dt.date, export_date: dt.date, horizon_days: int, grace_days: int) -> bool:
    """A list's outcome is known once its horizon and the grace after it are within the export."""
    return as_of + dt.timedelta(days=horizon_days + grace_days) <= export_date


def alert_mask(frame: pd.DataFrame, per_owner: int) -> pd.Series:
    """The alert list at the owners' budget: each owner's ``per_owner`` best-ranked accounts."""
    owners = frame["owner"].astype("string").fillna("(no owner)")
    order = frame.assign(_owner=owners).sort_values("rank", kind="stable")
    chosen = order.groupby("_owner", sort=False).head(per_owner).index
    return frame.index.isin(chosen)


@dataclass(frozen=True)
class ListJudgement:
    """What happened to one weekly list's accounts within the horizon after its date."""

    as_of: dt.date
    model_version: str
    accounts: int
    churned: int
    roc_auc: float
    alerts: int
    alert_precision: float
    churned_arr_alerted: float
    churned_arr_missed: float
    tiers: dict[str, dict[str, float]]

    def to_dict(self) -> dict:
        doc = {k: v for k, v in self.__dict__.items()}
        doc["as_of"] = self.as_of.isoformat()
        return doc


def judge_list(frame: pd.DataFrame, outcome: pd.Series, per_owner: int) -> ListJudgement:
    """One list against its outcome (``outcome``: 1 churned within the horizon, 0 not; by account_id)."""
    frame = frame.assign(churned=frame["account_id"].map(outcome)).dropna(subset=["churned"])
    y = frame["churned"].astype(int).to_numpy()
    alerted = alert_mask(frame, per_owner)
    arr = frame["arr"].fillna(0.0).to_numpy(dtype=float)
    tiers = {
        str(tier): {
            "accounts": int(len(part)),
            "promised": float(part["churn_probability"].mean()),
            "observed": float(part["churned"].mean()),
        }
        for tier, part in frame.groupby("risk_tier", sort=True)
    }
    return ListJudgement(
        as_of=dt.date.fromisoformat(str(frame["as_of"].iloc[0])),
        model_version=str(frame["model_version"].iloc[0]),
        accounts=int(len(frame)),
        churned=int(y.sum()),
        roc_auc=float(roc_auc_score(y, frame["churn_probability"])) if 0 < y.sum() < len(y) else float("nan"),
        alerts=int(alerted.sum()),
        alert_precision=float(y[alerted].mean()) if alerted.any() else float("nan"),
        churned_arr_alerted=float(arr[alerted & (y == 1)].sum()),
        churned_arr_missed=float(arr[~alerted & (y == 1)].sum()),
        tiers=tiers,
    )


def pooled_auc(lists: list[pd.DataFrame], outcomes: list[pd.Series]) -> float:
    """ROC AUC over every account-week of the given lists: one figure for a quarter, steadier than a week's."""
    y, p = [], []
    for frame, outcome in zip(lists, outcomes):
        known = frame.assign(churned=frame["account_id"].map(outcome)).dropna(subset=["churned"])
        y.append(known["churned"].astype(int).to_numpy())
        p.append(known["churn_probability"].to_numpy(dtype=float))
    y_all, p_all = np.concatenate(y) if y else np.array([]), np.concatenate(p) if p else np.array([])
    return float(roc_auc_score(y_all, p_all)) if 0 < y_all.sum() < len(y_all) else float("nan")


def retrain_line(recent_auc: float, test_auc: float, max_drop: float, weeks: int) -> str | None:
    """One line recommending retraining when the lists' AUC fell more than ``max_drop`` below the test window's."""
    if np.isnan(recent_auc) or recent_auc >= test_auc - max_drop:
        return None
    return (
        f"retrain: the last {weeks} judged lists ranked churn at ROC AUC {recent_auc:.3f}, "
        f"{test_auc - recent_auc:.3f} below the {test_auc:.3f} the model showed on its test window "
        f"(monitor.max_auc_drop {max_drop}); run `dvc repro` on a fresh export"
    )
