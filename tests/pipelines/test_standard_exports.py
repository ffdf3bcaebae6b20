"""A standard Salesforce org and a HubSpot portal, read by the built-in presets with no mapping edits.

The fixtures (``tests/fixtures/salesforce_standard``, ``tests/fixtures/hubspot_portal``) follow
the vendors' documented object and property names; ``tests/fixtures/make_vendor_fixtures.py``
wrote them and lists the awkward cases planted in them.
"""

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest

from features.build import build_features
from features.schemas import SCHEMAS, TABLES
from pipelines.ingestion import ingest_export
from tests.features.canonical_frames import feature_params

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SALESFORCE = FIXTURES / "salesforce_standard"
HUBSPOT = FIXTURES / "hubspot_portal"
EXPORT_DATE = dt.date(2025, 6, 30)


@pytest.fixture(scope="module")
def org():
    return ingest_export(SALESFORCE, "salesforce", EXPORT_DATE)


@pytest.fixture(scope="module")
def portal():
    return ingest_export(HUBSPOT, "hubspot", EXPORT_DATE)


def _raw(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name, dtype=str, keep_default_na=False)


def _by_key(result, table: str) -> pd.DataFrame:
    return result.tables[table].set_index(TABLES[table].key[0])


def _personal_values(*columns: pd.Series) -> set[str]:
    return {v for column in columns for v in column if "@" in v}


def test_every_table_validates_and_every_row_is_accounted_for(org, portal):
    for result in (org, portal):
        assert result.report.tables_absent == []
        for name, frame in result.tables.items():
            SCHEMAS[name].validate(frame)
        for report in result.report.tables.values():
            accounted = report.rows_kept + sum(report.rows_rejected.values()) + sum(report.rows_filtered.values())
            assert accounted == report.rows_read
            assert report.rows_rejected == {}, (report.table, report.rows_rejected)


def test_every_account_of_the_export_is_a_canonical_account(org, portal):
    assert sorted(org.tables["accounts"]["account_id"]) == sorted(_raw(SALESFORCE, "Account.csv")["Id"])
    assert sorted(portal.tables["accounts"]["account_id"]) == sorted(_raw(HUBSPOT, "companies.csv")["hs_object_id"])
    assert len(org.tables["accounts"]) == len(portal.tables["accounts"]) == 30


# --- Salesforce: a standard org --------------------------------------------------------------


def test_salesforce_arr_comes_from_the_won_opportunities(org):
    contracts = _by_key(org, "contracts")
    # linked by ContractId: the new business deal (138,100) and its add-on (5,000), added up; seats too
    assert contracts.loc["800Dn0000000000AAA", "arr"] == 143_100.0
    assert contracts.loc["800Dn0000000000AAA", "seats"] == 119
    assert contracts.loc["800Dn0000000002AAC", "arr"] == 17_000.0
    # the renewal's opportunity is not linked: the account's latest won deal closing on or before the
    # start (18,700 on 2024-11-26), not the first deal (17,000) nor the add-on won after the start (3,000)
    assert contracts.loc["800Dn0000000003AAD", "arr"] == 18_700.0
    # auto-renewed with no opportunity at all: the previous deal's amount carries over
    assert contracts.loc["800Dn0000000005AAF", "arr"] == 4_900.0
    report = org.report.tables["contracts"]
    assert report.rows_repaired["arr from the account's latest won opportunity before the start"] == 2


def test_salesforce_contracts_activated_only_with_status_and_cancellations(org):
    contracts = _by_key(org, "contracts")
    report = org.report.tables["contracts"]
    assert report.rows_filtered == {"contract not activated": 2}
    assert {"800Dn0000000012AAE", "800Dn0000000015AAH"}.isdisjoint(contracts.index)  # Draft, In Approval
    assert contracts.loc["800Dn0000000002AAC", "status"] == "ended"  # StatusCode Expired
    terminated = contracts.loc["800Dn0000000007AAH"]
    assert (terminated["status"], terminated["cancel_date"]) == ("cancelled", pd.Timestamp("2025-05-09"))
    # Terminated without Cancellation_Date__c: it stopped at its EndDate (counted as a derivation)
    undated = contracts.loc["800Dn0000000009AAB"]
    assert undated["cancel_date"] == undated["end_date"] == pd.Timestamp("2026-03-17")
    assert report.rows_repaired["cancel_date derived (end_date if status is cancelled)"] == 1


