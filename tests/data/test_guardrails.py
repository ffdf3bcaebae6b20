"""Injected faults on the demo run: each gives its stated outcome (issue: guardrails for the weekly run).

The demo run's outputs are never changed: each fault is made on a copy of its canonical tables
or reports, pointed at by a params file of its own (``CHURN_PARAMS``).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from features.catalogue import Catalogue
from features.freshness import last_complete_week
from tests.conftest import run

pytestmark = pytest.mark.slow


def export_date(demo_run: Path) -> dt.date:
    return dt.date.fromisoformat(json.loads((demo_run / "data/interim/export.json").read_text())["export_date"]["date"])


def params_with(demo_run: Path, tmp: Path, **paths: Path) -> Path:
    params = yaml.safe_load((demo_run / "params.yaml").read_text())
    params["paths"].update({key: str(value) for key, value in paths.items()})
    target = tmp / "params.yaml"
    target.write_text(yaml.safe_dump(params, sort_keys=False))
    return target


def faulty_interim(demo_run: Path, tmp: Path, table: str, keep: Callable[[pd.DataFrame], pd.Series]) -> Path:
    """A copy of the demo's canonical tables with ``table`` cut to the rows ``keep`` says; its params file."""
    interim = tmp / "interim"
    shutil.copytree(demo_run / "data/interim", interim)
    frame = pd.read_parquet(interim / f"{table}.parquet")
    frame[keep(frame)].to_parquet(interim / f"{table}.parquet", index=False)
    return params_with(demo_run, tmp, interim=interim, reports=tmp / "reports")


def score(demo_run: Path, params: Path, out: Path, *args: str):
    return run(
        ["churn", "score", "--out", str(out), *args], cwd=demo_run, env={"CHURN_PARAMS": str(params)}, check=False
    )


def error_line(result) -> str:
    return result.stderr.strip().splitlines()[-1]


def at_risk_tiers(frame: pd.DataFrame) -> tuple[int, float]:
    return int(frame["risk_tier"].isin(["high", "medium"]).sum()), float(frame["expected_arr_at_risk"].sum())


def test_usage_cut_21_days_early_stops_the_list_and_allowed_it_is_read_as_of_its_last_row(demo_run, tmp_path):
    end = export_date(demo_run)
    last = end - dt.timedelta(days=21)
    cut = pd.Timestamp(last + dt.timedelta(days=1), tz="UTC")
    params = faulty_interim(demo_run, tmp_path, "usage_events", lambda f: f["event_at"] < cut)

    stopped = score(demo_run, params, tmp_path / "stopped.csv")
    assert stopped.returncode == 2
    line = error_line(stopped)
    assert line.startswith(f"error: usage_events: last row on {last}, 21 days before the export date")
    assert "churn score --allow-stale usage_events" in line
    assert not (tmp_path / "stopped.csv").exists()

    allowed = score(demo_run, params, tmp_path / "allowed.csv", "--allow-stale", "usage_events")
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    listed = pd.read_csv(tmp_path / "allowed.csv")
    assert listed["data_note"].str.contains(f"usage_events: last row on {last}").all()
    assert listed["data_note"].str.contains(f"its features as of {last + dt.timedelta(days=1)}").all()
    clean = pd.read_csv(demo_run / "reports/at_risk.csv")
    assert clean["data_note"].isna().all()
    assert set(listed["account_id"]) == set(clean["account_id"])
    (flagged, arr), (flagged_clean, arr_clean) = at_risk_tiers(listed), at_risk_tiers(clean)
    # read as no use at all, the cut more than doubled the high and medium tiers (120 -> 369 on the demo)
    assert flagged <= 1.3 * flagged_clean and abs(arr / arr_clean - 1) < 0.1


def test_emails_missing_for_the_last_complete_week_stop_the_list(demo_run, tmp_path):
    monday = last_complete_week(export_date(demo_run))
    start = pd.Timestamp(monday, tz="UTC")
    params = faulty_interim(
        demo_run,
        tmp_path,
        "emails",
        lambda f: (f["sent_at"] < start) | (f["sent_at"] >= start + pd.Timedelta(days=7)),
    )
    stopped = score(demo_run, params, tmp_path / "list.csv")
    assert stopped.returncode == 2
    line = error_line(stopped)
    assert line.startswith(f"error: emails: 0 rows in the week {monday} to {monday + dt.timedelta(days=6)}")
    assert "no row at all" in line and "--allow-stale emails" in line


