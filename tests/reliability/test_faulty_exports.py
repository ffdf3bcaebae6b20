"""Faulty exports: each one ends in one error line and exit code 2, or in a correct output whose
problem is counted in reports/ingest.json. Never a traceback, never a silently wrong table."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.build import build_features
from features.errors import InputError
from models.train import Windows, split_out_of_time
from pipelines.canonical import read_tables
from pipelines.cli import app
from pipelines.config import settings
from tests.features import canonical_frames as cf
from tests.reliability.conftest import PARAMS as PARAMS_FILE


def _ingest(in_tmp: Path, export: Path, preset: str = "canonical"):
    return CliRunner().invoke(
        app, ["ingest", "--export", str(export), "--preset", preset, "--out", str(in_tmp / "interim")]
    )


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (ValueError, OSError, KeyError))
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def _report(in_tmp: Path) -> dict:
    return json.loads((in_tmp / "reports" / "ingest.json").read_text())


def _cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _edit_csv(path: Path, change) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    change(frame)
    frame.to_csv(path, index=False)


# --- one line, exit code 2 -------------------------------------------------------------------


def test_a_cut_gzip_file_is_refused_in_one_line(in_tmp, export_copy):
    _cut(export_copy / "emails.csv.gz")
    line = _one_error_line(_ingest(in_tmp, export_copy))
    assert line.startswith(f"error: {export_copy}/emails.csv.gz: compressed file is truncated or corrupt")


@pytest.mark.parametrize("damage", ["cut", "garbage"])
def test_a_corrupt_parquet_file_is_refused_in_one_line(in_tmp, export_copy, damage):
    path = export_copy / "usage_events.parquet"
    _cut(path) if damage == "cut" else path.write_bytes(b"PAR1" + b"\x00garbage" * 500)
    line = _one_error_line(_ingest(in_tmp, export_copy))
    assert line.startswith(f"error: {path}: not a readable Parquet file, truncated or corrupt")


def test_a_missing_required_table_is_refused(in_tmp, export_copy):
    (export_copy / "contracts.csv").unlink()
    assert _one_error_line(_ingest(in_tmp, export_copy)) == (
        f"error: {export_copy}: required table 'contracts' not found "
        "(looked for contracts.csv, contracts.csv.gz, contracts.parquet)"
    )


@pytest.mark.parametrize("preset", ["salesforce", "hubspot"])
def test_a_wrong_preset_names_the_missing_file_and_the_preset_that_fits(in_tmp, export_copy, preset):
    line = _one_error_line(_ingest(in_tmp, export_copy, preset))
    assert f"error: {export_copy}: required table 'accounts' not found (looked for " in line
    assert line.endswith("accounts.csv is there: this looks like a 'canonical' export, try --preset canonical")


def test_text_in_every_arr_cell_is_a_wrong_column_type_not_1000_rejects(in_tmp, export_copy):
    _edit_csv(export_copy / "contracts.csv", lambda f: f.__setitem__("arr", "ten thousand"))
    line = _one_error_line(_ingest(in_tmp, export_copy))
    assert line.startswith(
        f"error: {export_copy}/contracts.csv: column 'arr': no value parses as a number (rows 1, 2, 3 and "
    )
    assert line.endswith("e.g. 'ten thousand'); fix the column in the export")


def test_wrong_type_in_a_parquet_column_is_refused(in_tmp, export_copy):
    path = export_copy / "usage_events.parquet"
    pd.read_parquet(path).assign(event_count="lots").to_parquet(path)
    assert "column 'event_count': no value parses as a whole number" in _one_error_line(_ingest(in_tmp, export_copy))


# --- a correct output, the problem counted in reports/ingest.json ----------------------------


def test_one_bad_arr_value_is_one_rejected_row(in_tmp, export_copy):
    _edit_csv(export_copy / "contracts.csv", lambda f: f.loc.__setitem__((2, "arr"), "n/a"))
    assert _ingest(in_tmp, export_copy).exit_code == 0
    assert _report(in_tmp)["tables"]["contracts"]["rows_rejected"] == {"unparseable arr": 1}


@pytest.mark.parametrize("table", ["accounts.csv", "contracts.csv"])
def test_a_csv_cut_mid_row_rejects_its_last_row_and_says_why(in_tmp, export_copy, table):
    path = export_copy / table
    _cut(path, 0.6)
    rows = pd.read_csv(path, dtype=str)
    result = _ingest(in_tmp, export_copy)
    if table == "accounts.csv":  # 40% of the accounts gone orphans 40% of the contracts: ingest stops on them
        line = _one_error_line(result)
        assert f"{export_copy}/contracts.csv: contracts: " in line and "most as 'unknown account'" in line
    else:
        assert result.exit_code == 0, result.output
    report = _report(in_tmp)["tables"][table.removesuffix(".csv")]  # written all the same, to see why
    assert report["rows_read"] == len(rows)
    assert report["rows_rejected"]["truncated row (file ends mid-row)"] == 1
    assert any("does not end with a newline" in note for note in report["notes"])
    kept = pd.read_parquet(in_tmp / "interim" / table.replace(".csv", ".parquet"))
    key = "account_id" if table == "accounts.csv" else "contract_id"
    assert rows[key].iloc[-1] not in set(kept[key])  # the cut row is not kept with a cut value


def test_a_10_mb_text_field_is_read_and_not_carried_forward(in_tmp, export_copy):
    body = "x" * 10_000_000
    _edit_csv(
        export_copy / "accounts.csv",
        lambda f: f.assign(notes_body=[body] + [""] * (len(f) - 1)).pipe(
            lambda g: f.__setitem__("notes_body", g["notes_body"])
        ),
    )
    assert _ingest(in_tmp, export_copy).exit_code == 0
    report = _report(in_tmp)["tables"]["accounts"]
    assert report["rows_rejected"] == {} and "columns ignored (not in the mapping): notes_body" in report["notes"]
    assert (in_tmp / "interim" / "accounts.parquet").stat().st_size < 1_000_000


def test_zero_row_optional_tables_drop_their_families_only(in_tmp, export_copy):
    for name in ("meetings.csv", "tickets.csv", "surveys.csv"):
        path = export_copy / name
        path.write_text(path.read_text().splitlines()[0] + "\n")
    assert _ingest(in_tmp, export_copy).exit_code == 0
    assert len(pd.read_parquet(in_tmp / "interim" / "meetings.parquet")) == 0
    tables = {
        n: pd.read_parquet(in_tmp / "interim" / f"{n}.parquet")
        for n in ("accounts", "contracts", "meetings", "tickets", "surveys", "emails")
    }
    frame, catalogue = build_features(tables, [dt.date(2026, 6, 1)], settings().features)
    assert {"qbr", "voice"} <= set(catalogue["dropped_families"])
    assert not [c for c in frame if c.startswith(("ticket_", "nps_", "qbr_"))]
    assert len(frame) > 0 and frame["reply_latency_median_hours_90d"].notna().any()


def test_duplicate_account_ids_with_conflicting_attributes_keep_one_and_reject_the_other(in_tmp, export_copy):
    def conflict(f):
        twin = f.iloc[[0]].assign(region="APAC", segment="SMB")
        f.loc[len(f)] = twin.iloc[0]

    _edit_csv(export_copy / "accounts.csv", conflict)
    assert _ingest(in_tmp, export_copy).exit_code == 0
    assert _report(in_tmp)["tables"]["accounts"]["rows_rejected"] == {"conflicting account_id": 1}
    accounts = pd.read_parquet(in_tmp / "interim" / "accounts.parquet")
    assert accounts["account_id"].is_unique


# --- nothing lost quietly: too many rows rejected stops ingest --------------------------------


def _limits(in_tmp: Path, monkeypatch, **shares: float) -> None:
    """Run the CLI with ``data.max_rejected_share`` set to ``shares``."""
    params = yaml.safe_load(PARAMS_FILE.read_text())
    params["data"]["max_rejected_share"] = shares
    path = in_tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    monkeypatch.setenv("CHURN_PARAMS", str(path))
    settings.cache_clear()


def _blank_event_times(export: Path, share: float) -> tuple[int, int, int]:
    """Empty ``event_at`` in every n-th usage row: (rows blanked, rows, first blanked row, 1-based)."""
    path = export / "usage_events.parquet"
    usage = pd.read_parquet(path)
    step = round(1 / share)
    usage.loc[usage.index % step == step - 1, "event_at"] = pd.NaT
    usage.to_parquet(path)
    return int(usage["event_at"].isna().sum()), len(usage), step


def test_a_table_over_its_rejection_limit_stops_ingest_in_one_line(in_tmp, export_copy):
    blanked, rows, first = _blank_event_times(export_copy, 0.1)
    line = _one_error_line(_ingest(in_tmp, export_copy))
    assert line == (
        f"error: {export_copy}/usage_events.parquet: usage_events: {blanked:,} of {rows:,} rows rejected "
        f"({blanked / rows:.1%}: more than data.max_rejected_share allows: 5%); most as 'missing event_at' "
        f"({blanked:,}, e.g. row {first}): map usage_events.event_at to the export's column that holds it "
        "(`columns: {event_at: <its column>}` in a mapping file), or give it a value for empty cells (`defaults:`)"
    )
    # the outputs are there to see why, and marked: no later stage reads them
    report = _report(in_tmp)
    assert report["refused"] == line.removeprefix("error: ")
    assert report["tables"]["usage_events"]["rows_rejected"] == {"missing event_at": blanked}
    assert len(pd.read_parquet(in_tmp / "interim" / "rejected" / "usage_events.parquet")) == blanked
    with pytest.raises(InputError, match="ingest stopped on this export"):
        read_tables(in_tmp / "interim")


def test_a_tables_own_limit_lets_it_lose_more(in_tmp, export_copy, monkeypatch):
    blanked, _, _ = _blank_event_times(export_copy, 0.1)
    _limits(in_tmp, monkeypatch, default=0.05, usage_events=0.2)
    result = _ingest(in_tmp, export_copy)
    assert result.exit_code == 0, result.output
    report = _report(in_tmp)
    assert report["refused"] is None and report["tables"]["usage_events"]["rows_rejected"]["missing event_at"]
    assert len(read_tables(in_tmp / "interim")["usage_events"]) == report["tables"]["usage_events"]["rows_kept"]


@pytest.mark.parametrize("usage_limit", [0.05, 1.0])
def test_an_optional_table_with_every_row_rejected_stops_the_run_never_taken_as_absent(
    in_tmp, export_copy, monkeypatch, usage_limit
):
    """An event log whose time column is empty: every usage row is `missing event_at`. Even a limit of
    100% does not turn the table into an absent one (which would silently drop the adoption features)."""
    path = export_copy / "usage_events.parquet"
    usage = pd.read_parquet(path)
    usage["event_at"] = pd.NaT
    usage.to_parquet(path)
    _limits(in_tmp, monkeypatch, default=0.05, usage_events=usage_limit)
    line = _one_error_line(_ingest(in_tmp, export_copy))
    assert line.startswith(
        f"error: {path}: usage_events: {len(usage):,} of {len(usage):,} rows rejected "
        "(100.0%: every row, and an empty usage_events table is never taken as absent); "
        f"most as 'missing event_at' ({len(usage):,}, e.g. row 1): map usage_events.event_at"
    )


# --- feature and training edge cases, on frames built by hand --------------------------------

PARAMS = cf.feature_params(first_snapshot="2025-01-06")


def _book():
    accounts = cf.accounts(
        {"account_id": "a1", "timezone": "America/New_York"}, {"account_id": "quiet"}, {"account_id": "overlap"}
    )
    contracts = cf.contracts(
        {"account_id": "a1", "start_date": "2024-06-01", "end_date": "2026-05-31"},
        {"account_id": "quiet", "start_date": "2024-06-01", "end_date": "2026-05-31"},
        {"account_id": "overlap", "start_date": "2024-06-01", "end_date": "2025-05-31"},
        {"account_id": "overlap", "start_date": "2025-03-01", "end_date": "2026-02-28", "arr": 2000.0},
    )
    # Friday 12:00 UTC -> Monday 12:00 UTC, across the US switch to summer time (Sunday 9 March 2025)
    emails = cf.emails(("a1", "t1", "2025-03-07 12:00", "inbound"), ("a1", "t1", "2025-03-10 12:00", "outbound"))
    return {"accounts": accounts, "contracts": contracts, "emails": emails}


def test_single_snapshot_no_activity_dst_and_overlapping_contracts():
    frame, _ = build_features(_book(), [dt.date(2025, 3, 20)], PARAMS, export_end=dt.date(2025, 9, 30))
    frame = frame.set_index("account_id")
    assert sorted(frame.index) == ["a1", "overlap", "quiet"]  # one row each: overlap is one spell, not two
    assert frame.loc["a1", "reply_latency_median_hours_30d"] == 72.0  # elapsed hours, not wall-clock (71 in NY)
    assert 0 < frame.loc["a1", "reply_latency_median_business_hours_30d"] <= 18
    assert frame.loc["quiet", "reply_unanswered_count_90d"] == 0  # no activity: counts are 0, not missing
    assert frame.loc["overlap", "contract_arr_current_currency"] == 2000.0
    assert (frame["label"] == 0).all()


@pytest.mark.parametrize("label", [0, 1])
def test_a_training_window_with_one_class_is_refused_before_auc_or_calibration(label):
    dates = pd.to_datetime(["2025-01-06", "2025-10-06", "2026-04-06"] * 4)
    frame = pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(12)],
            "snapshot_date": dates,
            "label": pd.array([label] * 12, dtype="Int8"),
            "x": range(12),
        }
    )
    frame.loc[frame["snapshot_date"].dt.year == 2026, "label"] = [0, 1, 0, 1]  # only the train window is one-sided
    frame.loc[frame["snapshot_date"].dt.month == 10, "label"] = [0, 1, 0, 1]
    windows = Windows(dt.date(2025, 6, 30), dt.date(2025, 9, 29), dt.date(2025, 12, 29), dt.date(2026, 3, 30))
    kind = "churned" if label == 0 else "retained"
    with pytest.raises(InputError, match=f"column 'label': no {kind} accounts in the train window \\(4 rows\\)"):
        split_out_of_time(frame, windows)
