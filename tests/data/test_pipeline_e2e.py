"""End to end: `dvc repro` on the demo, weekly scoring from each preset with the registry champion."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from features.schemas import TABLES
from models.explain import NO_WARNING_SIGN
from models.scoring import CSV_COLUMNS
from tests.conftest import make_clone, run

pytestmark = pytest.mark.slow


def test_repro_writes_every_canonical_table_and_accounts_for_every_row(demo_run):
    report = json.loads((demo_run / "reports/ingest.json").read_text())
    for name in TABLES:
        assert (demo_run / f"data/interim/{name}.parquet").exists(), name
        t = report["tables"][name]
        rejected = sum(t["rows_rejected"].values())
        filtered = sum(t["rows_filtered"].values())
        assert t["rows_read"] == t["rows_kept"] + rejected + filtered
        assert len(pd.read_parquet(demo_run / f"data/interim/{name}.parquet")) == t["rows_kept"]


def test_second_repro_does_nothing_and_status_is_clean(demo_run):
    again = run(["dvc", "repro"], cwd=demo_run)
    assert "Stage 'train' didn't change" in again.stdout or "didn't change" in again.stdout
    assert "Running stage" not in again.stdout
    status = run(["dvc", "status"], cwd=demo_run)
    assert "changed" not in status.stdout, status.stdout


def test_bytecode_caches_and_runtime_settings_change_no_stage(demo_run):
    """Running Python writes __pycache__ into the dependency folders; tuning runtime: reruns nothing."""
    env = {"PYTHONDONTWRITEBYTECODE": ""}
    modules = "import features.build, models.scoring, pipelines.ingestion.pipeline, pipelines.score"
    run(["python", "-c", f"import sys; sys.dont_write_bytecode = False; {modules}"], cwd=demo_run, env=env)
    assert any((demo_run / "features").glob("__pycache__/*.pyc")), "the check needs bytecode caches to exist"
    params = demo_run / "params.yaml"
    original = params.read_text()
    try:
        params.write_text(original.replace("chunk_rows: 500000", "chunk_rows: 123456").replace("workers: 2", "workers: 1"))
        status = run(["dvc", "status"], cwd=demo_run)
        assert "changed" not in status.stdout, status.stdout
    finally:
        params.write_text(original)


def test_at_risk_csv_has_the_documented_columns_sorted_by_arr_at_risk_at_renewal(demo_run):
    frame = pd.read_csv(demo_run / "reports/at_risk.csv")
    assert list(frame.columns) == CSV_COLUMNS
    assert frame["arr_at_risk_at_renewal"].is_monotonic_decreasing  # score.rank_by: renewal
    assert (frame["rank"].to_numpy() == np.arange(1, len(frame) + 1)).all()
    assert frame["churn_probability"].between(0, 1).all() and frame["renewal_risk"].between(0, 1).all()
    # every account has a first reason: a behavioural signal, or a plain "no warning sign"; never a date
    assert frame["reason_1"].notna().all()
    assert not frame["reason_1"].str.startswith("The current contract ends in").any()
    signs = frame["reason_1"] != NO_WARNING_SIGN
    assert signs.head(100).mean() > 0.8 and signs.mean() > 0.85
    assert (frame["play_1"].notna() == signs).all()
    # the list warns months ahead: most of the top 100 renew in more than 90 days
    assert (frame.head(100)["days_to_renewal"] > 90).mean() > 0.5
    params = yaml.safe_load((demo_run / "params.yaml").read_text())["score"]["tiers"]
    high = frame[frame["risk_tier"] == "high"]["renewal_risk"]
    assert (high >= params["high"]).all()
    figures = sorted(p.name for p in (demo_run / "reports/figures").glob("*.png"))
    assert "shap_summary.png" in figures and len([f for f in figures if f.startswith("waterfall_")]) == 10
    print("\n" + "\n".join((demo_run / "reports/at_risk.csv").read_text().splitlines()[:6]))


def test_metrics_and_plots_are_wired_into_dvc(demo_run):
    shown = run(["dvc", "metrics", "show", "--json"], cwd=demo_run)
    doc = json.loads(shown.stdout)
    text = json.dumps(doc)
    for key in ('"model"', '"logistic"', '"health"', '"roc_auc"', '"rows_read"'):
        assert key in text
    # only the ingest report's totals are metrics: no per-table file names or counts in experiment tables
    assert "reports/ingest_totals.json" in text and "reports/ingest.json" not in text
    plots = run(["dvc", "plots", "show", "--json"], cwd=demo_run)
    assert "roc.csv" in plots.stdout and "calibration.csv" in plots.stdout


def test_explain_prints_reasons_and_plays_and_writes_the_waterfall(demo_run):
    top = pd.read_csv(demo_run / "reports/at_risk.csv")["account_id"].iloc[0]
    result = run(["churn", "explain", top], cwd=demo_run)
    assert top in result.stdout and "churn probability" in result.stdout and "play:" in result.stdout
    assert (demo_run / f"reports/figures/waterfall_{top}.png").stat().st_size > 1000


@pytest.fixture(scope="module")
def small_export(demo_run, tmp_path_factory) -> Path:
    """The demo export restricted to 300 accounts: weekly scoring checks need no more."""
    out = tmp_path_factory.mktemp("small_export")
    raw = demo_run / "data/raw/demo"
    accounts = pd.read_csv(raw / "accounts.csv", dtype=str)
    keep = set(accounts["account_id"].head(300))
    for path in raw.iterdir():
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            frame[frame["account_id"].isin(keep)].to_parquet(out / path.name, index=False)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame[frame["account_id"].isin(keep)].to_csv(out / path.name, index=False)
    return out


def _score(demo_run: Path, export: Path, preset: str, as_of: str, out: Path, model: str | None = None) -> pd.DataFrame:
    cmd = ["churn", "score", "--export", str(export), "--preset", preset, "--as-of", as_of, "--out", str(out)]
    run(cmd + (["--model", model] if model else []), cwd=demo_run)
    return pd.read_csv(out)


@pytest.mark.parametrize("preset", ["salesforce", "hubspot"])
def test_weekly_score_from_a_preset_export_with_the_champion_matches_the_canonical_one(demo_run, small_export, tmp_path, preset):
    from pipelines.demo.shapes import write_export_shape

    shaped = tmp_path / preset
    write_export_shape(small_export, shaped, preset)
    as_of = pd.read_csv(demo_run / "reports/at_risk.csv")["as_of"].iloc[0]
    champion = "models:/churn-lgbm-demo@champion"  # the demo source's lineage (data.source: auto)
    canonical = _score(demo_run, small_export, "canonical", as_of, tmp_path / "canonical.csv", champion)
    weekly = _score(demo_run, shaped, preset, as_of, tmp_path / "weekly.csv", champion)
    assert len(weekly) == len(canonical) > 150
    merged = canonical.merge(weekly, on="account_id", suffixes=("", "_weekly"))
    assert len(merged) == len(canonical)
    assert (merged["churn_probability"] - merged["churn_probability_weekly"]).abs().max() < 1e-4
    run_info = json.loads((demo_run / "data/models/mlflow_run.json").read_text())
    assert (weekly["model_version"] == f"churn-lgbm-demo/{run_info['version']}").all()


def test_scoring_at_t_ignores_rows_dated_t_or_later(demo_run, small_export, tmp_path):
    """Leakage through `churn score`: cutting the export at T changes nothing in the scores at T."""
    as_of = dt.date(2026, 9, 14)
    cut = tmp_path / "cut"
    cut.mkdir()
    limits = {"emails": "sent_at", "meetings": "start_at", "tickets": "created_at", "surveys": "sent_at", "usage_events": "event_at"}
    for path in small_export.iterdir():
        table = path.name.split(".")[0]
        if table not in limits:
            shutil.copy(path, cut / path.name)
            continue
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)
        when = pd.to_datetime(frame[limits[table]], utc=True, format="mixed")
        kept = frame[when < pd.Timestamp(as_of, tz="UTC")]
        assert len(kept) < len(frame), table  # the cut really removes rows
        if path.suffix == ".parquet":
            kept.to_parquet(cut / path.name, index=False)
        else:
            kept.to_csv(cut / path.name, index=False, quoting=csv.QUOTE_MINIMAL)
    full = _score(demo_run, small_export, "canonical", as_of.isoformat(), tmp_path / "full.csv")
    partial = _score(demo_run, cut, "canonical", as_of.isoformat(), tmp_path / "partial.csv")
    pd.testing.assert_frame_equal(full, partial)


def test_dvc_repro_builds_features_from_salesforce_and_hubspot_exports(tmp_path):
    from pipelines.demo.shapes import write_export_shape

    clone = make_clone(tmp_path / "clone")
    run(["churn", "demo-data", "--accounts", "250", "--out", "data/raw/small", "--truth", str(tmp_path / "truth")], cwd=clone)
    for preset in ("salesforce", "hubspot"):
        write_export_shape(clone / "data/raw/small", clone / f"data/raw/{preset}", preset)
        params = yaml.safe_load((clone / "params.yaml").read_text())
        params["data"].update(export_dir=f"data/raw/{preset}", preset=preset)
        (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run(["dvc", "repro", "features"], cwd=clone)
        features = pd.read_parquet(clone / "data/processed/features.parquet")
        catalog = json.loads((clone / "data/processed/feature_catalog.json").read_text())
        assert features["account_id"].nunique() > 200
        assert catalog["dropped_families"] == {}, preset
        assert "reply_latency_median_hours_90d" in features and features["reply_latency_median_hours_90d"].notna().any()
        assert "qbr_since_last_days" in features and features["qbr_since_last_days"].notna().any()


def test_backtest_replays_at_least_26_weeks_and_the_renewal_ranking_alerts_more_precisely_than_the_calendar(demo_run):
    """Lead-time targets on the demo: printed; the test asserts the ordering of alert precision, not the figures."""
    doc = json.loads((demo_run / "reports/backtest.json").read_text())
    replay, rankings = doc["replay"], doc["rankings"]
    assert replay["weeks"] >= 26 and replay["churned_accounts"] > 0
    assert set(rankings) == {"renewal", "horizon", "calendar", "health"}
    lines = [f"replay {replay['first_as_of']}..{replay['last_as_of']}, {replay['churned_accounts']} churned accounts"]
    for name, r in rankings.items():
        assert r["alerts_per_owner_week"] <= 5
        lines.append(f"{name:9s} " + ", ".join(f"{k} {v}" for k, v in r.items()))
    print("\n" + "\n".join(lines))
    assert rankings["renewal"]["alert_precision"] > rankings["calendar"]["alert_precision"]
    curve = pd.read_csv(demo_run / "reports/plots/lead_time.csv")
    assert set(curve["ranking"]) == set(rankings)
    for _, part in curve.groupby("ranking"):
        assert part["share_of_churned_arr_alerted"].is_monotonic_decreasing
