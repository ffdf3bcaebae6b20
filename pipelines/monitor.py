"""`monitor` stage and `churn monitor`: this week's drift and last quarter's lists judged (``models.monitoring``).

Thin: read this week's list, its input checks and explanations, the feature table and the
models' test windows; kept lists (``reports/history``) whose horizon is now observed are
judged against the contracts. A new installation has no kept list yet, so the backtest's
replayed weeks (fitted on labels observed before each of them) are written there first,
marked as such. Writes reports/monitoring.json, two DVC plots and one MLflow run; prints the
judged lists as a table.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.catalogue import Catalogue
from features.duck import read_frame
from features.errors import InputError
from features.snapshots import build_grid
from models import monitoring, scoring, tracking
from models.train import ChurnModel
from pipelines.canonical import read_export_date, read_feature_table, read_owners
from pipelines.config import Settings, settings
from pipelines.io import write_csv, write_json
from pipelines.logs import timed

LOG = logging.getLogger("churn.monitor")
TEST_PREDICTIONS = "test_predictions.parquet"
BACKTEST = "backtest"  # the model_version prefix of a list re-created from the backtest's replay


def read_csv_or_fail(path: Path, what: str) -> pd.DataFrame:
    if not path.exists():
        raise InputError(f"{path}: {what} not found; run `dvc repro score` first")
    return pd.read_csv(path, dtype={"account_id": "string", "owner": "string"})


# ---------------------------------------------------------------- drift


def current_features(explanations: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """This week's feature values by account from the score stage's explanations (long: one row per feature)."""
    values = explanations.pivot(index="account_id", columns="feature", values="value")
    if categorical:
        text = explanations[explanations["feature"].isin(categorical)]
        values[categorical] = text.pivot(index="account_id", columns="feature", values="value_text").replace("", pd.NA)
    return values


def read_test_window(horizon_dir: Path) -> pd.DataFrame:
    """The 90-day model's test rows at training (keys, label, its probability): drift's reference and the judged lists' yardstick.

    The 90-day model's, whichever model ranks: its windows are weeks of snapshots, while the
    renewal model's test window gathers terms ending late, with snapshots back to the export's start.
    """
    path = horizon_dir / TEST_PREDICTIONS
    if not path.exists():
        raise InputError(f"{path}: the model's test predictions are missing; run `dvc repro train`")
    test = pd.read_parquet(path, columns=["account_id", "snapshot_date", "label", "p_model"])
    test["account_id"] = test["account_id"].astype("string")
    return test


def reference_rows(frame: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """The feature rows of the test window: the most recent weeks with observed outcomes."""
    return frame.merge(test[["account_id", "snapshot_date"]], on=["account_id", "snapshot_date"], how="inner")


def this_week_drift(
    s: Settings, frame: pd.DataFrame, catalog: dict, at_risk: pd.DataFrame, test: pd.DataFrame
) -> tuple[dict, pd.DataFrame]:
    """Feature and score drift of this week's list against the ranking model's test window."""
    ranking_dir = s.paths.renewal_model if s.score.rank_by == "renewal" else s.paths.models
    model = ChurnModel.load(ranking_dir)
    catalogue = Catalogue.from_json(catalog).only(model.features)
    explanations = pd.read_parquet(s.paths.reports / "explanations.parquet")
    explanations["account_id"] = explanations["account_id"].astype("string")
    current = current_features(explanations, [f for f in catalogue.categorical if f in model.features])
    reference = reference_rows(frame, test)
    titles = {spec.name: spec.label for spec in catalogue.specs}
    d = s.monitor.drift
    drift = monitoring.feature_drift(reference, current, titles, d.bins)
    probability = "renewal_risk" if s.score.rank_by == "renewal" else "churn_probability"
    expected = pd.Series(model.predict_proba(reference))  # the ranking model on the same reference rows
    score = monitoring.score_distribution(at_risk[probability].dropna(), expected, d.bins)
    flagged = monitoring.drifted(drift, d.max_psi, d.max_missing_change)
    warnings = [monitoring.drift_line(flagged, d.top)] if len(flagged) else []
    if score["psi"] > d.max_psi:
        warnings.append(
            f"the {probability.replace('_', ' ')} distribution drifted from the test window's (PSI {score['psi']:.2f})"
        )
    doc = {
        "reference": {
            "model": str(ranking_dir),
            "rows": int(len(reference)),
            "first": str(reference["snapshot_date"].min().date()),
            "last": str(reference["snapshot_date"].max().date()),
        },
        "accounts": int(len(current)),
        "max_psi": float(drift["psi"].max()) if len(drift) else float("nan"),
        "score": score,
        "features": drift.round(4).to_dict(orient="records"),
        "drifted": flagged["feature"].tolist(),
        "warnings": warnings,
    }
    return doc, drift


# ---------------------------------------------------------------- history


def history_path(s: Settings, as_of: dt.date) -> Path:
    return s.paths.history / f"at_risk_{as_of.isoformat()}.csv"


def backfill_history(s: Settings, frame: pd.DataFrame, catalog: dict, owners: pd.Series) -> int:
    """Write the backtest's replayed weeks as kept lists where no list was kept: a history from day one."""
    path = s.paths.reports / "backtest_weeks.parquet"
    if not path.exists():
        return 0
    weeks = pd.read_parquet(path)
    arr_column = Catalogue.from_json(catalog).arr
    arr = frame.set_index(["account_id", "snapshot_date"])[arr_column] if arr_column else None
    first = weeks["snapshot_date"].min().date()
    written = 0
    for snapshot, week in weeks.groupby("snapshot_date", sort=True):
        as_of = snapshot.date()
        target = history_path(s, as_of)
        if target.exists():
            continue
        write_csv(replayed_list(week, as_of, first, owners, arr, s), target)
        written += 1
    return written


