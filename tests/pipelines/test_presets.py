"""Each preset on a hand-made three-account export, a team mapping, and the shape round trip."""

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest

from features.errors import InputError
from features.schemas import SCHEMAS, TABLES
from pipelines.demo.shapes import write_export_shape
from pipelines.ingestion import ingest_export, load_mapping
from pipelines.ingestion.presets import PRESETS_DIR

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EXAMPLE = PRESETS_DIR / "examples" / "mapping_example.yaml"
REFERENCE = dt.date(2025, 6, 30)


@pytest.fixture(scope="module")
def salesforce():
    return ingest_export(FIXTURES / "salesforce", "salesforce", REFERENCE)


@pytest.fixture(scope="module")
def hubspot():
    return ingest_export(FIXTURES / "hubspot", "hubspot", REFERENCE)


def _column(result, table, column):
    return result.tables[table].set_index(TABLES[table].key[0])[column].to_dict()


def _assert_every_row_accounted_for(result):
    for report in result.report.tables.values():
        assert report.rows_read == (
            report.rows_kept + sum(report.rows_rejected.values()) + sum(report.rows_filtered.values())
        )


def test_every_canonical_table_validates(salesforce, hubspot):
    for result in (salesforce, hubspot):
        for name, frame in result.tables.items():
            SCHEMAS[name].validate(frame)
        _assert_every_row_accounted_for(result)


# --- Salesforce ------------------------------------------------------------------------


def test_salesforce_accounts_keep_dates_and_custom_fields(salesforce):
    accounts = salesforce.tables["accounts"].set_index("account_id")
    assert accounts.index.tolist() == ["001A", "001B", "001C"]
    assert accounts.loc["001B", "created_date"] == pd.Timestamp("2024-03-01")
    assert accounts["region"].tolist() == ["NA", "EMEA", "EMEA"]  # "NA" is North America, not missing
    assert accounts.loc["001C", "segment"] == "Mid-Market"


def test_salesforce_contract_wins_over_opportunity(salesforce):
    report = salesforce.report.tables["contracts"]
    assert report.file.endswith("Contract.csv")
    assert "Opportunity.csv ignored: Contract.csv takes precedence for contracts" in report.notes
    # ...though it is still read for lookups (ARR__c is on every Contract here, so none is needed)
    assert "lookup 'won_opportunities': Opportunity.csv, 6 rows, 2 left out by its filters" in report.notes
    assert report.rows_filtered == {"contract not activated": 1}
    assert report.rows_repaired == {"end_date derived (start_date + 12 months - 1 day)": 1}
    assert _column(salesforce, "contracts", "status") == {
        "800A1": "ended",
        "800A2": "active",
        "800B1": "ended",
        "800C1": "active",
    }
    assert _column(salesforce, "contracts", "end_date")["800C1"] == pd.Timestamp("2025-06-09")


def test_salesforce_opportunities_alone_become_won_contract_terms(tmp_path):
    export = tmp_path / "sf"
    shutil.copytree(FIXTURES / "salesforce", export)
    (export / "Contract.csv").unlink()
    result = ingest_export(export, "salesforce", REFERENCE)
    report = result.report.tables["contracts"]
    assert report.rows_read == 6
    assert report.rows_filtered == {"not a won deal": 2}
    assert report.rows_kept == 4
    assert report.rows_repaired == {"end_date derived (start_date + 12 months - 1 day)": 2}
    end = _column(result, "contracts", "end_date")
    assert end == {
        "006A1": pd.Timestamp("2025-01-14"),
        "006A2": pd.Timestamp("2026-01-14"),
        "006B1": pd.Timestamp("2025-02-28"),
        "006C1": pd.Timestamp("2025-06-09"),
    }
    assert _column(result, "contracts", "arr")["006A2"] == 55000.0


def test_salesforce_emails_use_incoming_and_plus_0000_times(salesforce):
    assert _column(salesforce, "emails", "direction") == {
        "02sA1": "inbound",
        "02sA2": "outbound",
        "02sB1": "inbound",
        "02sB2": "outbound",
        "02sC1": "outbound",
    }
    assert _column(salesforce, "emails", "sent_at")["02sA1"] == pd.Timestamp("2025-03-04 15:22:10", tz="UTC")
    # ThreadIdentifier empty: the ParentId (the case) is the thread
    assert _column(salesforce, "emails", "thread_id")["02sB1"] == "500B1"


