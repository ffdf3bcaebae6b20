"""The ingest stage on a hand-made messy export: every bad row repaired or rejected, with exact counts."""

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from features.duck import read_frame
from features.errors import InputError
from features.export_date import EVENT_DATES
from features.schemas import TABLES
from pipelines import ingest
from pipelines.canonical import read_export_date, read_tables
from pipelines.cli import app
from pipelines.config import settings
from pipelines.ingestion import ingest_export
from pipelines.ingestion.readers import read_export_file, sniff_delimiter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"
# Names of columns that would carry personal data if they ever reached a Parquet file.
PII_MARKERS = ("email", "address", "subject", "body", "text", "title", "contact", "from", "to_", "comment")


def _run(in_tmp, export, preset="canonical"):
    out = in_tmp / "interim"
    ingest.main(export=export, preset=preset, out=out)
    return json.loads((in_tmp / "reports" / "ingest.json").read_text()), out


def _params(folder: Path, **data) -> Path:
    """params.yaml with some ``data`` keys changed, in ``folder``."""
    params = yaml.safe_load(PARAMS.read_text())
    params["data"].update(data)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


# The messy export is a catalogue of faults: half its rows are bad on purpose, far more than the
# 5% a real export may lose before ingest stops (tested below), so it is read with no limit.
NO_LIMIT = {"max_rejected_share": {"default": 1.0}}


@pytest.fixture
def messy_params(in_tmp, monkeypatch):
    monkeypatch.setenv("CHURN_PARAMS", str(_params(in_tmp, **NO_LIMIT)))
    settings.cache_clear()
    yield
    settings.cache_clear()


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """One ingest of the messy export, shared by the tests that read its outputs."""
    folder = tmp_path_factory.mktemp("messy_run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHURN_PARAMS", str(_params(folder, **NO_LIMIT)))
        patch.chdir(folder)
        settings.cache_clear()
        result = _run(folder, FIXTURES / "messy")
    settings.cache_clear()
    return result


def _rejected(out, table):
    return pd.read_parquet(out / "rejected" / f"{table}.parquet")


def _reasons_by_row(out, table):
    frame = _rejected(out, table)
    return dict(zip(frame["row"], frame["reason"]))


def test_messy_accounts(messy):
    report, out = messy
    accounts = report["tables"]["accounts"]
    assert (accounts["rows_read"], accounts["rows_kept"]) == (8, 4)
    assert accounts["rows_rejected"] == {
        "duplicate row": 1,
        "conflicting account_id": 1,
        "unparseable created_date": 1,
        "future-dated (after export date 2025-03-05)": 1,
    }
    assert accounts["rows_repaired"] == {"id whitespace stripped": 1}
    assert accounts["notes"] == ["UTF-8 byte-order mark removed", "Windows (CRLF) line endings read as plain newlines"]
    assert _reasons_by_row(out, "accounts") == {
        4: "duplicate row",
        5: "conflicting account_id",
        7: "unparseable created_date",
        8: "future-dated (after export date 2025-03-05)",
    }
    kept = pd.read_parquet(out / "accounts.parquet").set_index("account_id")
    assert kept.index.tolist() == ["a1", "a2", "a3", "a4"]
    assert kept.loc["a4", "account_name"] == "Delta Inc"  # the most complete version of a4 wins
    assert kept.loc["a1", "account_name"] == "Acme\nCorp"  # quoted multi-line field, CRLF normalised


def test_messy_contracts(messy):
    report, out = messy
    contracts = report["tables"]["contracts"]
    assert (contracts["rows_read"], contracts["rows_kept"]) == (8, 3)
    assert contracts["rows_rejected"] == {
        "negative arr": 1,
        "end_date before start_date": 1,
        "unknown account": 2,
        "unparseable start_date": 1,
    }
    assert contracts["rows_repaired"] == {"id whitespace stripped": 1, "category case normalised": 1}
    assert contracts["notes"] == ["delimiter detected: semicolon"]
    assert _reasons_by_row(out, "contracts") == {
        4: "negative arr",
        5: "end_date before start_date",
        6: "unknown account",
        7: "unknown account",
        8: "unparseable start_date",
    }
    rejected = _rejected(out, "contracts").set_index("row")
    assert rejected.loc[8, "start_date"] == "2025-13-45"  # the value as read, to fix at the source