def replayed_list(
    week: pd.DataFrame, as_of: dt.date, first: dt.date, owners: pd.Series, arr: pd.Series | None, s: Settings
) -> pd.DataFrame:
    """One backtest week in the kept list's columns, ranked and tiered as the weekly list is."""
    ids = week["account_id"].astype("string")
    score = "score_renewal" if s.score.rank_by == "renewal" else "score_horizon"
    probability = week["renewal_risk"] if s.score.rank_by == "renewal" else week["churn_probability"]
    out = pd.DataFrame(
        {
            "as_of": as_of.isoformat(),
            "account_id": ids.to_numpy(),
            "owner": owners.reindex(ids).to_numpy(),
            "arr": arr.reindex(list(zip(week["account_id"], week["snapshot_date"]))).to_numpy()
            if arr is not None
            else np.nan,
            "renewal_risk": week["renewal_risk"].round(4).to_numpy(),
            "churn_probability": week["churn_probability"].round(4).to_numpy(),
            "risk_tier": scoring.risk_tier(probability.reset_index(drop=True), s.score.tiers).to_numpy(),
            "score": week[score].to_numpy(),
            "model_version": f"{BACKTEST} (fitted before {first})",
            "data_note": pd.NA,
        }
    )
    out = out.sort_values(["score", "account_id"], ascending=[False, True], kind="stable")
    out["rank"] = np.arange(1, len(out) + 1)
    return out[monitoring.HISTORY_COLUMNS]


def kept_lists(s: Settings) -> list[pd.DataFrame]:
    """Every kept weekly list, oldest first."""
    paths = sorted(s.paths.history.glob("at_risk_*.csv")) if s.paths.history.is_dir() else []
    return [pd.read_csv(p, dtype={"account_id": "string", "owner": "string"}) for p in paths]


