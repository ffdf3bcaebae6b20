"""Baselines on the same split, so every model figure has a reference.

- ``logistic_baseline``: what a careful analyst would fit first (impute, scale, one-hot, logistic regression).
- ``HealthScore``: the weighted red-flag score customer-success tools ship, mapped to a
  probability on the validation window so its Brier score is comparable.
- ``RenewalCalendar``: what a CS team does without a model: work the renewals in order of
  ARR × nearness, mapped to a probability on validation the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from features.catalogue import Catalogue


def logistic_baseline(numeric: list[str], categorical: list[str], seed: int = 0) -> Pipeline:
    """Median imputation with missing-indicators, scaling, one-hot, L2 logistic regression."""
    numeric_steps = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler()
    )
    categorical_steps = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing", keep_empty_features=True),
        OneHotEncoder(handle_unknown="ignore"),
    )
    columns = ColumnTransformer(
        [("numeric", numeric_steps, numeric), ("categorical", categorical_steps, categorical)],
        remainder="drop",
    )
    return Pipeline([("columns", columns), ("model", LogisticRegression(C=0.5, max_iter=2000, random_state=seed))])


def as_object_categoricals(X: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """scikit-learn imputers want object columns, not pandas categoricals."""
    X = X.copy()
    for c in categorical:
        X[c] = X[c].astype(object).where(X[c].notna(), np.nan)
    return X


@dataclass(frozen=True)
class RedFlag:
    """One health-score rule: a feature compared with a threshold, and its weight."""

    feature: str
    op: str  # ">" or "<" or ">=" ; missing values never raise a flag except where ``missing_is_flag``
    threshold: float
    weight: float
    description: str
    missing_is_flag: bool = False

    def raised(self, frame: pd.DataFrame) -> pd.Series:
        values = pd.to_numeric(frame[self.feature], errors="coerce")
        compare = {">": values.gt, "<": values.lt, ">=": values.ge}[self.op]
        flag = compare(self.threshold).fillna(False).astype(bool)
        if self.missing_is_flag:
            flag |= values.isna()
        return flag


# The red flags of a typical CS-platform health score (weights as such tools default them).
RED_FLAGS: tuple[RedFlag, ...] = (
    RedFlag("reply_latency_median_hours_90d", ">", 48, 2.0, "median reply latency over 48 h"),
    RedFlag("qbr_since_last_days", ">", 90, 1.5, "no QBR in 90 days", missing_is_flag=True),
    RedFlag("usage_trend_ratio_30d", "<", 0.8, 1.5, "adoption falling (last 30 days < 80% of the 60 before)"),
    RedFlag("tenure_first_year_flag", ">=", 1, 1.0, "first-year account"),
    RedFlag("ticket_urgent_count_90d", ">", 0, 1.0, "high-priority tickets in the last 90 days"),
    RedFlag("nps_detractor_flag", ">=", 1, 2.0, "detractor NPS"),
)


class MappedOnValidation:
    """A ranking score (``score``) made a churn probability by an isotonic fit on the validation window."""

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def fit(self, valid: pd.DataFrame, labels: np.ndarray) -> "MappedOnValidation":
        self.calibrator_ = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(self.score(valid), labels)
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.calibrator_.predict(self.score(frame))


@dataclass
class HealthScore(MappedOnValidation):
    """Weighted red flags → score in [0, 1] → churn probability via isotonic fit on validation."""

    flags: tuple[RedFlag, ...] = RED_FLAGS

    def usable_flags(self, frame: pd.DataFrame) -> list[RedFlag]:
        return [f for f in self.flags if f.feature in frame.columns]

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        flags = self.usable_flags(frame)
        total = sum(f.weight for f in flags) or 1.0
        points = sum((f.raised(frame).to_numpy(dtype=float) * f.weight for f in flags), np.zeros(len(frame)))
        return points / total


NEARNESS_DAYS = 30.0  # the renewal calendar's scale: a renewal a month away weighs half one due now


def arr_or_median(frame: pd.DataFrame, arr: str | None) -> np.ndarray:
    """Each row's ARR for ranking: unknown ARR counts as the median ARR, no ARR column as 1 for every row."""
    values = pd.to_numeric(frame[arr], errors="coerce") if arr in frame else pd.Series(1.0, frame.index)
    return values.fillna(values.median() if values.notna().any() else 1.0).to_numpy(dtype=float)


@dataclass
class RenewalCalendar(MappedOnValidation):
    """ARR × nearness of the renewal (1 when due or overdue, 1/2 a month ahead, 1/7 six months ahead)."""

    arr: str | None
    days_to_renewal: str | None

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        days = (
            pd.to_numeric(frame[self.days_to_renewal], errors="coerce").fillna(0).clip(lower=0).to_numpy(dtype=float)
            if self.days_to_renewal in frame
            else np.zeros(len(frame))
        )
        return arr_or_median(frame, self.arr) / (1.0 + days / NEARNESS_DAYS)


@dataclass
class Baselines:
    """The references every model figure is read against, fitted on the same split."""

    logistic: Pipeline
    health: HealthScore
    calendar: RenewalCalendar
    features: list[str]
    categorical: list[str]

    def predict_proba(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Churn probabilities of the baselines for the rows of ``frame``."""
        X = as_object_categoricals(frame[self.features], self.categorical)
        return {
            "logistic": self.logistic.predict_proba(X)[:, 1],
            "health": self.health.predict_proba(frame),
            "calendar": self.calendar.predict_proba(frame),
        }


def fit_baselines(parts: dict[str, pd.DataFrame], catalogue: Catalogue, seed: int, label: str = "label") -> Baselines:
    """The logistic-regression pipeline (fit on train); the health score and the renewal calendar (mapped on validation)."""
    features, categorical = catalogue.names, catalogue.categorical
    numeric = [f for f in features if f not in categorical]
    logistic = logistic_baseline(numeric, categorical, seed=seed)
    train = parts["train"]
    logistic.fit(as_object_categoricals(train[features], categorical), train[label].astype(int))
    y_valid = parts["valid"][label].astype(int).to_numpy()
    health = HealthScore().fit(parts["valid"], y_valid)
    calendar = RenewalCalendar(catalogue.arr, catalogue.days_to_renewal).fit(parts["valid"], y_valid)
    return Baselines(logistic, health, calendar, features, categorical)