def test_messy_emails(messy):
    report, out = messy
    emails = report["tables"]["emails"]
    assert (emails["rows_read"], emails["rows_kept"]) == (8, 4)
    assert emails["rows_rejected"] == {
        "unparseable sent_at": 1,
        "future-dated (after export date 2025-03-05)": 1,
        "missing thread_id": 1,
        "failed check isin(['inbound', 'outbound']) on direction": 1,
    }
    assert emails["rows_repaired"] == {"offset converted to UTC": 2}
    # stored in microseconds (a unit Spark's Parquet reader takes), read back in the contract's nanoseconds
    assert str(pq.read_schema(out / "emails.parquet").field("sent_at").type) == "timestamp[us, tz=UTC]"
    sent = read_frame(out / "emails.parquet").set_index("email_id")["sent_at"]
    assert str(sent.dtype) == "datetime64[ns, UTC]"
    assert sent["e1"] == pd.Timestamp("2025-03-04 08:00", tz="UTC")
    assert sent["e3"] == pd.Timestamp("2025-03-04 10:30", tz="UTC")


def test_messy_meetings_usage_and_empty_files(messy):
    report, out = messy
    tables = report["tables"]
    assert tables["meetings"]["rows_kept"] == 3
    assert tables["meetings"]["notes"] == ["delimiter detected: tab"]
    assert tables["meetings"]["rows_repaired"] == {"category case normalised": 1}
    usage = tables["usage_events"]
    assert (usage["rows_read"], usage["rows_kept"]) == (5, 2)
    assert usage["rows_rejected"] == {
        "duplicate row": 1,
        "unparseable event_count": 1,
        "failed check greater_than_or_equal_to(1) on event_count": 1,
    }
    assert usage["notes"] == ["delimiter detected: pipe"]
    for empty in ("tickets", "surveys"):  # header only, and 0 bytes: zero-row tables
        assert tables[empty]["rows_read"] == tables[empty]["rows_kept"] == 0
        assert pd.read_parquet(out / f"{empty}.parquet").columns.tolist() == TABLES[empty].column_names
    assert tables["surveys"]["notes"] == ["empty file (0 bytes): read as a zero-row table"]
    assert report["tables_absent"] == []
    assert report["preset"] == "canonical"


def test_every_row_read_is_kept_rejected_or_filtered(messy):
    report, out = messy
    for name, table in report["tables"].items():
        rejected, filtered = sum(table["rows_rejected"].values()), sum(table["rows_filtered"].values())
        assert table["rows_read"] == table["rows_kept"] + rejected + filtered, name
        assert len(pd.read_parquet(out / f"{name}.parquet")) == table["rows_kept"]
        assert len(_rejected(out, name)) == rejected


@pytest.mark.parametrize(
    "export,preset", [("messy", "canonical"), ("salesforce", "salesforce"), ("hubspot", "hubspot")]
)
def test_no_personal_data_in_any_parquet(in_tmp, messy_params, export, preset):
    _, out = _run(in_tmp, FIXTURES / export, preset)
    for path in out.rglob("*.parquet"):
        frame = pd.read_parquet(path)
        table = path.stem
        assert set(frame.columns) <= set(TABLES[table].column_names) | {"file", "row", "reason"}, path
        named = [c for c in frame.columns if not c.endswith("_id") and any(m in c.lower() for m in PII_MARKERS)]
        assert not named, path
        for column in frame.select_dtypes(include=["string", "object"]).columns:
            # e-mail addresses (Segment/Amplitude user ids among them) never survive ingest
            assert not frame[column].astype("string").str.contains("@").fillna(False).astype(bool).any(), (path, column)