def test_salesforce_meeting_types_come_from_titles_then_type(salesforce):
    assert _column(salesforce, "meetings", "meeting_type") == {
        "00UA1": "qbr",
        "00UA2": "call",
        "00UB1": "onboarding",
        "00UC1": "call",
        "00UC2": "other",
    }
    assert _column(salesforce, "meetings", "account_id")["00UA2"] == "001A"  # from WhatId


def test_salesforce_cases_map_priority_escalation_and_csat(salesforce):
    assert _column(salesforce, "tickets", "priority") == {"500A1": "high", "500B1": "urgent", "500C1": "normal"}
    assert _column(salesforce, "tickets", "is_escalated") == {"500A1": False, "500B1": True, "500C1": False}
    assert _column(salesforce, "tickets", "csat")["500C1"] == 5.0


def test_segment_usage_groups_counts_and_hashed_users(salesforce):
    usage = salesforce.tables["usage_events"]
    assert usage["account_id"].tolist() == ["001A", "001A", "001B", "001C"]
    assert usage["event_count"].tolist() == [1, 3, 1, 2]
    assert usage["user_id"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert usage["user_id"].nunique() == 3
    assert salesforce.report.tables["usage_events"].rows_repaired == {"offset converted to UTC": 1}


def test_salesforce_surveys(salesforce):
    assert _column(salesforce, "surveys", "survey_type") == {"a0SA1": "nps", "a0SB1": "nps", "a0SC1": "csat"}
    assert pd.isna(_column(salesforce, "surveys", "score")["a0SB1"])


# --- HubSpot ----------------------------------------------------------------------------


def test_hubspot_epoch_ms_and_iso_dates(hubspot):
    assert _column(hubspot, "accounts", "created_date") == {
        "101": pd.Timestamp("2024-01-15"),
        "102": pd.Timestamp("2024-03-01"),
        "103": pd.Timestamp("2024-06-10"),
    }
    assert _column(hubspot, "emails", "sent_at")["301"] == pd.Timestamp("2025-03-04 15:22:10", tz="UTC")


def test_hubspot_keeps_won_deals_only(hubspot):
    report = hubspot.report.tables["contracts"]
    assert (report.rows_read, report.rows_kept) == (5, 4)
    assert report.rows_filtered == {"not a won deal": 1}
    assert report.rows_rejected == {}
    assert _column(hubspot, "contracts", "account_id")["205"] == "103"  # first of "103;101"
    assert _column(hubspot, "contracts", "end_date")["203"] == pd.Timestamp("2025-02-28")


def test_hubspot_email_directions_and_forwarded_emails(hubspot):
    report = hubspot.report.tables["emails"]
    assert report.rows_filtered == {"forwarded email": 1}
    assert _column(hubspot, "emails", "direction") == {
        "301": "inbound",
        "302": "outbound",
        "303": "inbound",
        "305": "outbound",
    }


def test_hubspot_meetings_tickets_and_amplitude_groups(hubspot):
    assert _column(hubspot, "meetings", "meeting_type") == {
        "401": "qbr",
        "402": "qbr",
        "403": "onboarding",
        "404": "training",
        "405": "call",
    }
    assert _column(hubspot, "tickets", "priority") == {"501": "high", "502": "urgent", "503": "low", "504": "normal"}
    assert hubspot.tables["usage_events"]["account_id"].tolist() == ["101", "101", "102"]


def test_hubspot_without_surveys_lists_them_as_absent(hubspot):
    assert hubspot.report.tables_absent == ["surveys"]
    assert "surveys" not in hubspot.tables


# --- a team's own mapping ----------------------------------------------------------------


def test_a_team_mapping_file_reads_a_french_excel_export(tmp_path):
    (tmp_path / "clients.csv").write_text(
        "id_client;raison_sociale;date_creation;pays;secteur;taille\n"
        "C1;Boulangerie Dupont;03/02/2024;FR;Alimentaire;PME\n"
        "C2;Transports Martin;15/06/2024;FR;Logistique;ETI\n",
        encoding="utf-8",
    )
    (tmp_path / "contrats_2025.csv").write_text(
        "id_abonnement;id_client;debut;fin;montant_annuel;licences;statut\n"
        "A1;C1;03/02/2024;;1200;3;terminé\n"
        "A2;C1;03/02/2025;02/02/2026;1300;3;actif\n"
        "A3;C2;15/06/2024;14/06/2025;9000;20;résilié\n"
        "A4;C2;15/06/2025;;9000;20;brouillon\n",
        encoding="utf-8",
    )
    (tmp_path / "rdv.csv").write_text(
        "id;id_client;date_heure;objet\n"
        "R1;C1;10/03/2025 14:30;Revue trimestrielle\n"
        "R2;C2;11/03/2025 09:00;Formation utilisateurs\n",
        encoding="utf-8",
    )
    result = ingest_export(tmp_path, EXAMPLE, REFERENCE)
    assert result.report.preset == "maison"
    accounts = result.tables["accounts"].set_index("account_id")
    assert accounts.loc["C2", "created_date"] == pd.Timestamp("2024-06-15")
    assert accounts["segment"].tolist() == ["SMB", "Mid-Market"]
    assert accounts["region"].tolist() == ["EMEA", "EMEA"]
    assert accounts["timezone"].tolist() == ["Europe/Paris", "Europe/Paris"]
    contracts = result.report.tables["contracts"]
    assert contracts.rows_filtered == {"draft contract": 1}
    assert _column(result, "contracts", "status") == {"A1": "ended", "A2": "active", "A3": "cancelled"}
    assert _column(result, "contracts", "end_date")["A1"] == pd.Timestamp("2025-02-02")
    assert _column(result, "meetings", "meeting_type") == {"R1": "qbr", "R2": "training"}
    assert _column(result, "meetings", "start_at")["R1"] == pd.Timestamp("2025-03-10 14:30", tz="UTC")
    assert sorted(result.report.tables_absent) == ["emails", "surveys", "tickets", "usage_events"]


def test_a_mapping_with_an_unknown_canonical_column_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntables:\n  accounts:\n    file: x\n    columns: {acount_id: Id}\n")
    with pytest.raises(InputError) as err:
        load_mapping(bad)
    assert "acount_id" in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_preset_name_is_refused():
    with pytest.raises(InputError, match="preset 'pipedrive'"):
        load_mapping("pipedrive")


# --- canonical -> CRM shape -> ingest -------------------------------------------------------


@pytest.fixture(scope="module")
def canonical_export(tmp_path_factory, salesforce):
    """A canonical export with all seven tables, written from the Salesforce fixture."""
    folder = tmp_path_factory.mktemp("canonical")
    for name, frame in salesforce.tables.items():
        if name == "usage_events":
            frame.to_parquet(folder / "usage_events.parquet", index=False)
        elif name == "emails":
            frame.to_csv(folder / "emails.csv.gz", index=False)
        else:
            frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.mark.parametrize("fmt", ["salesforce", "hubspot"])
def test_shape_round_trip_gives_the_same_canonical_tables(tmp_path, canonical_export, fmt):
    write_export_shape(canonical_export, tmp_path, fmt)
    direct = ingest_export(canonical_export, "canonical", REFERENCE)
    shaped = ingest_export(tmp_path, fmt, REFERENCE)
    assert set(shaped.tables) == set(TABLES)
    for name in TABLES:
        if name == "usage_events":
            continue  # user ids are hashed once more on each ingest; compared below
        pd.testing.assert_frame_equal(shaped.tables[name], direct.tables[name], check_like=True, obj=name)
    usage_direct, usage_shaped = direct.tables["usage_events"], shaped.tables["usage_events"]
    pd.testing.assert_frame_equal(usage_shaped.drop(columns="user_id"), usage_direct.drop(columns="user_id"))
    assert usage_shaped["user_id"].nunique() == usage_direct["user_id"].nunique() == 3


@pytest.mark.parametrize("fmt", ["salesforce", "hubspot"])
def test_shape_round_trip_keeps_messy_rows_messy(tmp_path, fmt):
    write_export_shape(FIXTURES / "messy", tmp_path, fmt)
    direct = ingest_export(FIXTURES / "messy", "canonical")
    shaped = ingest_export(tmp_path, fmt)
    for name, report in direct.report.tables.items():
        assert shaped.report.tables[name].rows_rejected == report.rows_rejected, name
        assert shaped.report.tables[name].rows_kept == report.rows_kept, name


def test_meeting_titles_written_by_shapes_classify_back():
    from features.meetings_titles import classify_meeting_title
    from pipelines.demo.shapes import meeting_titles

    kinds = pd.Series(["qbr", "onboarding", "training", "call", "other"] * 20)
    ids = pd.Series([f"m{i}" for i in range(len(kinds))])
    start = pd.Series(["2025-08-01T10:00:00Z"] * len(kinds))
    titles = meeting_titles(kinds, ids, start)
    assert classify_meeting_title(titles).tolist() == kinds.tolist()
    assert titles.str.contains("Q3 Business Review").any()
