"""Shared helpers for the reliability suite: one small demo export, copied per test and broken on purpose."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import settings
from tests.conftest import ROOT

PARAMS = ROOT / "params.yaml"


@pytest.fixture(scope="session")
def small_export(tmp_path_factory) -> Path:
    """A 200-account canonical demo export (about 2 s), never edited: tests work on copies.

    Written in this process (the `churn demo-data` command through typer's runner, not a
    subprocess), so the fast lane can use it.
    """
    out = tmp_path_factory.mktemp("small") / "export"
    command = ["demo-data", "--accounts", "200", "--out", str(out), "--truth", str(out.parent / "truth")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHURN_PARAMS", str(PARAMS))
        mp.chdir(out.parent)
        settings.cache_clear()
        try:
            result = CliRunner().invoke(app, command)
        finally:
            settings.cache_clear()
    assert result.exit_code == 0, (result.output, result.exception)
    return out


@pytest.fixture
def export_copy(small_export, tmp_path) -> Path:
    """A private copy of the small export, to break."""
    target = tmp_path / "export"
    shutil.copytree(small_export, target)
    return target
