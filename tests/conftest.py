"""Shared fixtures: the project copied into a temporary git clone, and one pipeline run on the demo.

The demo run is session-scoped: `dvc repro` runs once on the default demo export in a
temporary copy of the working tree, and the end-to-end, quality, fidelity and notebook
tests all read its outputs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PARAMS = ROOT / "params.yaml"


def project_files() -> list[str]:
    """Files git tracks or would track (the working tree as a fresh clone would have it)."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [line for line in out.stdout.splitlines() if (ROOT / line).is_file()]


def make_clone(dest: Path) -> Path:
    """Copy the working tree into ``dest`` and commit it, like a fresh clone of this tree."""
    for name in project_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "clone"]):
        subprocess.run(cmd, cwd=dest, check=True, env=env, capture_output=True)
    return dest


def run(
    cmd: list[str], cwd: Path, check: bool = True, env: dict | None = None, timeout: int = 1200
) -> subprocess.CompletedProcess:
    """Run a command with the project's venv first on PATH and no inherited MLflow server."""
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    full_env.update(env or {})
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        )
    return result


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """A temporary clone of the project after a full `dvc repro` on the default demo."""
    clone = make_clone(tmp_path_factory.mktemp("clone"))
    result = run(["dvc", "repro"], cwd=clone)
    (clone / "repro.log").write_text(result.stdout + result.stderr)
    return clone


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run stages from tmp_path (reports/ lands there) with the project's params."""
    from pipelines.config import settings

    monkeypatch.setenv("CHURN_PARAMS", str(PARAMS))
    monkeypatch.chdir(tmp_path)
    settings.cache_clear()
    yield tmp_path
    settings.cache_clear()