@pytest.fixture(scope="module")
def monitored(demo_run, tmp_path_factory) -> dict:
    """`churn monitor` on a copy of the demo's reports: one feature shifted by two standard deviations,
    and two hand-made kept lists, one whose horizon has matured and one still waiting."""
    tmp = tmp_path_factory.mktemp("monitored")
    reports = tmp / "reports"
    shutil.copytree(demo_run / "reports", reports, ignore=shutil.ignore_patterns("history", "figures"))
    explanations = pd.read_parquet(reports / "explanations.parquet")
    catalog = json.loads((demo_run / "data/processed/feature_catalog.json").read_text())
    labels = {f["name"]: f["label"] for f in catalog["features"]}
    numeric = explanations.dropna(subset=["value"]).groupby("feature")["value"].agg(["std", "nunique"])
    feature = "tenure_length_days" if "tenure_length_days" in numeric.index else numeric["nunique"].idxmax()
    rows = explanations["feature"] == feature
    explanations.loc[rows, "value"] += 2 * numeric.loc[feature, "std"]
    explanations.to_parquet(reports / "explanations.parquet", index=False)

    arr = Catalogue.from_json(catalog).arr
    features = pd.read_parquet(
        demo_run / "data/processed/features.parquet", columns=["account_id", "snapshot_date", "label", arr]
    ).rename(columns={arr: "arr"})
    end = export_date(demo_run)
    dates = features["snapshot_date"].drop_duplicates()
    matured_day = dates[dates + pd.Timedelta(days=120) <= pd.Timestamp(end)].max()  # horizon + grace observed
    week = features[features["snapshot_date"] == matured_day].reset_index(drop=True)
    rng = np.random.default_rng(0)
    made = pd.DataFrame(
        {
            "as_of": matured_day.date().isoformat(),
            "account_id": week["account_id"],
            "owner": "one owner",
            "arr": week["arr"],
            "renewal_risk": rng.uniform(size=len(week)).round(4),
            "churn_probability": (0.5 * week["label"].astype(float) + 0.6 * rng.uniform(size=len(week)))
            .clip(0, 1)
            .round(4),
            "risk_tier": "low",
            "rank": np.arange(1, len(week) + 1),
            "model_version": "hand-made",
            "data_note": pd.NA,
        }
    )
    history = reports / "history"
    history.mkdir()
    made.to_csv(history / f"at_risk_{matured_day.date()}.csv", index=False)
    waiting = end - dt.timedelta(days=10)
    made.assign(as_of=waiting.isoformat()).to_csv(history / f"at_risk_{waiting}.csv", index=False)

    params = params_with(demo_run, tmp, reports=reports)
    env = {"CHURN_PARAMS": str(params), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"}
    result = run(["churn", "monitor", "--no-backfill"], cwd=demo_run, env=env)
    return {
        "doc": json.loads((reports / "monitoring.json").read_text()),
        "feature": feature,
        "label": labels[feature],
        "made": made.assign(label=week["label"].astype(int)),
        "waiting": waiting,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "mlflow": tmp / "mlflow.db",
    }


def test_a_feature_shifted_by_two_standard_deviations_is_named_in_the_catalogues_words(monitored):
    doc, label = monitored["doc"], monitored["label"]
    drift = {f["feature"]: f for f in doc["drift"]["features"]}
    assert drift[monitored["feature"]]["psi"] > 0.25
    assert all(f["psi"] < 0.25 for name, f in drift.items() if name != monitored["feature"])
    warning = next(w for w in doc["warnings"] if "drifted from the model's test window" in w)
    assert warning.startswith("1 feature(s) drifted") and f"{label} (PSI" in warning
    assert f"{label} (PSI" in monitored["stderr"]


def test_a_past_list_whose_horizon_has_matured_is_judged_on_what_happened(monitored):
    made = monitored["made"]
    judged = {j["as_of"]: j for j in monitored["doc"]["history"]["judged"]}
    assert list(judged) == [made["as_of"].iloc[0]]  # the list 10 days old is still waiting
    j = judged[made["as_of"].iloc[0]]
    assert monitored["doc"]["history"]["waiting"] == [monitored["waiting"].isoformat()]
    assert j["accounts"] == len(made) and j["churned"] == int(made["label"].sum())
    assert j["roc_auc"] == pytest.approx(roc_auc_score(made["label"], made["churn_probability"]))
    alerted = made.head(5)  # one owner, the five best-ranked accounts (backtest.alerts_per_owner)
    assert j["alerts"] == 5 and j["alert_precision"] == pytest.approx(alerted["label"].mean())
    churned_arr = made.loc[made["label"] == 1, "arr"].sum()
    assert j["churned_arr_alerted"] + j["churned_arr_missed"] == pytest.approx(churned_arr)
    assert j["tiers"]["low"]["promised"] == pytest.approx(made["churn_probability"].mean())
    assert made["as_of"].iloc[0] in monitored["stdout"]


def test_the_demos_weekly_run_writes_monitoring_with_no_warning_and_judges_at_least_13_lists(demo_run):
    doc = json.loads((demo_run / "reports/monitoring.json").read_text())
    assert doc["warnings"] == []
    assert doc["inputs"]["stale"] == [] and doc["inputs"]["empty"] == []
    assert len(doc["history"]["judged"]) >= 13 and doc["history"]["pooled"]["weeks"] == 13
    assert doc["history"]["recommendation"] is None
    log = (demo_run / "repro.log").read_text()
    table = [line for line in log.splitlines() if line[:4].isdigit() and line[4] == "-" and "%" in line]
    assert len(table) >= 13
    assert "last 13 judged lists: ROC AUC" in log and "no retraining needed" in log
    kept = sorted((demo_run / "reports/history").glob("at_risk_*.csv"))
    as_of = pd.read_csv(demo_run / "reports/at_risk.csv")["as_of"].iloc[0]
    assert (demo_run / f"reports/history/at_risk_{as_of}.csv") in kept