def test_salesforce_emails_logged_on_cases_and_opportunities_find_their_account(org):
    raw = _raw(SALESFORCE, "EmailMessage.csv").set_index("Id")
    emails = _by_key(org, "emails")
    on_case = raw.index[raw["RelatedToId"].str.startswith("500")]
    on_opportunity = raw.index[raw["RelatedToId"].str.startswith("006")]
    assert len(on_case) == len(on_opportunity) == 2
    assert set(emails.loc[on_case.union(on_opportunity), "account_id"]) == {"001Dn0000000008AAA"}
    assert set(emails.loc[on_case, "thread_id"]) == {"500Dn0000000039AAH"}  # the case is the thread
    assert org.report.tables["emails"].rows_filtered == {"draft e-mail (never sent)": 1}  # Status 5
    assert emails.loc["02sDn0000000000AAA", "sent_at"] == pd.Timestamp(
        raw.loc["02sDn0000000000AAA", "MessageDate"].replace(".000+0000", ""), tz="UTC"
    )


def test_salesforce_cancelled_events_are_filtered_and_opportunity_events_find_their_account(org):
    report = org.report.tables["meetings"]
    assert report.rows_filtered == {"meeting cancelled": 1}
    meetings = _by_key(org, "meetings")
    assert "00UDn0000000047AAH" not in meetings.index  # "Canceled: Q2 Business Review"
    events = _raw(SALESFORCE, "Event.csv")
    on_opportunity = events.loc[events["AccountId"] == "", "Id"]
    assert len(on_opportunity) > 0
    assert set(meetings.loc[on_opportunity, "account_id"]) == {"001Dn0000000008AAA"}
    assert set(meetings["meeting_type"]) == {"qbr", "onboarding", "training", "call"}


def test_salesforce_case_fields_under_their_custom_spellings(org):
    raw = _raw(SALESFORCE, "Case.csv").set_index("Id")
    tickets = _by_key(org, "tickets")
    answered = raw.index[raw["First_Response_Date__c"] != ""]
    assert tickets.loc[answered, "first_response_at"].notna().all()
    assert tickets.loc["500Dn0000000003AAD", "priority"] == "urgent"  # "P1 - Critical", by pattern
    assert set(tickets["priority"]) == {"low", "normal", "high", "urgent"}


