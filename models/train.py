"""Out-of-time training of the LightGBM churn model and its calibration.

The model is a LightGBM booster on the raw log-odds scale plus a calibrator fitted on the
validation window. Both are plain files (LightGBM text model, calibrator JSON) so that the
same inputs give byte-identical artifacts and nothing needs unpickling to score.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from features.catalogue import LABEL_COLUMNS, Catalogue, FeatureSpec, catalogue_hash
from features.errors import InputError
from models import explain
from models.params import REFIT, Candidate, TrainParams, Tuning
from models.targets import HORIZON, LABEL, Target, split_dates
from models.windows import Windows, fully_labelled_dates

LOG = logging.getLogger("churn.train")

KEY_COLUMNS = ("account_id", "snapshot_date")
POSITION = "_position"  # a row's place in the feature table, when a frame holds only some of its columns
NON_FEATURES = (*KEY_COLUMNS, *LABEL_COLUMNS)
MODEL_FILE = "model.txt"
CALIBRATOR_FILE = "calibrator.json"
FEATURES_FILE = "features.json"
METADATA_FILE = "metadata.json"
PREDICTIONS_FILE = "test_predictions.parquet"  # the test window's keys, labels and each model's probability
EVALUATION_FILE = "evaluation.json"  # test metrics of the model and its baselines


def split_out_of_time(frame: pd.DataFrame, windows: Windows, target: Target = HORIZON) -> dict[str, pd.DataFrame]:
    """Rows of each window's fully labelled split dates; rows in the gaps are left out so no label window overlaps.

    A split date whose labels are partly missing (the last weeks of the export, where only the
    already confirmed churns are labelled) is in no window: it would bring churners without
    the renewals that balance them. The renewal target splits by term end, so all snapshots of
    one term fall in one window. ``label`` is read as the target's label (``Target.view``).
    """
    frame = target.view(frame)
    snap = split_dates(frame, target)
    # masks, not a labelled copy: at 100,000 accounts the table is gigabytes
    complete = snap.isin(pd.DatetimeIndex([pd.Timestamp(d) for d in fully_labelled_dates(frame, target)])).to_numpy()
    day = pd.Timestamp
    after_train_start = snap >= day(windows.train_start) if windows.train_start else True
    before_test_end = snap <= day(windows.test_end) if windows.test_end else True
    parts = {
        "train": frame[complete & after_train_start & (snap <= day(windows.train_end))],
        "valid": frame[complete & (snap >= day(windows.valid_start)) & (snap <= day(windows.valid_end))],
        "test": frame[complete & (snap >= day(windows.test_start)) & before_test_end],
    }
    for name, part in parts.items():
        _require_both_classes(part, name)
    return parts


THINNED = ("train", "valid")  # the test window is never thinned: every row is evaluated


def thin_weeks(part: pd.DataFrame, max_rows: int) -> tuple[pd.DataFrame, int]:
    """Every k-th weekly snapshot of a window of more than ``max_rows`` rows, counted back from its latest.

    k is the smallest stride that brings the window to at most ``max_rows`` rows. One account's
    snapshots a week apart share almost every feature value and the label, so a stride drops
    repetition rather than accounts: every account of the window stays in it.

    Returns:
        The kept rows and the stride (1: the window was small enough and is returned whole).
    """
    if len(part) <= max_rows:
        return part, 1
    weeks = part["snapshot_date"].value_counts().sort_index(ascending=False)  # rows per week, latest first
    stride = -(-len(part) // max_rows)
    while weeks.iloc[::stride].sum() > max_rows:  # weeks differ in size: the first stride that fits
        stride += 1
    kept = part[part["snapshot_date"].isin(weeks.index[::stride]).to_numpy()]
    return kept, int(stride)


def thin_windows(parts: dict[str, pd.DataFrame], max_rows: int) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """The train and validation windows thinned by ``thin_weeks``; the test window as it is."""
    out, strides = dict(parts), {}
    for name in THINNED:
        if name in parts:
            out[name], strides[name] = thin_weeks(parts[name], max_rows)
            if strides[name] > 1:
                LOG.info(
                    "%s window: every %s week kept (%s of %s rows; train.max_window_rows %s)",
                    *(name, _ordinal(strides[name]), f"{len(out[name]):,}", f"{len(parts[name]):,}", f"{max_rows:,}"),
                )
    return out, strides


def _ordinal(n: int) -> str:
    return {2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def _require_both_classes(part: pd.DataFrame, name: str) -> None:
    """AUC, early stopping and calibration are undefined on one class: say so plainly."""
    if part.empty:
        raise InputError(
            f"features.parquet: the {name} window has no fully labelled snapshots; "
            "adjust the train: dates in params.yaml, or set train.windows: auto"
        )
    counts = part[LABEL].astype(int).value_counts()
    if counts.get(1, 0) == 0 or counts.get(0, 0) == 0:
        kind = "churned" if counts.get(1, 0) == 0 else "retained"
        raise InputError(
            f"features.parquet: column 'label': no {kind} accounts in the {name} window "
            f"({len(part)} rows); a churn model needs both outcomes — "
            "widen the window in params.yaml (train.window_weeks, or the dates)"
        )


def category_levels(frame: pd.DataFrame, categoricals: list[str]) -> dict[str, list[str]]:
    """Sorted levels per categorical, fixed at training so scoring encodes the same way."""
    return {c: sorted(str(v) for v in frame[c].dropna().unique()) for c in categoricals}


def model_matrix(frame: pd.DataFrame, features: list[str], levels: dict[str, list[str]]) -> pd.DataFrame:
    """The feature matrix with categoricals on the training levels (unseen levels become missing)."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise InputError(f"features table: missing model feature column(s) {', '.join(missing)}")
    X = frame[features].copy()
    for column in features:
        if column in levels:
            values = X[column].astype("string")
            known = values.isin(levels[column])
            X[column] = pd.Categorical(values.where(known).astype(object), categories=levels[column])
        else:
            X[column] = pd.to_numeric(X[column], errors="coerce").astype("float64")
    return X


