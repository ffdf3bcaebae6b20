"""Shared fixtures: the project copied into a temporary git clone, and one pipeline run on the demo.

The demo run is session-scoped: `dvc repro` runs once on the default demo export in a
temporary copy of the working tree, and the end-to-end, quality, fidelity and notebook
tests all read its outputs.

Two guards apply to every test: each test gets its own MLflow store (``mlflow_store``), and
in the fast lane (``-m "not slow"``, i.e. ``make test-fast``) starting a process fails the
test (``no_processes_in_the_fast_lane``): whatever starts one is end-to-end and belongs in the
slow lane.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PARAMS = ROOT / "params.yaml"
FAST_LANE = "fast lane: tests that start processes must be marked slow"
# Tools that code under test only probes for and does without: models.tracking.git_commit() runs
# `git rev-parse` and records "unknown" when git cannot start; importing mlflow calls
# platform.platform(), which runs `uname -p` and falls back to ""; MLflow (through GitPython) and
# matplotlib (fc-list) probe the same way. In the fast lane these get ProcessRefused, an OSError
# (FileNotFoundError, as if the tool were not installed), so the callers take their fallback and no
# process starts. Any other command fails the test outright.
PROBED_TOOLS = {"git", "uname", "fc-list"}


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


USAGE_WORLD_ACCOUNTS = 1000


@pytest.fixture(scope="session")
def usage_world_run(tmp_path_factory) -> Path:
    """A temporary clone after `dvc repro evaluate` on the second world (`churn demo-data --world usage`).

    Only ``data.export_dir`` changes: the same params, windows and models as on the CRM demo.
    """
    import yaml

    clone = make_clone(tmp_path_factory.mktemp("usage-world"))
    world = ["--world", "usage", "--accounts", str(USAGE_WORLD_ACCOUNTS)]
    run(["churn", "demo-data", *world, "--out", "data/raw/usage", "--truth", "data/ground_truth/usage"], cwd=clone)
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["data"]["export_dir"] = "data/raw/usage"
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run(["dvc", "repro", "evaluate"], cwd=clone)
    (clone / "repro.log").write_text(result.stdout + result.stderr)
    return clone


class ProcessRefused(FileNotFoundError):
    """A probed tool refused in the fast lane: to the caller it looks like a tool that is not installed."""


def _fast_lane(config: pytest.Config) -> bool:
    """True when the mark expression (-m) deselects tests marked slow, as `make test-fast` does."""
    markexpr = config.getoption("markexpr") or ""
    if not markexpr:
        return False
    try:
        from _pytest.mark.expression import Expression

        return not Expression.compile(markexpr).evaluate(lambda name, **_: name == "slow")
    except (ImportError, AttributeError, TypeError):  # pytest moved its private parser: fall back to the text
        return "not slow" in markexpr


def _refuse_popen(self, args, *_, **__) -> None:
    """subprocess.Popen.__init__ in the fast lane: a probed tool looks absent, anything else fails the test."""
    first = args if isinstance(args, (str, bytes, os.PathLike)) else next(iter(args), "")
    words = os.fsdecode(first).split()
    program = Path(words[0]).name if words else ""
    if program in PROBED_TOOLS:
        raise ProcessRefused(errno.ENOENT, f"{FAST_LANE} ({program} refused)", program)
    pytest.fail(f"{FAST_LANE} (it ran {args!r})")


def _refuse(what: str):
    def refuse(*args, **_):
        pytest.fail(f"{FAST_LANE} (it called {what} with {args!r})")

    return refuse


@pytest.fixture(scope="session", autouse=True)
def no_processes_in_the_fast_lane(request):
    """In the fast lane, every way of starting a process fails the test (except the PROBED_TOOLS).

    Session-scoped and autouse, so it is in place before any other fixture, session ones included.
    pytest.fail raises a BaseException, so code under test that catches Exception cannot hide it.
    """
    if not _fast_lane(request.config):
        yield
        return
    import multiprocessing.process
    import multiprocessing.util

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess.Popen, "__init__", _refuse_popen)  # run, check_output, os.popen, asyncio
        mp.setattr(multiprocessing.process.BaseProcess, "start", _refuse("multiprocessing Process.start"))  # pools
        mp.setattr(multiprocessing.util, "spawnv_passfds", _refuse("multiprocessing.util.spawnv_passfds"))
        for name in ("system", "fork", "posix_spawn", "posix_spawnp"):
            mp.setattr(os, name, _refuse(f"os.{name}"))
        yield


@pytest.fixture(autouse=True)
def mlflow_store(tmp_path, monkeypatch) -> str:
    """Every test gets its own MLflow store in its tmp_path; nothing MLflow sets outlives the test.

    mlflow.set_tracking_uri/set_registry_uri (called by models.tracking.connect) keep the URI in
    module globals and also write MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI into os.environ, where
    the next test, and the processes run() starts, would inherit them. So after the test the
    globals are cleared (only if mlflow was imported: importing it costs about two seconds) and
    every MLFLOW_* variable is put back as it was. run() still drops MLFLOW_TRACKING_URI, so
    pipeline runs in clones use their own store.
    """
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    before = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    yield uri
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and hasattr(mlflow, "set_tracking_uri"):
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        if key not in before:
            del os.environ[key]
    os.environ.update(before)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run stages from tmp_path (reports/ lands there) with the project's params."""
    from pipelines.config import settings

    monkeypatch.setenv("CHURN_PARAMS", str(PARAMS))
    monkeypatch.chdir(tmp_path)
    settings.cache_clear()
    yield tmp_path
    settings.cache_clear()