def test_survey_tool_rows_without_ids_get_stable_distinct_ids(org):
    surveys = org.tables["surveys"]
    report = org.report.tables["surveys"]
    assert report.rows_filtered == {"survey type not in the contract (CES)": 24}
    assert surveys["survey_id"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert surveys["survey_id"].is_unique
    again = ingest_export(SALESFORCE, "salesforce", EXPORT_DATE).tables["surveys"]
    assert again["survey_id"].tolist() == surveys["survey_id"].tolist()
    raw = _raw(SALESFORCE, "survey_responses.csv")
    kept = raw[~raw["Survey"].str.contains("CES")].reset_index(drop=True)
    expected = kept["Survey"].map({"In-app CSAT": "csat"}).fillna("nps")  # "Relationship NPS H1 2024"...
    assert surveys["survey_type"].tolist() == expected.tolist()
    first = surveys.iloc[0]
    assert (first["account_id"], first["score"]) == ("001Dn0000000000AAA", 7.0)
    assert first["responded_at"] == pd.Timestamp("2024-03-15 00:40:07", tz="UTC")


def test_segment_track_calls_without_counts_are_one_event_each(org):
    usage = org.tables["usage_events"]
    report = org.report.tables["usage_events"]
    assert report.rows_kept == report.rows_read == len(usage) > 5000
    assert (usage["event_count"] == 1).all()
    assert "no event_count column: each row counts as 1 (the contract's default)" in report.notes
    assert usage["user_id"].str.fullmatch(r"[0-9a-f]{16}").all()


def test_no_personal_data_reaches_the_canonical_tables(org, portal):
    sf_people = _personal_values(
        _raw(SALESFORCE, "EmailMessage.csv")["FromAddress"], _raw(SALESFORCE, "survey_responses.csv")["Respondent"]
    )
    hs_people = _personal_values(
        _raw(HUBSPOT, "emails.csv")["hs_email_from_email"],
        _raw(HUBSPOT, "feedback_submissions.csv")["hs_contact_email_address"],
    )
    for result, people in ((org, sf_people), (portal, hs_people)):
        assert people
        for frame in result.tables.values():
            for column in frame.columns:
                if frame[column].dtype == "string" or frame[column].dtype == object:
                    assert not people & set(frame[column].dropna().astype(str)), column


# --- HubSpot: a portal ---------------------------------------------------------------------


def test_hubspot_meetings_that_did_not_take_place_are_filtered_with_reasons(portal):
    report = portal.report.tables["meetings"]
    assert report.rows_filtered == {"meeting cancelled": 1, "meeting no-show": 1}
    meetings = _by_key(portal, "meetings")
    assert {"81000000046", "81000000064"}.isdisjoint(meetings.index)  # CANCELED QBR, NO_SHOW QBR
    assert meetings.loc["81000000110", "meeting_type"] == "training"  # RESCHEDULED: moved, then held
    assert len(meetings) == report.rows_read - 2


def test_hubspot_feedback_in_the_current_spelling(portal):
    raw = _raw(HUBSPOT, "feedback_submissions.csv").set_index("hs_object_id")
    assert "hs_createdate" not in raw.columns and "hs_response_value" not in raw.columns
    surveys = _by_key(portal, "surveys")
    row = surveys.loc["6100000001"]
    assert row["score"] == 9.0  # hs_value
    assert row["sent_at"] == row["responded_at"] == pd.Timestamp("2024-09-17 18:30:14.211", tz="UTC")
    assert surveys.loc["6100000000", "survey_type"] == "nps"  # no hs_survey_type: "Relationship NPS H1 2024"
    assert portal.report.tables["surveys"].rows_filtered == {"survey type not in the contract (CES or custom)": 17}
    assert set(surveys["survey_type"]) == {"nps", "csat"}


def test_hubspot_feedback_in_the_older_spelling(tmp_path, portal):
    """hs_response_value + hs_createdate (no submission timestamp) read the same scores, answered at creation."""
    for path in HUBSPOT.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    raw = _raw(HUBSPOT, "feedback_submissions.csv")
    older = raw.rename(columns={"hs_value": "hs_response_value", "hs_submission_timestamp": "hs_createdate"})
    older.to_csv(tmp_path / "feedback_submissions.csv", index=False)
    result = ingest_export(tmp_path, "hubspot", EXPORT_DATE)
    pd.testing.assert_frame_equal(result.tables["surveys"], portal.tables["surveys"])
    assert result.report.tables["surveys"].rows_repaired == {"responded_at derived (sent_at if score is present)": 171}


def test_hubspot_deals_in_any_pipeline_with_arr_and_contract_dates(portal):
    contracts = _by_key(portal, "contracts")
    report = portal.report.tables["contracts"]
    assert report.rows_filtered == {"not a won deal": 8}  # lost and open deals, default or renewals pipeline
    renewal = contracts.loc["9100000101"]  # renewals pipeline: dealstage is a number, hs_is_closed_won true
    assert (renewal["start_date"], renewal["end_date"], renewal["arr"]) == (
        pd.Timestamp("2024-12-09"),
        pd.Timestamp("2025-12-08"),
        135_900.0,
    )
    assert contracts.loc["9100000404", "arr"] == 4_900.0  # no hs_arr (no recurring line items): the amount
    # no contract dates: the close date starts a twelve-month term
    undated = contracts.loc["9100000202"]
    assert (undated["start_date"], undated["end_date"]) == (pd.Timestamp("2023-12-01"), pd.Timestamp("2024-11-30"))
    assert report.rows_repaired == {"end_date derived (start_date + 12 months - 1 day)": 2}


def test_hubspot_companies_countries_and_customer_dates(portal):
    accounts = _by_key(portal, "accounts")
    assert set(accounts["country"]) == {"US", "GB", "FR", "DE", "CA", "BR", "ES", "AU"}  # from "United States"...
    assert accounts.loc["18000000000", "created_date"] == pd.Timestamp("2023-12-09")  # became a customer
    assert accounts.loc["18000142542", "created_date"] == pd.Timestamp("2023-07-11")  # no such date: createdate
    assert accounts.loc["18000000000", "segment"] == "Enterprise"  # customer_segment
    assert pd.isna(accounts.loc["18000134623", "segment"])


def test_hubspot_emails_and_raw_amplitude_events(portal):
    assert portal.report.tables["emails"].rows_filtered == {"forwarded email": 1, "email not delivered": 1}
    usage = portal.tables["usage_events"]
    assert (usage["event_count"] == 1).all()
    assert set(usage["account_id"]) <= set(portal.tables["accounts"]["account_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", usage["user_id"].iloc[0])


# --- and the features run on both ------------------------------------------------------------


@pytest.mark.parametrize("which", ["org", "portal"])
def test_features_build_on_the_vendor_exports(request, which):
    result = request.getfixturevalue(which)
    snapshots = [dt.date(2024, 9, 2), dt.date(2025, 1, 6), dt.date(2025, 6, 30)]
    frame, catalogue = build_features(result.tables, snapshots, feature_params(first_snapshot="2024-09-02"))
    assert catalogue["dropped_families"] == {}
    assert frame["snapshot_date"].nunique() == 3
    assert len(frame) >= 60
    assert frame.loc[frame["snapshot_date"] == pd.Timestamp("2024-09-02"), "label"].sum() >= 1
    assert frame["usage_since_last_days"].notna().all()
