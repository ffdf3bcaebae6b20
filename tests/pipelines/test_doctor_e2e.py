"""Done when: `churn doctor`, then `dvc repro` with only data.export_dir and data.preset changed, ends with
reports/at_risk.csv listing every account active at the scoring date.

Three exports, each in a temporary clone of the project: the Salesforce and HubSpot fixtures
with their built-in presets, and an in-house export (the demo's files, every column renamed)
read through the mapping `churn doctor --write-mapping` wrote, used unedited.

The committed vendor fixtures are a 30-account book with two years of history: too short for
automatic train windows (about two and a quarter years), which `tests/models/test_windows.py`
covers. So these tests write a longer book of the same vendor shapes with the same generator
(`tests/fixtures/make_vendor_fixtures.py`: 90 accounts from 2021-07-01 to 2025-06-30, the
first 30 with their planted cases) into the clone, and run on that.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from features.snapshots import build_grid
from tests.conftest import make_clone, run
from tests.fixtures.make_vendor_fixtures import write_fixtures
from tests.pipelines.inhouse import rename_export

pytestmark = pytest.mark.slow

LONG_BOOK = {"first_day": dt.date(2021, 7, 1), "n_accounts": 90}


def _point_at(clone: Path, export: str, preset: str) -> None:
    """Change only data.export_dir and data.preset in the clone's params.yaml (comments kept)."""
    text = (clone / "params.yaml").read_text()
    text = re.sub(r"(?m)^(  export_dir:\s*)\S+", rf"\g<1>{export}", text, count=1)
    text = re.sub(r"(?m)^(  preset:\s*)\S+", rf"\g<1>{preset}", text, count=1)
    (clone / "params.yaml").write_text(text)
    data = yaml.safe_load(text)["data"]
    assert (data["export_dir"], data["preset"], data["export_date"]) == (export, preset, None)


def _active_at_scoring_date(clone: Path, as_of: str) -> set[str]:
    """Accounts with a contract covering the scoring date, by the features' own snapshot grid."""
    params = yaml.safe_load((clone / "params.yaml").read_text())["features"]
    contracts = pd.read_parquet(clone / "data/interim/contracts.parquet")
    when = pd.Timestamp(as_of)
    grid = build_grid(contracts, pd.DatetimeIndex([when]), params["horizon_days"], params["grace_days"], when)
    return set(grid["account_id"].astype(str))


def _doctor_then_repro(clone: Path, export: str, preset: str, *targets: str) -> tuple[str, pd.DataFrame | None, str]:
    """Doctor, then ``dvc repro`` (of ``targets`` only, when given) on the export."""
    doctor = run(["churn", "doctor", "--export", export, "--preset", preset], cwd=clone, check=False)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert doctor.stdout.strip().splitlines()[-2] == "verdict: ingest would run"
    _point_at(clone, export, preset)
    repro = run(["dvc", "repro", *targets], cwd=clone, check=False)
    log = repro.stdout + repro.stderr
    if repro.returncode != 0:
        return doctor.stdout, None, log
    return doctor.stdout, pd.read_csv(clone / "reports/at_risk.csv", dtype={"account_id": str}), log


def _check_every_active_account_listed(clone: Path, at_risk: pd.DataFrame) -> None:
    as_of = str(at_risk["as_of"].iloc[0])
    active = _active_at_scoring_date(clone, as_of)
    listed = set(at_risk["account_id"])
    print(f"\nas_of {as_of}: {len(listed)} accounts listed, {len(active)} active")
    assert listed == active


@pytest.mark.parametrize(("fixture", "preset"), [("salesforce_standard", "salesforce"), ("hubspot_portal", "hubspot")])
def test_vendor_fixture_from_doctor_to_at_risk_list(tmp_path, fixture, preset):
    clone = make_clone(tmp_path / "clone")
    write_fixtures(clone / "data/raw", **LONG_BOOK)
    doctor, at_risk, log = _doctor_then_repro(clone, f"data/raw/{fixture}", preset)
    print(doctor)
    assert at_risk is not None, log[-3000:]
    print("\n".join(re.findall(r"train: .*window.*", log)[:3]))
    _check_every_active_account_listed(clone, at_risk)


def test_inhouse_export_with_the_mapping_doctor_wrote(tmp_path):
    clone = make_clone(tmp_path / "clone")
    demo = tmp_path / "demo"
    run(["churn", "demo-data", "--accounts", "300", "--out", str(demo), "--truth", str(tmp_path / "truth")], cwd=clone)
    rename_export(demo, clone / "data/raw/inhouse")
    export, mapping = "data/raw/inhouse", "inhouse_mapping.yaml"
    first = run(["churn", "doctor", "--export", export, "--write-mapping", mapping], cwd=clone, check=False)
    assert first.returncode == 1  # the canonical preset cannot read renamed columns
    assert "verdict: ingest would NOT run" in first.stdout
    text = (clone / mapping).read_text()
    assert "???" not in text  # every required column found a guess: no line to edit
    doctor, at_risk, log = _doctor_then_repro(clone, export, mapping, "score")  # the vendor tests run every stage
    print(first.stdout, doctor)
    assert at_risk is not None, log[-3000:]
    windows = re.findall(r"train: .*window.*", log)
    print("\n".join(windows[:3]))
    _check_every_active_account_listed(clone, at_risk)
