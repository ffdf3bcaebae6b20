"""The mapping language on hand-made exports: lookups by key, value patterns, generated ids, defaults, filters."""

import datetime as dt
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from features.errors import InputError
from pipelines.ingestion import ingest_export, load_mapping

REFERENCE = dt.date(2025, 6, 30)


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def _column(result, table, key, column):
    return result.tables[table].set_index(key)[column].to_dict()


ACCOUNTS = """
    id,created
    a1,2023-01-01
    a2,2023-01-01
    a3,2023-01-01
"""

LOOKUP_MAPPING = """
    name: lookups
    related:
      won:
        file: deals
        filters:
          - {column: stage, keep: [won]}
    tables:
      accounts:
        file: accounts
        columns: {account_id: id, created_date: created}
      contracts:
        file: terms
        columns:
          contract_id: id
          account_id: account
          start_date: start
          end_date: end
          arr:
            - amount
            - {lookup: won, match: {term: id}, take: value, sum: true}
            - lookup: won
              match: {account: account}
              on_or_before: {closed: start}
              latest: closed
              take: value
              count_as: arr carried from the last deal
"""


@pytest.fixture
def lookup_export(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    _write(folder, "accounts.csv", ACCOUNTS)
    _write(
        folder,
        "terms.csv",
        """
        id,account,start,end,amount
        t1,a1,2024-01-01,2024-12-31,
        t2,a1,2025-01-01,2025-12-31,
        t3,a2,2024-06-01,2025-05-31,700
        t4,a3,2024-06-01,2025-05-31,
        """,
    )
    _write(
        folder,
        "deals.csv",
        """
        id,account,term,stage,closed,value
        d1,a1,t1,won,2023-12-20,1000
        d2,a1,t1,won,2024-06-01,200
        d3,a1,,won,2024-12-15,1100
        d4,a1,,lost,2024-12-20,5000
        d5,a1,,won,2025-02-01,9999
        """,
    )
    return folder, _write(tmp_path, "mapping.yaml", LOOKUP_MAPPING)


def test_a_column_from_a_related_file_by_key_with_a_fallback_chain(lookup_export):
    folder, mapping = lookup_export
    result = ingest_export(folder, mapping, REFERENCE)
    arr = _column(result, "contracts", "contract_id", "arr")
    assert arr["t1"] == 1200.0  # both won deals linked to t1, added up
    assert arr["t2"] == 1100.0  # no deal linked: the account's latest won deal on or before the start
    assert arr["t3"] == 700.0  # the file's own column comes first
    report = result.report.tables["contracts"]
    assert report.rows_repaired == {"arr carried from the last deal": 1}
    assert report.rows_rejected == {"missing arr": 1}  # t4: no amount, no deal at all
    assert result.rejected["contracts"]["contract_id"].tolist() == ["t4"]
    assert "lookup 'won': deals.csv, 5 rows, 1 left out by its filters" in report.notes


def test_a_lookup_whose_file_is_absent_is_skipped_and_a_required_column_without_any_source_is_one_line(
    lookup_export,
):
    folder, mapping = lookup_export
    (folder / "deals.csv").unlink()
    result = ingest_export(folder, mapping, REFERENCE)
    report = result.report.tables["contracts"]
    assert report.rows_rejected == {"missing arr": 3}
    assert any("its steps are skipped" in note for note in report.notes)

    _write(folder, "terms.csv", "id,account,start,end\nt1,a1,2024-01-01,2024-12-31\n")
    with pytest.raises(InputError) as err:
        ingest_export(folder, mapping, REFERENCE)
    message = str(err.value)
    assert "\n" not in message
    assert "'amount' or won.value by term = id" in message and "contracts.arr" in message


SURVEY_MAPPING = """
    name: surveys
    tables:
      accounts:
        file: accounts
        columns: {account_id: id, created_date: created}
      contracts:
        file: terms
        columns: {contract_id: id, account_id: account, start_date: start, end_date: end, arr: amount}
      surveys:
        file: survey_tool
        filters:
          - {column: [Type, Campaign], drop: [{regex: '\\b(ces)\\b'}, {contains: effort}], reason: survey type not modelled}
        columns:
          survey_id: [Response ID, {hash: [Account, Campaign, Respondent, Sent]}]
          account_id: Account
          sent_at: Sent
          score: Score
          survey_type:
            source: [Type, Campaign]
            values: {NPS: nps, CSAT: csat}
            patterns:
              - {regex: '\\bnps\\b|net promoter', value: nps}
              - {contains: csat, value: csat}
"""


@pytest.fixture
def survey_export(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    _write(folder, "accounts.csv", ACCOUNTS)
    _write(folder, "terms.csv", "id,account,start,end,amount\nt1,a1,2024-01-01,2024-12-31,10\n")
    _write(
        folder,
        "survey_tool.csv",
        """
        Response ID,Account,Campaign,Type,Respondent,Sent,Score
        ,a1,Relationship NPS H1 2024,,jane@a1.example,2024-03-01 10:00,9
        ,a1,Relationship NPS H1 2024,,marc@a1.example,2024-03-01 10:00,6
        ,a2,In-app CSAT,,,2024-04-02 11:00,4
        ,a2,Net Promoter pulse,,,2024-05-02 11:00,
        ,a2,Quarterly check,csat,,2024-06-02 11:00,5
        R-77,a3,Quarterly check,NPS,,2024-06-02 11:00,8
        ,a3,Support effort,,,2024-06-03 11:00,3
        ,a3,Onboarding (CES),,,2024-06-04 11:00,3
        ,a3,Pulse,,,2024-06-05 11:00,3
        ,,,,,,
        ,a1,Relationship NPS H1 2024,,jane@a1.example,2024-03-01 10:00,9
        """,
    )
    return folder, _write(tmp_path, "mapping.yaml", SURVEY_MAPPING)


def test_value_patterns_map_campaign_names_and_filter_by_pattern(survey_export):
    folder, mapping = survey_export
    result = ingest_export(folder, mapping, REFERENCE)
    surveys = result.tables["surveys"]
    assert surveys["survey_type"].tolist() == ["nps", "nps", "csat", "nps", "csat", "nps"]
    report = result.report.tables["surveys"]
    assert report.rows_filtered == {"survey type not modelled": 2}
    rejected = dict(zip(result.rejected["surveys"]["row"], result.rejected["surveys"]["reason"]))
    assert rejected[9] == "failed check isin(['nps', 'csat']) on survey_type"  # "Pulse": no rule says what it is
    assert rejected[10] == "missing survey_id"  # nothing to hash
    assert rejected[11] == "duplicate row"  # the same response twice: the same id


def test_generated_ids_are_stable_across_runs_and_distinct_per_row(survey_export):
    folder, mapping = survey_export
    first = ingest_export(folder, mapping, REFERENCE).tables["surveys"]["survey_id"].tolist()
    second = ingest_export(folder, mapping, REFERENCE).tables["surveys"]["survey_id"].tolist()
    assert first == second
    assert len(set(first)) == len(first)
    assert "R-77" in first  # a real id wins over the hash
    hashed = [i for i in first if i != "R-77"]
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in hashed)


def test_event_count_defaults_to_one_per_the_contract(tmp_path):
    """A raw track-call export (no count column) is every row one event, not every row rejected."""
    _write(tmp_path, "accounts.csv", "account_id,created_date\na1,2024-01-01\n")
    _write(
        tmp_path, "contracts.csv", "contract_id,account_id,start_date,end_date,arr\nc1,a1,2024-01-01,2024-12-31,10\n"
    )
    _write(
        tmp_path,
        "usage_events.csv",
        """
        account_id,user_id,feature,event_at
        a1,u1,report_viewed,2024-03-01T10:00:00Z
        a1,u2,export_csv,2024-03-02T10:00:00Z
        """,
    )
    result = ingest_export(tmp_path, "canonical", REFERENCE)
    report = result.report.tables["usage_events"]
    assert (report.rows_read, report.rows_kept, dict(report.rows_rejected)) == (2, 2, {})
    assert result.tables["usage_events"]["event_count"].tolist() == [1, 1]
    assert "no event_count column: each row counts as 1 (the contract's default)" in report.notes
    # a count column with blanks: blanks are 1, counts are kept
    _write(
        tmp_path,
        "usage_events.csv",
        "account_id,user_id,feature,event_at,event_count\na1,u1,x,2024-03-01,\na1,u1,y,2024-03-01,3\n",
    )
    assert ingest_export(tmp_path, "canonical", REFERENCE).tables["usage_events"]["event_count"].tolist() == [1, 3]


def test_derive_if_a_column_has_a_value(tmp_path):
    _write(tmp_path, "accounts.csv", "id,created\na1,2023-01-01\n")
    _write(
        tmp_path,
        "terms.csv",
        """
        id,account,start,end,amount,state,stopped
        t1,a1,2023-01-01,2023-12-31,10,Terminated,
        t2,a1,2024-01-01,2024-12-31,10,Activated,
        t3,a1,2025-01-01,2025-12-31,10,Terminated,2025-03-01
        """,
    )
    mapping = _write(
        tmp_path,
        "mapping.yaml",
        """
        name: derive
        tables:
          accounts: {file: accounts, columns: {account_id: id, created_date: created}}
          contracts:
            file: terms
            columns:
              contract_id: id
              account_id: account
              start_date: start
              end_date: end
              arr: amount
              cancel_date: stopped
              status: {source: state, values: {Terminated: cancelled, Activated: active}}
            derive:
              cancel_date: end_date if status is cancelled
        """,
    )
    result = ingest_export(tmp_path, mapping, REFERENCE)
    cancel = _column(result, "contracts", "contract_id", "cancel_date")
    assert cancel["t1"] == pd.Timestamp("2023-12-31")
    assert pd.isna(cancel["t2"])
    assert cancel["t3"] == pd.Timestamp("2025-03-01")
    assert result.report.tables["contracts"].rows_repaired == {
        "cancel_date derived (end_date if status is cancelled)": 1
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("related: {}\ntables:\n  surveys:\n    file: s\n    columns: {score: {lookup: nope, match: {a: b}, take: c}}",
         "lookup 'nope' is not under related:"),
        ("tables:\n  surveys:\n    file: s\n    columns: {survey_type: {source: t, patterns: [{regex: '(nps'}]}}",
         "does not compile"),
        ("tables:\n  surveys:\n    file: s\n    columns: {survey_id: [{hashh: [a]}]}",
         "a source is a column name, {lookup: ..., match: ..., take: ...} or {hash: [columns]}"),
        ("tables:\n  contracts:\n    file: s\n    derive: {cancel_date: end_date if stage is lost}",
         "'stage' is not a column of contracts"),
        ("tables:\n  meetings:\n    file: s\n    filters: [{column: x, drop: [{regex: a, contains: b}], reason: r}]",
         "exactly one of regex or contains"),
    ],
)  # fmt: skip
def test_mapping_mistakes_are_one_line_errors(tmp_path, body, expected):
    path = _write(tmp_path, "bad.yaml", "name: bad\n" + body + "\n")
    with pytest.raises(InputError) as err:
        load_mapping(path)
    assert expected in str(err.value) and "\n" not in str(err.value)
