"""Shared helpers for the reliability suite: one small demo export, copied per test and broken on purpose."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, run

PARAMS = ROOT / "params.yaml"


@pytest.fixture(scope="session")
def small_export(tmp_path_factory) -> Path:
    """A 200-account canonical demo export (about 2 s), never edited: tests work on copies."""
    out = tmp_path_factory.mktemp("small") / "export"
    run(
        ["churn", "demo-data", "--accounts", "200", "--out", str(out), "--truth", str(out.parent / "truth")],
        cwd=out.parent,
        env={"CHURN_PARAMS": str(PARAMS)},
    )
    return out


@pytest.fixture
def export_copy(small_export, tmp_path) -> Path:
    """A private copy of the small export, to break."""
    target = tmp_path / "export"
    shutil.copytree(small_export, target)
    return target