def min_data_in_leaf(candidate: Candidate, rows: int, floor: int) -> int:
    """The candidate's least rows per leaf on ``rows`` training rows: its share of them, at least ``floor``.

    A share keeps a setting's strength when the search runs on a sample and the winner is
    refitted on the whole window, and when the same params train books of any size.
    """
    return max(floor, int(round(candidate.min_data_in_leaf_share * rows)))


def lightgbm_params(p: TrainParams, candidate: Candidate, rows: int, positive_weight: float) -> dict:
    """Deterministic LightGBM settings of one candidate: same data and params give the same model bytes."""
    # Early stopping watches log loss (what calibration cares about) on unweighted training;
    # with re-weighted churners the validation log loss is biased, so ranking (AUC) is watched instead.
    # Only that one metric is computed: AUC sorts the whole validation window at every round
    # (a third of the training time at 100,000 accounts) and nothing else reads it.
    metrics = ["binary_logloss"] if positive_weight == 1.0 else ["auc"]
    t = p.tuning
    return {
        "objective": "binary",
        "metric": metrics,
        "learning_rate": candidate.learning_rate,
        "num_leaves": candidate.num_leaves,
        "min_data_in_leaf": min_data_in_leaf(candidate, rows, t.min_data_in_leaf_floor),
        "feature_fraction": candidate.feature_fraction,
        "bagging_fraction": t.bagging_fraction,
        "bagging_freq": t.bagging_freq,
        "lambda_l2": candidate.lambda_l2,
        "scale_pos_weight": positive_weight,
        "seed": p.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 2,
        "verbosity": -1,
        "max_cat_to_onehot": 8,
    }


def positive_weight(y: pd.Series, setting: float | str) -> float:
    """Class weight for churners: a number, or ``auto`` = negatives/positives of the train window only."""
    if setting != "auto":
        return float(setting)
    positives = int((y == 1).sum())
    return float((len(y) - positives) / max(positives, 1))


@dataclass
class Calibrator:
    """Maps the booster's raw log-odds to a churn probability; stored as JSON, not a pickle.

    ``sigmoid`` (Platt) keeps the model's ranking exactly and needs two numbers;
    ``isotonic`` is more flexible but makes ties and needs many validation positives.
    """

    method: str
    a: float = 1.0
    b: float = 0.0
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, raw: np.ndarray, labels: np.ndarray, method: str) -> "Calibrator":
        if method == "sigmoid":
            lr = LogisticRegression(C=1e6, max_iter=1000)
            lr.fit(raw.reshape(-1, 1), labels)
            return cls(method, a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, labels)
        return cls(method, x=[float(v) for v in iso.X_thresholds_], y=[float(v) for v in iso.y_thresholds_])

    def transform(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype="float64")
        if self.method == "sigmoid":
            return 1.0 / (1.0 + np.exp(-(self.a * raw + self.b)))
        return np.interp(raw, self.x, self.y)

    def to_json(self) -> str:
        doc = {"method": self.method, "a": self.a, "b": self.b, "x": self.x, "y": self.y}
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Calibrator":
        return cls(**json.loads(text))