def outcomes(
    contracts: pd.DataFrame, dates: list[dt.date], export_date: dt.date, s: Settings
) -> dict[dt.date, pd.Series]:
    """Churn within the horizon after each date (1/0 by account; accounts not yet observed left out)."""
    if not dates:
        return {}
    grid = build_grid(
        contracts,
        pd.DatetimeIndex(sorted(set(dates))),
        s.features.horizon_days,
        s.features.grace_days,
        pd.Timestamp(export_date),
    )
    grid = grid.dropna(subset=["label"])
    return {
        day.date(): part.set_index("account_id")["label"].astype(int) for day, part in grid.groupby("snapshot_date")
    }


def judge_history(s: Settings, contracts: pd.DataFrame, export_date: dt.date, test: pd.DataFrame) -> dict:
    """Each kept list whose horizon is observed, judged; the last ``judged_weeks`` pooled against the test window."""
    lists = kept_lists(s)
    dates = [dt.date.fromisoformat(str(f["as_of"].iloc[0])) for f in lists if len(f)]
    ready = [
        (d, f)
        for d, f in zip(dates, lists)
        if monitoring.matured(d, export_date, s.features.horizon_days, s.features.grace_days)
    ]
    observed = outcomes(contracts, [d for d, _ in ready], export_date, s)
    judged = [
        monitoring.judge_list(f, observed.get(d, pd.Series(dtype=int)), s.backtest.alerts_per_owner) for d, f in ready
    ]
    recent = ready[-s.monitor.judged_weeks :]
    pooled = monitoring.pooled_auc([f for _, f in recent], [observed.get(d, pd.Series(dtype=int)) for d, _ in recent])
    test_auc = float(roc_auc_score(test["label"].astype(int), test["p_model"]))  # the model at training
    line = monitoring.retrain_line(pooled, test_auc, s.monitor.max_auc_drop, len(recent))
    return {
        "kept": len(lists),
        "judged": [j.to_dict() for j in judged],
        "waiting": [d.isoformat() for d in dates if d not in dict(ready)],
        "pooled": {"weeks": len(recent), "roc_auc": pooled, "test_window_roc_auc": test_auc},
        "recommendation": line,
    }


def history_table(judged: list[dict], tiers: list[str]) -> str:
    """The judged lists as a fixed-width table for the terminal."""
    header = f"{'as of':<10}  {'accounts':>8}  {'churned':>7}  {'ROC AUC':>7}  {'alerts':>6}  {'precision':>9}  " + (
        f"{'churned ARR on list':>19}  {'missed':>11}  " + "  ".join(f"{t + ' promised/observed':>24}" for t in tiers)
    )
    lines = [header, "-" * len(header)]
    for j in judged:
        cells = [
            f"{j['as_of']:<10}",
            f"{j['accounts']:>8,}",
            f"{j['churned']:>7,}",
            f"{j['roc_auc']:>7.3f}",
            f"{j['alerts']:>6,}",
            f"{j['alert_precision']:>9.1%}",
            f"{j['churned_arr_alerted']:>19,.0f}",
            f"{j['churned_arr_missed']:>11,.0f}",
        ]
        for t in tiers:
            tier = j["tiers"].get(t)
            cells.append(f"{tier['promised']:>11.1%} / {tier['observed']:<10.1%}" if tier else f"{'-':>24}")
        lines.append("  ".join(cells))
    return "\n".join(lines)


# ---------------------------------------------------------------- the stage


