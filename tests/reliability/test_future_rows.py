"""A few rows typed a year into the future: same export date, features, labels and scoring date as without them.

The old rule took the export's end from its latest row (and the reference date for future
rows from the day of the run), so e-mails of an export ending 2025-06-30 mistyped into 2026
moved the snapshot grid a year on and labelled every account without a renewal booked yet
as churned. Here `churn ingest` and `churn features` run on a small demo export ending
2025-06-30 with and without such rows (dated before the day of the run, so only the export
date can tell them apart); the outputs must be the same, and the planted rows counted as rejected.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from models.scoring import default_as_of
from pipelines.canonical import read_export_date
from tests.conftest import run
from tests.reliability.conftest import PARAMS

pytestmark = pytest.mark.slow

LATE_EMAILS, LATE_EVENTS = 19, 40
END = "2025-06-30"


@pytest.fixture(scope="module")
def params(tmp_path_factory) -> Path:
    """The project's params with the demo's history ending 2025-06-30."""
    doc = yaml.safe_load(PARAMS.read_text())
    doc["demo"].update(start="2023-07-03", end=END)
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def past_export(tmp_path_factory, params) -> Path:
    """A 200-account demo export whose history ends 2025-06-30."""
    out = tmp_path_factory.mktemp("past") / "export"
    cmd = ["churn", "demo-data", "--accounts", "200", "--out", str(out), "--truth", str(out.parent / "truth")]
    run(cmd, cwd=out.parent, env={"CHURN_PARAMS": str(params)})
    return out


def plant_future_rows(export: Path) -> None:
    """Copies of recent e-mails and usage events, a year later (the year typed wrong), appended to the files."""
    emails = pd.read_csv(export / "emails.csv.gz", dtype=str, keep_default_na=False)
    sent = pd.to_datetime(emails["sent_at"], utc=True)
    late = emails[sent > sent.max() - pd.Timedelta(days=60)].sample(LATE_EMAILS, random_state=7).copy()
    late["sent_at"] = (pd.to_datetime(late["sent_at"], utc=True) + pd.DateOffset(years=1)).dt.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    late["email_id"] = "LATE-" + late["email_id"]
    with gzip.open(export / "emails.csv.gz", "wt", encoding="utf-8", newline="") as handle:
        pd.concat([emails, late]).to_csv(handle, index=False)

    usage = pd.read_parquet(export / "usage_events.parquet")
    recent = usage[usage["event_at"] > usage["event_at"].max() - pd.Timedelta(days=60)]
    late = recent.sample(LATE_EVENTS, random_state=7).copy()
    late["event_at"] = late["event_at"] + pd.DateOffset(years=1)
    pd.concat([usage, late], ignore_index=True).to_parquet(export / "usage_events.parquet")


def ingest_and_features(export: Path, folder: Path, params: Path) -> dict:
    folder.mkdir()
    env = {"CHURN_PARAMS": str(params)}
    run(["churn", "ingest", "--export", str(export), "--out", str(folder / "interim")], cwd=folder, env=env)
    run(["churn", "features", "--interim", "interim", "--out", "processed"], cwd=folder, env=env)
    interim = folder / "interim"
    return {
        "report": json.loads((folder / "reports" / "ingest.json").read_text()),
        "export_date": read_export_date(interim),
        "features": pd.read_parquet(folder / "processed" / "features.parquet"),
        "catalog": json.loads((folder / "processed" / "feature_catalog.json").read_text()),
    }


def test_rows_a_year_in_the_future_change_nothing_but_the_rejected_counts(past_export, params, tmp_path):
    planted = tmp_path / "planted"
    shutil.copytree(past_export, planted)
    plant_future_rows(planted)

    clean = ingest_and_features(past_export, tmp_path / "clean", params)
    late = ingest_and_features(planted, tmp_path / "late", params)

    date = clean["export_date"].date
    assert str(date) == END  # the demo's last day
    assert late["export_date"].date == date
    assert default_as_of(late["export_date"].date) == default_as_of(date) == pd.Timestamp("2025-07-01").date()
    latest = late["report"]["export_date"]["details"]["latest_row_by_table"]
    assert latest["emails"] > "2026-04" and latest["usage_events"] > "2026-04"  # where the old rule ended it

    future = f"future-dated (after export date {date})"
    tables = late["report"]["tables"]
    assert tables["emails"]["rows_rejected"] == {future: LATE_EMAILS}
    assert tables["usage_events"]["rows_rejected"] == {future: LATE_EVENTS}
    assert f"{LATE_EMAILS + LATE_EVENTS} later row(s)" in late["report"]["export_date"]["reason"]

    assert late["catalog"]["snapshots"] == clean["catalog"]["snapshots"]
    assert late["catalog"]["snapshots"]["export_last_date"] == str(date)
    pd.testing.assert_frame_equal(late["features"], clean["features"])  # same grid, features and labels