def test_stale_tables_of_an_earlier_run_are_removed(in_tmp, messy_params):
    _, out = _run(in_tmp, FIXTURES / "messy")
    assert (out / "surveys.parquet").exists()
    report, out = _run(in_tmp, FIXTURES / "hubspot", "hubspot")
    assert report["tables_absent"] == ["surveys"]
    assert not (out / "surveys.parquet").exists()


# --- user mistakes: one line, exit code 2 ---------------------------------------------------


def _export(tmp_path, **files):
    folder = tmp_path / "export"
    folder.mkdir()
    for name, text in files.items():
        (folder / name.replace("__", ".")).write_text(text)
    return folder


ACCOUNTS = "account_id,created_date\na1,2024-01-01\n"
CONTRACTS = "contract_id,account_id,start_date,end_date,arr\nc1,a1,2024-01-01,2024-12-31,100\n"


def _cli(in_tmp, export):
    return CliRunner().invoke(app, ["ingest", "--export", str(export), "--out", str(in_tmp / "interim")])


def _one_error_line(result) -> str:
    """The CLI's output holds log lines too; a user mistake is exactly one ``error:`` line, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_missing_required_column_exits_2_with_one_line(in_tmp):
    export = _export(
        in_tmp, accounts__csv=ACCOUNTS, contracts__csv="contract_id,account_id,start_date,arr\nc1,a1,2024-01-01,100\n"
    )
    assert _one_error_line(_cli(in_tmp, export)) == (
        f"error: {export}/contracts.csv: missing required column 'end_date' "
        "(columns found: contract_id, account_id, start_date, arr)"
    )


def test_missing_required_table_exits_2_with_one_line(in_tmp):
    export = _export(in_tmp, accounts__csv=ACCOUNTS)
    assert _one_error_line(_cli(in_tmp, export)) == (
        f"error: {export}: required table 'contracts' not found "
        "(looked for contracts.csv, contracts.csv.gz, contracts.parquet)"
    )


def test_an_empty_required_file_exits_2(in_tmp):
    export = _export(in_tmp, accounts__csv=ACCOUNTS, contracts__csv="")
    assert _one_error_line(_cli(in_tmp, export)).startswith(f"error: {export}/contracts.csv: file is empty (0 bytes)")


def test_an_unknown_delimiter_names_the_file_and_the_column(in_tmp):
    export = _export(in_tmp, accounts__csv="account_id:created_date\na1:2024-01-01\n", contracts__csv=CONTRACTS)
    assert _one_error_line(_cli(in_tmp, export)).startswith(
        f"error: {export}/accounts.csv: missing required column 'account_id'"
    )


def test_two_files_for_one_table_are_ambiguous(tmp_path):
    export = _export(tmp_path, accounts__csv=ACCOUNTS, contracts__csv=CONTRACTS)
    pd.DataFrame({"account_id": ["a1"], "created_date": ["2024-01-01"]}).to_parquet(export / "accounts.parquet")
    with pytest.raises(InputError, match="several files for 'accounts'"):
        ingest_export(export)


def test_a_good_minimal_export_runs_through_the_cli(in_tmp):
    export = _export(in_tmp, accounts__csv=ACCOUNTS, contracts__csv=CONTRACTS)
    result = _cli(in_tmp, export)
    assert result.exit_code == 0, result.output
    report = json.loads((in_tmp / "reports" / "ingest.json").read_text())
    assert report["tables_absent"] == ["emails", "meetings", "tickets", "usage_events", "surveys"]
    assert report["totals"] == {"rows_read": 2, "rows_kept": 2, "rows_rejected": 0, "rows_filtered": 0}


# --- reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header,delimiter",
    [("a,b,c", ","), ("a;b;c", ";"), ("a\tb\tc", "\t"), ("a|b|c", "|"), ('"x;y",b,c', ","), ("single", ",")],
)
def test_delimiter_sniffing(header, delimiter):
    assert sniff_delimiter(header + "\n1,2,3\n") == delimiter


def test_gzipped_and_parquet_files_are_read(tmp_path):
    frame = pd.DataFrame({"a": ["1", "2"], "b": ["x", None]})
    frame.to_csv(tmp_path / "t.csv.gz", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    from_gz = read_export_file(tmp_path / "t.csv.gz").frame
    from_parquet = read_export_file(tmp_path / "t.parquet").frame
    assert from_gz["_row"].tolist() == from_parquet["_row"].tolist() == [1, 2]
    assert from_gz["a"].tolist() == ["1", "2"]


def test_a_cp1252_file_is_read_with_a_note(tmp_path):
    (tmp_path / "t.csv").write_bytes("id,name\n1,Société Générale\n".encode("cp1252"))
    raw = read_export_file(tmp_path / "t.csv")
    assert raw.frame["name"].tolist() == ["Société Générale"]
    assert raw.notes == ["not valid UTF-8: decoded as cp1252"]


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])  # 2 starts a process pool
@pytest.mark.parametrize(
    "export,preset", [("messy", "canonical"), ("salesforce", "salesforce"), ("hubspot", "hubspot")]
)
def test_chunked_ingest_equals_one_pass(export, preset, workers):
    """Chunks of 2 rows, in this process or in two worker processes, split duplicates, key conflicts
    and the cut last row across chunks: same outcome as one pass."""
    reference = dt.date(2025, 6, 30) if export != "messy" else None
    whole = ingest_export(FIXTURES / export, preset, reference)
    chunked = ingest_export(FIXTURES / export, preset, reference, chunk_rows=2, workers=workers)
    assert chunked.report.to_dict() == whole.report.to_dict()
    for name, frame in whole.tables.items():
        pd.testing.assert_frame_equal(chunked.tables[name], frame)
        pd.testing.assert_frame_equal(chunked.rejected[name], whole.rejected[name])
    totals = whole.report.to_dict()["totals"]
    assert totals["rows_rejected"] + totals["rows_filtered"] > 0  # the rules had work to do


# --- the export date -------------------------------------------------------------------------


def test_the_export_date_is_inferred_from_the_bulk_and_recorded_for_later_stages(messy):
    report, out = messy
    decided = report["export_date"]
    assert (decided["date"], decided["decided_by"]) == ("2025-03-05", "inferred from the event tables")
    assert "1 later row(s), on 2099-05-01, too few to be data: rejected as future-dated" in decided["reason"]
    assert decided["details"]["latest_row_by_table"]["emails"] == "2099-05-01"  # the latest row, not the end
    assert json.loads((out / "export.json").read_text()) == {"export_date": decided, "refused": None}
    assert read_export_date(out).date == dt.date(2025, 3, 5)


def test_a_given_export_date_is_honoured(in_tmp, monkeypatch):
    monkeypatch.setenv("CHURN_PARAMS", str(_params(in_tmp, export_date="2025-03-03", **NO_LIMIT)))
    settings.cache_clear()
    report, out = _run(in_tmp, FIXTURES / "messy")
    settings.cache_clear()
    assert report["export_date"]["date"] == "2025-03-03" and report["export_date"]["decided_by"] == "data.export_date"
    # one day of tolerance for time zones: the e-mails of 4 March stay, those of 5 March do not
    reasons = _reasons_by_row(out, "emails")
    assert [reasons[r] for r in (5, 6, 7)] == ["future-dated (after export date 2025-03-03)"] * 3
    kept = pd.read_parquet(out / "emails.parquet")
    assert sorted(kept["email_id"]) == ["e1", "e2", "e3"]
    assert read_export_date(out).date == dt.date(2025, 3, 3)


def test_follow_up_dates_after_the_export_date_are_blanked_not_the_row_lost(tmp_path):
    """A ticket opened before the export date and closed after it was open when the export was taken:
    the ticket stays, its closing is not known yet (so a live export cut at the export date reads the same)."""
    export = tmp_path / "export"
    export.mkdir()
    for name in ("accounts.csv", "contracts.csv"):
        (export / name).write_bytes((FIXTURES / "messy" / name).read_bytes())
    (export / "tickets.csv").write_text(
        "ticket_id,account_id,created_at,first_response_at,closed_at,priority,is_escalated,csat\n"
        "t1,a1,2025-03-01T10:00:00Z,2025-03-01T12:00:00Z,2025-03-02T10:00:00Z,high,false,\n"
        "t2,a1,2025-03-02T10:00:00Z,2025-03-06T12:00:00Z,2025-03-09T10:00:00Z,low,false,\n"
        "t3,a1,2025-03-09T10:00:00Z,,,low,false,\n"
    )
    result = ingest_export(export, "canonical", dt.date(2025, 3, 3))
    tickets = result.tables["tickets"].set_index("ticket_id")
    assert list(tickets.index) == ["t1", "t2"]  # t3 was opened after the export date: future-dated
    assert tickets.loc["t1", "closed_at"] == pd.Timestamp("2025-03-02T10:00:00Z")
    assert pd.isna(tickets.loc["t2", "first_response_at"]) and pd.isna(tickets.loc["t2", "closed_at"])
    report = result.report.tables["tickets"]
    assert report.rows_repaired == {"follow-up date after the export date blanked (not yet happened)": 1}
    assert report.rows_rejected == {"future-dated (after export date 2025-03-03)": 1}


# --- nothing lost quietly: the rejection limit -----------------------------------------------


def test_the_messy_export_under_the_default_limit_stops_at_accounts(in_tmp):
    line = _one_error_line(_cli(in_tmp, FIXTURES / "messy"))
    assert line.startswith(
        f"error: {FIXTURES}/messy/accounts.csv: accounts: 4 of 8 rows rejected "
        "(50.0%: more than data.max_rejected_share allows: 5%); most as '"
    )
    report = json.loads((in_tmp / "reports" / "ingest.json").read_text())
    assert report["refused"] == line.removeprefix("error: ")  # the outputs are written, to see why
    assert (in_tmp / "interim" / "rejected" / "accounts.parquet").exists()
    with pytest.raises(InputError, match="ingest stopped on this export"):
        read_tables(in_tmp / "interim")  # and no later stage reads them


def test_in_memory_ingest_applies_the_same_limit():
    with pytest.raises(InputError, match=r"accounts: 4 of 8 rows rejected \(50\.0%"):
        ingest_export(FIXTURES / "messy", limits=dict.fromkeys(TABLES, 0.05))
    assert ingest_export(FIXTURES / "messy", limits=dict.fromkeys(TABLES, 0.7)).report.tables["accounts"].rows_kept


@pytest.mark.parametrize(
    "reason,hint",
    [
        ("missing thread_id", "map emails.thread_id to the export's column that holds it"),
        ("unparseable sent_at", "give emails.sent_at's date format in the mapping"),
        ("failed check isin(['inbound', 'outbound']) on direction", "with `values:` in the mapping (to inbound, out"),
        ("future-dated (after export date 2025-03-05)", "set `data.export_date` when it is wrong"),
        ("unknown account", "map emails.account_id to the same id as the accounts file's account_id"),
        ("conflicting email_id", "several rows share one email_id"),
        ("failed check greater_than(0) on thread_id", "see the reasons in reports/ingest.json and the rows in "),
    ],
)
def test_each_reject_reason_comes_with_its_likely_fix(reason, hint):
    from pipelines.ingestion.thresholds import fix

    said = fix("emails", reason, Path("data/interim/rejected"), Path("reports/ingest.json"))
    assert hint in said
    if "see the reasons" in hint:
        assert said.endswith("data/interim/rejected/emails.parquet")


def test_ingest_records_each_event_tables_first_and_last_kept_row_and_its_lag(messy):
    report, out = messy
    freshness = report["freshness"]
    end = dt.date.fromisoformat(report["export_date"]["date"])
    assert set(freshness) <= {"emails", "meetings", "tickets", "usage_events", "surveys"} and "emails" in freshness
    for name, f in freshness.items():
        kept = pd.read_parquet(out / f"{name}.parquet")
        dated = kept[EVENT_DATES[name]].dropna().dt.tz_convert("UTC").dt.date
        assert f["first_date"] == min(dated).isoformat() and f["last_date"] == max(dated).isoformat()
        assert f["lag_days"] == (end - max(dated)).days >= 0  # the 2099 row was rejected, never the last
