"""An export whose history is not the demo's: the first snapshot and the windows follow the data.

A 300-account demo book simulated over 2022-01-01..2024-06-30 (the default demo runs
2024-04..2026-11) goes through ingest, features and train with the project's params.yaml,
only the demo calendar and the paths changed: nothing else is fitted to the demo's dates.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run

pytestmark = pytest.mark.slow

START, END = dt.date(2022, 1, 1), dt.date(2024, 6, 30)
STAGES = (["ingest"], ["features"], ["train"])


def _params(tmp: Path, name: str = "params.yaml", **train) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["paths"]["playbook"] = str(ROOT / params["paths"]["playbook"])
    params["demo"].update({"start": START.isoformat(), "end": END.isoformat()})
    params["data"].update(export_dir=str(tmp / "export"), preset="canonical")
    params["train"].update(train)
    path = tmp / name
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="module")
def shifted_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shifted")
    env = {"CHURN_PARAMS": str(_params(tmp))}
    book = ["churn", "demo-data", "--accounts", "300", "--out", str(tmp / "export"), "--truth", str(tmp / "truth")]
    run(book, cwd=tmp, env=env)
    logs = {stage[0]: run(["churn", *stage], cwd=tmp, env=env) for stage in STAGES}
    return tmp, {name: r.stdout + r.stderr for name, r in logs.items()}


def test_the_first_snapshot_is_a_full_look_back_into_this_export_s_history(shifted_run):
    tmp, logs = shifted_run
    snapshots = json.loads((tmp / "data" / "processed" / "feature_catalog.json").read_text())["snapshots"]
    history = snapshots["first_snapshot_choice"]["history"]
    start, first = dt.date.fromisoformat(history["start"]), dt.date.fromisoformat(snapshots["first_snapshot"])
    assert START <= start <= START + dt.timedelta(days=6)  # the simulated history starts on 2022-01-01
    assert first.weekday() == 0 and 120 <= (first - start).days < 127
    assert first == dt.date(2022, 5, 9)
    assert f"features: first snapshot {first} (auto: history from {start}" in logs["features"]


def test_train_picks_its_windows_inside_this_history(shifted_run):
    tmp, logs = shifted_run
    windows = json.loads((tmp / "data" / "models" / "metadata.json").read_text())["windows"]
    w = {k: dt.date.fromisoformat(v) for k, v in windows.items() if k != "rule"}
    assert windows["rule"] == "auto"
    # labels are known up to the export's end minus horizon + grace; test is the last 13 of those weeks
    assert w["test_end"] <= END - dt.timedelta(days=120) < w["test_end"] + dt.timedelta(days=7)
    assert (w["test_end"] - w["test_start"]).days == 12 * 7 and (w["valid_end"] - w["valid_start"]).days == 12 * 7
    assert (w["valid_start"] - w["train_end"]).days >= 120 and (w["test_start"] - w["valid_end"]).days >= 120
    assert w["train_start"] == dt.date(2022, 5, 9) and (w["train_end"] - w["train_start"]).days >= 25 * 7
    lines = [line for line in logs["train"].splitlines() if "train: windows (auto" in line]
    assert len(lines) == 1 and f"test {w['test_start']}..{w['test_end']}" in lines[0]
    with sqlite3.connect(tmp / "mlflow.db") as con:
        params = dict(con.execute("SELECT key, value FROM params"))
    assert params["windows.test_start"] == w["test_start"].isoformat()
    assert params["train.windows"] == "auto" and params["train.window_weeks.test"] == "13"
    metrics = json.loads((tmp / "data" / "models" / "evaluation.json").read_text())["test"]["model"]
    assert metrics["roc_auc"] > 0.8, metrics


def test_too_short_a_history_for_the_asked_sizes_is_one_line(shifted_run):
    tmp, _ = shifted_run
    params = _params(tmp, "too_long.yaml", window_weeks={"test": 13, "valid": 13, "min_train": 200, "min_outcomes": 0})
    result = run(["churn", "train"], cwd=tmp, env={"CHURN_PARAMS": str(params)}, check=False)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: features.parquet: 95 fully labelled weeks (2022-05-09 to 2024-02-26), ")
    assert "train.windows auto needs 260" in error and "Traceback" not in result.stderr