@dataclass
class ChurnModel:
    """Booster + calibrator + the exact feature list and category levels it was trained on."""

    booster: lgb.Booster
    calibrator: Calibrator
    features: list[str]
    levels: dict[str, list[str]]
    catalog_hash: str
    metadata: dict = field(default_factory=dict)
    # wall time of each fit of the search (and ``refit``): logged, never saved, so the files stay byte-identical
    fit_seconds: dict[str, float] = field(default_factory=dict)

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        return model_matrix(frame, self.features, self.levels)

    def raw_score(self, frame: pd.DataFrame) -> np.ndarray:
        """Log-odds before calibration: the scale SHAP contributions add up to."""
        return self.booster.predict(self.matrix(frame), raw_score=True)

    def reason_specs(self, specs: dict[str, FeatureSpec]) -> dict[str, FeatureSpec]:
        """The catalogue's specs with each learned feature's risk direction read from this model.

        Models saved before learned features existed have none, so their specs are unchanged.
        """
        directions = self.metadata.get("learned_directions", {})
        return {
            name: replace(spec, risk_direction=directions.get(name, 0)) if spec.learned else spec
            for name, spec in specs.items()
        }

    @property
    def vocabulary(self) -> dict[str, dict]:
        """The event types the model's learned usage features were built on, by table."""
        return self.metadata.get("vocabulary", {})

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability within the horizon."""
        return self.calibrator.transform(self.raw_score(frame))

    def save(self, folder: Path) -> None:
        """Write the model's four files; bytes depend only on data and params."""
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / MODEL_FILE))
        (folder / CALIBRATOR_FILE).write_text(self.calibrator.to_json())
        doc = {"features": self.features, "categories": self.levels, "catalog_hash": self.catalog_hash}
        (folder / FEATURES_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        (folder / METADATA_FILE).write_text(json.dumps(self.metadata, indent=2, sort_keys=True, default=str) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "ChurnModel":
        """Read a model folder written by ``save`` (or the same files from the MLflow registry)."""
        folder = Path(folder)
        model_file = folder / MODEL_FILE
        if not model_file.exists():
            raise InputError(
                f"{folder}: no {MODEL_FILE} here; run `dvc repro train` or pass --model models:/churn-lgbm-demo@champion"
            )
        booster = lgb.Booster(model_file=str(model_file))
        calibrator = Calibrator.from_json((folder / CALIBRATOR_FILE).read_text())
        doc = json.loads((folder / FEATURES_FILE).read_text())
        metadata_file = folder / METADATA_FILE
        metadata = json.loads(metadata_file.read_text()) if metadata_file.exists() else {}
        return cls(booster, calibrator, doc["features"], doc["categories"], doc["catalog_hash"], metadata)


def search_sample(frame: pd.DataFrame, rows: int) -> np.ndarray:
    """Positions (ascending) of a deterministic sample of at most ``rows`` of the frame's rows.

    The rows whose (account, snapshot) hash lowest: every account and week can be drawn, the
    same rows give the same sample whatever their order, and a frame of at most ``rows`` rows
    is taken whole.
    """
    if len(frame) <= rows:
        return np.arange(len(frame))
    keys = pd.util.hash_pandas_object(frame[list(KEY_COLUMNS)], index=False).to_numpy()
    return np.sort(np.argsort(keys, kind="stable")[:rows])


@dataclass(frozen=True)
class Fit:
    """One early-stopped LightGBM fit: the booster cut at its best iteration, and how it did on validation."""

    booster: lgb.Booster
    params: dict
    valid_roc_auc: float
    valid_log_loss: float
    seconds: float

    @property
    def best_iteration(self) -> int:
        return int(self.booster.current_iteration())


def fit_booster(
    lgb_params: dict,
    tuning: Tuning,
    train: tuple[pd.DataFrame, pd.Series],
    valid: tuple[pd.DataFrame, pd.Series],
    categorical: list[str],
) -> Fit:
    """Fit on ``train`` with early stopping on ``valid``; keep the trees up to the best iteration."""
    start = time.perf_counter()
    # a Dataset per fit: LightGBM drops features at construction by the candidate's min_data_in_leaf
    train_set = lgb.Dataset(*train, categorical_feature=categorical or "auto", free_raw_data=False)
    valid_set = lgb.Dataset(*valid, reference=train_set)
    booster = lgb.train(
        lgb_params,
        train_set,
        num_boost_round=tuning.num_boost_round,
        valid_sets=[valid_set],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(tuning.early_stopping_rounds, first_metric_only=True, verbose=False)],
    )
    # Keep only the trees up to the best iteration so the saved file is the model that was evaluated.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    probability = booster.predict(valid[0])
    y = valid[1].to_numpy()
    return Fit(
        booster,
        lgb_params,
        float(roc_auc_score(y, probability)),
        float(log_loss(y, probability, labels=[0, 1])),
        time.perf_counter() - start,
    )


def best_candidate(results: dict[str, float]) -> str:
    """The name with the highest validation ROC AUC; a tie goes to the one listed first (the simpler)."""
    best = max(results.values())
    return next(name for name, auc in results.items() if auc >= best - 1e-12)


def search(
    params: TrainParams,
    weight: float,
    train: tuple[pd.DataFrame, pd.Series],
    valid: tuple[pd.DataFrame, pd.Series],
    categorical: list[str],
    extra: dict,
) -> dict[str, Fit]:
    """Each candidate of ``train.tuning`` fitted on ``train`` with early stopping on ``valid``, in list order."""
    fits = {}
    for candidate in params.tuning.candidates:
        name = candidate.name
        lgb_params = {**lightgbm_params(params, candidate, len(train[0]), weight), **extra}
        fit = fits[name] = fit_booster(lgb_params, params.tuning, train, valid, categorical)
        LOG.info(
            "search %-10s %2d leaves, min %s per leaf, L2 %g, rate %g: valid ROC AUC %.4f, log loss %.4f, "
            "%d rounds, %.1f s",
            *(name, candidate.num_leaves, f"{lgb_params['min_data_in_leaf']:,}", candidate.lambda_l2),
            *(candidate.learning_rate, fit.valid_roc_auc, fit.valid_log_loss, fit.best_iteration, fit.seconds),
        )
    return fits


def train_model(
    parts: dict[str, pd.DataFrame],
    catalog_doc: dict,
    catalog_hash: str,
    params: TrainParams,
    windows: Windows,
    strides: dict[str, int] | None = None,
) -> ChurnModel:
    """Choose LightGBM's setting on validation, fit it on the train window, then calibrate on validation.

    Each candidate of ``train.tuning`` is fitted with early stopping on the validation window, on
    the whole train window or, when it has more than ``search_rows`` rows, on a deterministic
    sample of it (``search_sample``); the best validation ROC AUC wins (a tie: the earlier
    candidate) and, after a sampled search, is refitted on the whole train window. The model's
    metadata records every candidate (``tuning``) and each feature's retained-account reference
    value (for reasons); the fits' wall times are kept beside it (``fit_seconds``), not in it.
    """
    catalogue = Catalogue.from_json(catalog_doc)
    features = catalogue.names
    levels = category_levels(parts["train"], catalogue.categorical)
    X_train, y_train = model_matrix(parts["train"], features, levels), parts["train"][LABEL].astype(int)
    X_valid, y_valid = model_matrix(parts["valid"], features, levels), parts["valid"][LABEL].astype(int)
    weight = positive_weight(y_train, params.scale_pos_weight)
    extra = {}
    if params.monotone:
        extra = {"monotone_constraints": catalogue.monotone_constraints, "monotone_constraints_method": "intermediate"}
    tuning = params.tuning
    sample = search_sample(parts["train"], tuning.search_rows)
    sampled = len(sample) < len(X_train)
    searched = (X_train.iloc[sample], y_train.iloc[sample]) if sampled else (X_train, y_train)
    fits = search(params, weight, searched, (X_valid, y_valid), list(levels), extra)
    chosen = best_candidate({name: fit.valid_roc_auc for name, fit in fits.items()})
    fit = fits[chosen]
    LOG.info(
        "search: %s chosen (valid ROC AUC %.4f, the best of %d; a tie goes to the earlier candidate)%s",
        *(chosen, fit.valid_roc_auc, len(fits)),
        f"; searched on {len(sample):,} of {len(X_train):,} train rows, refitting on all" if sampled else "",
    )
    seconds = {name: f.seconds for name, f in fits.items()}
    if sampled:
        candidate = next(c for c in tuning.candidates if c.name == chosen)
        lgb_params = {**lightgbm_params(params, candidate, len(X_train), weight), **extra}
        fit = fit_booster(lgb_params, tuning, (X_train, y_train), (X_valid, y_valid), list(levels))
        seconds[REFIT] = fit.seconds
        LOG.info(
            "refit %s on %s rows: valid ROC AUC %.4f, log loss %.4f, %d rounds, %.1f s",
            *(chosen, f"{len(X_train):,}", fit.valid_roc_auc, fit.valid_log_loss, fit.best_iteration, fit.seconds),
        )
    booster = fit.booster
    raw_valid = booster.predict(X_valid, raw_score=True)
    calibrator = Calibrator.fit(raw_valid, y_valid.to_numpy(), params.calibration)
    metadata = {
        "windows": {**windows.as_dict(), "rule": params.windows},
        "rows": {k: int(len(v)) for k, v in parts.items()},
        "week_stride": strides or {},  # windows thinned to every k-th week (``thin_windows``)
        "churn_rate": {k: float(v[LABEL].astype(int).mean()) for k, v in parts.items()},
        "positive_weight": weight,
        "best_iteration": fit.best_iteration,
        "lightgbm_params": fit.params,
        "tuning": tuning_record(params, fits, chosen, len(sample), fit if sampled else None),
        "calibration": params.calibration,
        "catalog_hash": catalog_hash,
    }
    metadata["retained_reference"] = explain.reference_values(parts["train"], catalogue.by_name)
    metadata["learned_directions"] = learned_directions(booster, X_train, catalogue)
    metadata["vocabulary"] = catalog_doc.get("vocabulary", {})
    return ChurnModel(booster, calibrator, features, levels, catalog_hash, metadata, seconds)


def tuning_record(
    params: TrainParams, fits: dict[str, Fit], chosen: str, searched_rows: int, refit: Fit | None
) -> dict:
    """The search as ``metadata.json`` keeps it: every candidate's validation figures, the choice, the refit.

    Deterministic figures only (no wall times), so the same data and params give the same bytes.
    """
    record = {
        "chosen": chosen,
        "rule": "best validation ROC AUC; a tie goes to the earlier candidate",
        "search_rows": params.tuning.search_rows,
        "searched_rows": searched_rows,
        "candidates": [
            {
                "name": name,
                "num_leaves": fit.params["num_leaves"],
                "min_data_in_leaf": fit.params["min_data_in_leaf"],
                "lambda_l2": fit.params["lambda_l2"],
                "learning_rate": fit.params["learning_rate"],
                "feature_fraction": fit.params["feature_fraction"],
                "best_iteration": fit.best_iteration,
                "valid_roc_auc": round(fit.valid_roc_auc, 6),
                "valid_log_loss": round(fit.valid_log_loss, 6),
            }
            for name, fit in fits.items()
        ],
        "refit": None,
    }
    if refit is not None:
        record["refit"] = {
            "min_data_in_leaf": refit.params["min_data_in_leaf"],
            "best_iteration": refit.best_iteration,
            "valid_roc_auc": round(refit.valid_roc_auc, 6),
            "valid_log_loss": round(refit.valid_log_loss, 6),
        }
    return record


DIRECTION_SAMPLE_ROWS = 50_000
MIN_DIRECTION_CORRELATION = 0.2


def learned_directions(booster: lgb.Booster, X: pd.DataFrame, catalogue: Catalogue) -> dict[str, int]:
    """The risk direction the fitted model shows for each learned feature: +1, -1, or 0 when it shows none.

    A learned usage metric carries no promised direction, so the reader of a reason is told the
    side the model itself uses: the sign of the rank correlation between the feature's value and
    its SHAP contribution on (a fixed sample of) the training window, kept only when clear
    (|rho| >= 0.2); a feature the model barely uses, or uses both ways, is never worded as a reason.
    """
    learned = [s.name for s in catalogue.specs if s.learned]
    if not learned:
        return {}
    sample = X.iloc[:: max(1, len(X) // DIRECTION_SAMPLE_ROWS)]
    contributions = booster.predict(sample, pred_contrib=True)[:, :-1]
    column = {name: i for i, name in enumerate(X.columns)}
    out: dict[str, int] = {}
    for name in learned:
        values = pd.Series(sample[name].to_numpy(dtype="float64"))
        effect = pd.Series(contributions[:, column[name]])
        known = values.notna()
        varies = values[known].nunique() > 1 and effect[known].nunique() > 1  # a constant has no direction
        rho = values[known].corr(effect[known], method="spearman") if varies else np.nan
        out[name] = int(np.sign(rho)) if pd.notna(rho) and abs(rho) >= MIN_DIRECTION_CORRELATION else 0
    return out


def fit_model(
    parts: dict[str, pd.DataFrame],
    catalog_doc: dict,
    params: TrainParams,
    windows: Windows,
    strides: dict[str, int] | None = None,
) -> ChurnModel:
    """``train_model`` with the catalogue fingerprint taken from the catalogue."""
    return train_model(parts, catalog_doc, catalogue_hash(catalog_doc), params, windows, strides)
