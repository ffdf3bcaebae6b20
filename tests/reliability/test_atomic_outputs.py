"""A failed or interrupted stage leaves the previous outputs exactly as they were; a rerun completes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from tests.conftest import BIN, ROOT

PARAMS = ROOT / "params.yaml"


def _snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


def _ingest(in_tmp: Path, export: Path):
    return CliRunner().invoke(app, ["ingest", "--export", str(export), "--out", str(in_tmp / "interim")])


def test_a_failed_ingest_leaves_interim_and_the_report_byte_identical(in_tmp, export_copy):
    assert _ingest(in_tmp, export_copy).exit_code == 0
    before = _snapshot(in_tmp / "interim", in_tmp / "reports")
    (export_copy / "usage_events.parquet").write_bytes(b"not parquet")
    assert _ingest(in_tmp, export_copy).exit_code == 2
    assert _snapshot(in_tmp / "interim", in_tmp / "reports") == before
    assert sorted(p.name for p in in_tmp.iterdir()) == ["export", "interim", "reports"]  # no staging left


@pytest.mark.slow
def test_an_ingest_killed_mid_stage_reruns_to_the_same_outputs(tmp_path, small_export):
    env = {**os.environ, "CHURN_PARAMS": str(PARAMS), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(BIN / "churn"), "ingest", "--export", str(small_export), "--out", "interim"]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for folder in (clean, killed):
        folder.mkdir()
    subprocess.run(cmd, cwd=clean, env=env, check=True, capture_output=True)
    process = subprocess.Popen(cmd, cwd=killed, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any(killed.glob(".interim.staging-*/*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "reports" / "ingest.json").exists()  # killed while staging: nothing published
    assert not (killed / "interim").exists()
    subprocess.run(cmd, cwd=killed, env=env, check=True, capture_output=True)
    strip = lambda snap, root: {k.removeprefix(str(root)): v for k, v in snap.items()}  # noqa: E731
    assert strip(_snapshot(killed / "interim"), killed) == strip(_snapshot(clean / "interim"), clean)
    assert not list(killed.glob(".interim.*"))


@pytest.mark.slow
def test_features_interrupted_by_sigint_keeps_the_previous_table(tmp_path, small_export, monkeypatch):
    env = {**os.environ, "CHURN_PARAMS": str(PARAMS), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        [str(BIN / "churn"), "ingest", "--export", str(small_export)],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    features = [str(BIN / "churn"), "features"]
    subprocess.run(features, cwd=tmp_path, env=env, check=True, capture_output=True)
    before = _snapshot(tmp_path / "data" / "processed")
    process = subprocess.Popen(
        features, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    first = ""
    while "INFO" not in first and process.poll() is None:  # the first log line: inside the stage's guard
        first += process.stdout.readline()
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=120)
    output = first + rest
    assert "Traceback" not in output
    assert _snapshot(tmp_path / "data" / "processed") == before
    subprocess.run(features, cwd=tmp_path, env=env, check=True, capture_output=True)
    assert _snapshot(tmp_path / "data" / "processed") == before