def main(backfill: bool = True) -> None:
    s = settings()
    export_date = read_export_date(s.paths.interim).date
    at_risk = read_csv_or_fail(s.paths.reports / "at_risk.csv", "this week's list")
    checks_path = s.paths.input_checks
    if not checks_path.exists():
        raise InputError(f"{checks_path}: this week's input checks not found; run `dvc repro score` first")
    checks = json.loads(checks_path.read_text())
    frame, catalog = read_feature_table(s.paths.features, s.paths.feature_catalog)
    test = read_test_window(s.paths.models)
    with timed("monitor: drift against the test window"):
        drift_doc, drift = this_week_drift(s, frame, catalog, at_risk, test)
    if backfill:
        written = backfill_history(s, frame, catalog, read_owners(s.paths.interim))
        if written:
            LOG.info(
                "monitor: %d past weekly lists re-created from the backtest's replay in %s", written, s.paths.history
            )
    contracts = read_frame(s.paths.interim / "contracts.parquet")
    with timed("monitor: kept lists judged"):
        history = judge_history(s, contracts, export_date, test)
    warnings = [*checks.get("notes", []), *checks.get("warnings", []), *drift_doc["warnings"]]
    if history["recommendation"]:
        warnings.append(history["recommendation"])
    as_of = str(at_risk["as_of"].iloc[0]) if len(at_risk) else "none"
    doc = {
        "as_of": as_of,
        "export_date": export_date.isoformat(),
        "inputs": checks,
        "drift": drift_doc,
        "history": history,
        "warnings": warnings,
    }
    write_json(doc, s.paths.monitoring)
    write_json(summary(doc), s.paths.monitoring_summary)
    write_csv(drift[["feature", "title", "psi"]].fillna({"psi": 0.0}), s.paths.reports / "plots" / "drift.csv")
    judged = pd.DataFrame(history["judged"], columns=["as_of", "roc_auc", "alert_precision"])
    write_csv(judged, s.paths.reports / "plots" / "judged_lists.csv")
    log_to_mlflow(s, doc)
    for line in warnings:
        LOG.warning(line)
    print(history_table(history["judged"], list(s.score.tiers)))
    pooled = history["pooled"]
    print(
        f"last {pooled['weeks']} judged lists: ROC AUC {pooled['roc_auc']:.3f} against {pooled['test_window_roc_auc']:.3f} "
        f"on the model's test window; {history['recommendation'] or 'no retraining needed'}"
    )
    if not warnings:
        LOG.info("monitor: no warning (inputs fresh, volumes usual, no drift past monitor.drift.max_psi)")


def summary(doc: dict) -> dict:
    """The week's figures in one flat document: what DVC compares from run to run."""
    drift, pooled = doc["drift"], doc["history"]["pooled"]
    return {
        "warnings": len(doc["warnings"]),
        "stale_tables": len(doc["inputs"].get("stale", [])),
        "empty_tables": len(doc["inputs"].get("empty", [])),
        "drift_max_psi": drift["max_psi"],
        "drifted_features": len(drift["drifted"]),
        "score_psi": drift["score"]["psi"],
        "judged_lists": len(doc["history"]["judged"]),
        "judged_roc_auc": pooled["roc_auc"],
        "test_window_roc_auc": pooled["test_window_roc_auc"],
    }


def log_to_mlflow(s: Settings, doc: dict) -> None:
    """The week's checks as one MLflow run: stale tables allowed, drift and the judged lists' figures."""
    drift, pooled = doc["drift"], doc["history"]["pooled"]
    params = {
        "as_of": doc["as_of"],
        "allowed_stale": ",".join(doc["inputs"].get("allowed", [])) or "none",
        "stale": ",".join(doc["inputs"].get("stale", [])) or "none",
        "warnings": str(len(doc["warnings"])),
    }
    metrics = {
        "drift_max_psi": drift["max_psi"],
        "score_psi": drift["score"]["psi"],
        "judged_lists": float(len(doc["history"]["judged"])),
        "judged_roc_auc": pooled["roc_auc"],
        "test_window_roc_auc": pooled["test_window_roc_auc"],
        **{f"psi.{f['feature']}": f["psi"] for f in drift["features"] if f["psi"] == f["psi"]},
    }
    tracking.log_monitoring_run(
        tracking.resolve_tracking_uri(s.paths.mlflow_db),
        s.train.experiment,
        doc["as_of"],
        params,
        metrics,
        [s.paths.monitoring],
    )
