"""Same inputs, same bytes: DVC sees nothing to do after a run, and forced reruns rewrite identical files."""

from __future__ import annotations

import hashlib

import pytest

from tests.conftest import ROOT, run


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow  # two `churn demo-data` processes: each has its own hash seed
def test_salesforce_shaped_demo_is_byte_identical(tmp_path):
    digests = []
    for name in ("a", "b"):
        run(
            [
                "churn",
                "demo-data",
                "--accounts",
                "50",
                "--format",
                "salesforce",
                "--out",
                str(tmp_path / name),
                "--truth",
                str(tmp_path / f"{name}-truth"),
            ],
            cwd=tmp_path,
            env={"CHURN_PARAMS": str(ROOT / "params.yaml")},
        )
        digests.append({p.name: _sha(p) for p in (tmp_path / name).iterdir()})
    assert digests[0] == digests[1]  # gzip headers carry no temp file name, no mtime


@pytest.mark.slow
def test_forced_score_rewrites_the_same_at_risk_csv_and_status_stays_clean(demo_run):
    before = _sha(demo_run / "reports" / "at_risk.csv")
    # -s: force this stage only (plain -f would force every upstream stage and retrain)
    run(["dvc", "repro", "-f", "-s", "score"], cwd=demo_run)
    assert _sha(demo_run / "reports" / "at_risk.csv") == before
    status = run(["dvc", "status"], cwd=demo_run)
    assert "changed" not in status.stdout, status.stdout
    again = run(["dvc", "repro"], cwd=demo_run)
    assert "Running stage" not in again.stdout
