"""Canonical export to CRM file shapes: the inverse of the presets, to test them at full size.

``write_export_shape`` rewrites a canonical export (as the demo simulator writes it) the
way Salesforce or HubSpot would have exported the same book of accounts: their file and
column names, Salesforce ``+0000`` datetimes, HubSpot epoch milliseconds, ``Incoming``
true/false, ``INCOMING_EMAIL``, meeting titles instead of meeting types, Segment or
Amplitude usage files. Values are carried over as text, so messy rows stay messy: only
values that parse are reformatted, the rest are written as they were.

Documented differences after a round trip (canonical -> shape -> ingest with the preset):
timestamps are kept to the millisecond; non-UTC offsets are written in UTC (so the
"offset converted to UTC" repair is not counted again); a meeting_type outside the
vocabulary becomes a title classified as "other" instead of being rejected.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import InputError
from features.schemas import TABLES
from pipelines.ingestion.readers import ROW, find_file, read_export_file
from pipelines.ingestion.repairs import parse_timestamps
from pipelines.io import write_atomic, write_parquet

FORMATS = ("salesforce", "hubspot")
_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")

MEETING_TITLES: dict[str, tuple[str, ...]] = {
    "qbr": (
        "{quarter} Business Review",
        "QBR",
        "Executive Business Review",
        "EBR",
        "Quarterly review",
        "Revue trimestrielle",
    ),
    "onboarding": ("Onboarding", "Kickoff", "Onboarding session"),
    "training": ("Training", "Webinar: new dashboards", "Admin training"),
    "call": ("Weekly sync", "Check-in", "Call", "Support call"),
    "other": ("Product roadmap", "Lunch", "Contract discussion", "Demo of new features"),
}


def write_export_shape(canonical_dir: Path, out_dir: Path, fmt: str) -> None:
    """Write the tables of ``canonical_dir`` into ``out_dir`` in the file shapes of ``fmt``.

    Args:
        canonical_dir: a canonical export (``accounts.csv``, ``usage_events.parquet``...).
        out_dir: folder to write; created if needed.
        fmt: ``salesforce`` or ``hubspot``.
    """
    if fmt not in FORMATS:
        raise InputError(f"export shape '{fmt}': use one of {', '.join(FORMATS)}")
    canonical_dir, out_dir = Path(canonical_dir), Path(out_dir)
    writers = _SALESFORCE if fmt == "salesforce" else _HUBSPOT
    for table, (file_name, shape) in writers.items():
        frame = _read_canonical(canonical_dir, table)
        if frame is None:
            continue
        _write(shape(frame), out_dir / file_name)


def _read_canonical(folder: Path, table: str) -> pd.DataFrame | None:
    path = find_file(folder, [table])
    if path is None:
        if TABLES[table].required:
            raise InputError(f"{folder}: required table '{table}' not found")
        return None
    frame = read_export_file(path).frame.drop(columns=[ROW])
    missing = [c for c in TABLES[table].column_names if c not in frame.columns]
    return frame.assign(**{c: pd.NA for c in missing})


def _write(frame: pd.DataFrame, target: Path) -> None:
    if target.suffix == ".parquet":
        write_parquet(frame, target)
    else:
        # the temporary name hides the suffix; level 1: gzip -9 would triple the time for a few % of size
        write_atomic(target, lambda tmp: _write_csv(frame, tmp, gz=target.name.endswith(".gz")))


def _write_csv(frame: pd.DataFrame, path: Path, gz: bool) -> None:
    """CSV, gzipped without a file name or time in the header, so the same export gives the same bytes."""
    if not gz:
        frame.to_csv(path, index=False)
        return
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1) as sink,
        io.TextIOWrapper(sink, encoding="utf-8", newline="") as text,
    ):
        frame.to_csv(text, index=False)


# --- value formats --------------------------------------------------------------------


def _reformat(values: pd.Series, render: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Render parseable timestamps in the CRM's format; leave unparseable text untouched."""
    parsed = parse_timestamps(values).values
    ok = parsed.notna()
    out = pd.Series(pd.NA, index=values.index, dtype="string")
    out[ok] = render(parsed[ok])
    unparsed = values.notna() & ~ok
    if unparsed.any():  # typed columns never get here: no costly datetime-to-text conversion
        out[unparsed] = values[unparsed].astype("string")
    return out


def _iso_text(ts: pd.Series, unit: str) -> pd.Series:
    """UTC timestamps as ISO text without offset, in C (strftime is far slower on millions of rows)."""
    naive = ts.dt.tz_localize(None).to_numpy(dtype=f"datetime64[{unit}]")
    return pd.Series(np.datetime_as_string(naive, unit=unit), index=ts.index, dtype="string")


def _salesforce_datetime(ts: pd.Series) -> pd.Series:
    return _iso_text(ts, "ms") + "+0000"


def _iso_z(ts: pd.Series) -> pd.Series:
    return _iso_text(ts, "ms") + "Z"


def _epoch_ms(ts: pd.Series) -> pd.Series:
    return ((ts - _EPOCH) // pd.Timedelta(milliseconds=1)).astype("Int64").astype("string")


def _amplitude_time(ts: pd.Series) -> pd.Series:
    return _iso_text(ts, "us").str.replace("T", " ", regex=False)


def _sf_date(values: pd.Series) -> pd.Series:
    """A date as a Salesforce datetime at midnight UTC (CreatedDate is a datetime field)."""
    text = values.astype("string").str.strip()
    is_date = text.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False)
    return text.mask(is_date, text + "T00:00:00.000+0000")


def _epoch_date(values: pd.Series) -> pd.Series:
    """A date as HubSpot epoch milliseconds at midnight UTC."""
    text = values.astype("string").str.strip()
    is_date = text.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False)
    return _reformat(text.where(is_date), _epoch_ms).fillna(text).where(text.notna())


def _mapped(values: pd.Series, mapping: dict[str, str]) -> pd.Series:
    """Canonical codes to CRM codes; unknown values pass through so they are rejected on the way back."""
    text = values.astype("string")
    return text.str.strip().map(mapping).fillna(text)


def meeting_titles(kinds: pd.Series, ids: pd.Series, start: pd.Series) -> pd.Series:
    """A realistic title per meeting type, picked by a hash of the id; some QBRs name their quarter."""
    kinds = kinds.astype("string").str.strip()
    pick = pd.util.hash_pandas_object(ids.astype("string"), index=False).to_numpy()
    quarter = "Q" + parse_timestamps(start).values.dt.quarter.astype("Int64").astype("string")
    titles = kinds.copy()  # an unknown type is carried over as the title itself
    for kind, options in MEETING_TITLES.items():
        picked = pd.Series(np.asarray(options, dtype=object)[pick % len(options)], index=kinds.index, dtype="string")
        with_quarter = (quarter + " Business Review").fillna("Business Review")
        picked = picked.mask(picked == "{quarter} Business Review", with_quarter)
        titles = titles.mask(kinds.str.lower() == kind, picked)
    return titles


# --- Salesforce -------------------------------------------------------------------------


def _sf_accounts(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Id": f["account_id"],
            "Name": f["account_name"],
            "CreatedDate": _sf_date(f["created_date"]),
            "OwnerId": f["owner"],
            "BillingCountry": f["country"],
            "Industry": f["industry"],
            "Region__c": f["region"],
            "Segment__c": f["segment"],
            "Timezone__c": f["timezone"],
        }
    )


def _sf_contracts(f: pd.DataFrame) -> pd.DataFrame:
    status = {"active": "Activated", "ended": "Expired", "cancelled": "Terminated"}
    return pd.DataFrame(
        {
            "Id": f["contract_id"],
            "AccountId": f["account_id"],
            "StartDate": f["start_date"],
            "EndDate": f["end_date"],
            "Status": _mapped(f["status"], status),
            "ARR__c": f["arr"],
            "Seats__c": f["seats"],
            "Cancel_Date__c": f["cancel_date"],
        }
    )


def _sf_emails(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Id": f["email_id"],
            "ParentId": pd.NA,
            "RelatedToId": f["account_id"],
            "Incoming": _mapped(f["direction"], {"inbound": "true", "outbound": "false"}),
            "MessageDate": _reformat(f["sent_at"], _salesforce_datetime),
            "ThreadIdentifier": f["thread_id"],
            "Subject": "Follow-up",
        }
    )


def _sf_meetings(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Id": f["meeting_id"],
            "AccountId": f["account_id"],
            "StartDateTime": _reformat(f["start_at"], _salesforce_datetime),
            "Subject": meeting_titles(f["meeting_type"], f["meeting_id"], f["start_at"]),
            "Type": "Meeting",
        }
    )


def _sf_tickets(f: pd.DataFrame) -> pd.DataFrame:
    priority = {"low": "Low", "normal": "Medium", "high": "High", "urgent": "Critical"}
    return pd.DataFrame(
        {
            "Id": f["ticket_id"],
            "AccountId": f["account_id"],
            "CreatedDate": _reformat(f["created_at"], _salesforce_datetime),
            "ClosedDate": _reformat(f["closed_at"], _salesforce_datetime),
            "First_Response__c": _reformat(f["first_response_at"], _salesforce_datetime),
            "Priority": _mapped(f["priority"], priority),
            "Status": pd.Series("Closed", index=f.index).where(f["closed_at"].notna(), "Open"),
            "IsEscalated": f["is_escalated"],
            "CSAT__c": f["csat"],
        }
    )


def _sf_usage(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "userId": f["user_id"].astype("string"),
            "event": f["feature"].astype("string"),
            "timestamp": _reformat(f["event_at"], _iso_z),
            "context.groupId": f["account_id"].astype("string"),
            "properties.count": f["event_count"].astype("string"),
        }
    )


def _sf_surveys(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Id": f["survey_id"],
            "Account__c": f["account_id"],
            "Sent_Date__c": _reformat(f["sent_at"], _salesforce_datetime),
            "Type__c": _mapped(f["survey_type"], {"nps": "NPS", "csat": "CSAT"}),
            "Response_Date__c": _reformat(f["responded_at"], _salesforce_datetime),
            "Score__c": f["score"],
        }
    )


# --- HubSpot ------------------------------------------------------------------------------


def _hs_accounts(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "hs_object_id": f["account_id"],
            "name": f["account_name"],
            "createdate": _epoch_date(f["created_date"]),
            "country": f["country"],
            "hubspot_owner_id": f["owner"],
            "industry": f["industry"],
            "region": f["region"],
            "segment": f["segment"],
            "timezone": f["timezone"],
        }
    )


def _hs_contracts(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "hs_object_id": f["contract_id"],
            "dealname": "Subscription",
            "dealstage": "closedwon",
            "amount": f["arr"],
            "closedate": f["start_date"],
            "contract_end_date": f["end_date"],
            "seats": f["seats"],
            "contract_status": f["status"],
            "cancel_date": f["cancel_date"],
            "associatedcompanyid": f["account_id"],
        }
    )


def _hs_emails(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "hs_object_id": f["email_id"],
            "hs_timestamp": _reformat(f["sent_at"], _epoch_ms),
            "hs_email_direction": _mapped(f["direction"], {"inbound": "INCOMING_EMAIL", "outbound": "EMAIL"}),
            "hs_email_status": "SENT",
            "hs_email_thread_id": f["thread_id"],
            "hs_email_subject": "Follow-up",
            "associatedcompanyid": f["account_id"],
        }
    )


def _hs_meetings(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "hs_object_id": f["meeting_id"],
            "hs_meeting_start_time": _reformat(f["start_at"], _epoch_ms),
            "hs_meeting_title": meeting_titles(f["meeting_type"], f["meeting_id"], f["start_at"]),
            "associatedcompanyid": f["account_id"],
        }
    )


def _hs_tickets(f: pd.DataFrame) -> pd.DataFrame:
    priority = {"low": "LOW", "normal": "MEDIUM", "high": "HIGH", "urgent": "URGENT"}
    return pd.DataFrame(
        {
            "hs_object_id": f["ticket_id"],
            "createdate": _reformat(f["created_at"], _epoch_ms),
            "hs_ticket_priority": _mapped(f["priority"], priority),
            "closed_date": _reformat(f["closed_at"], _iso_z),
            "hs_first_agent_reply_date": _reformat(f["first_response_at"], _iso_z),
            "is_escalated": f["is_escalated"],
            "csat": f["csat"],
            "associatedcompanyid": f["account_id"],
        }
    )


def _hs_usage(f: pd.DataFrame) -> pd.DataFrame:
    account = f["account_id"].astype("string")
    return pd.DataFrame(
        {
            "event_type": f["feature"].astype("string"),
            "user_id": f["user_id"].astype("string"),
            "event_time": _reformat(f["event_at"], _amplitude_time),
            "groups": ('{"company_id": "' + account + '"}').fillna("{}"),
            "event_count": f["event_count"].astype("string"),
        }
    )


def _hs_surveys(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "hs_object_id": f["survey_id"],
            "hs_createdate": _reformat(f["sent_at"], _epoch_ms),
            "hs_survey_type": _mapped(f["survey_type"], {"nps": "NPS", "csat": "CSAT"}),
            "hs_submission_timestamp": _reformat(f["responded_at"], _epoch_ms),
            "hs_response_value": f["score"],
            "associatedcompanyid": f["account_id"],
        }
    )


_SALESFORCE = {
    "accounts": ("Account.csv", _sf_accounts),
    "contracts": ("Contract.csv", _sf_contracts),
    "emails": ("EmailMessage.csv.gz", _sf_emails),
    "meetings": ("Event.csv", _sf_meetings),
    "tickets": ("Case.csv", _sf_tickets),
    "usage_events": ("segment_tracks.parquet", _sf_usage),
    "surveys": ("Survey_Response__c.csv", _sf_surveys),
}
_HUBSPOT = {
    "accounts": ("companies.csv", _hs_accounts),
    "contracts": ("deals.csv", _hs_contracts),
    "emails": ("emails.csv.gz", _hs_emails),
    "meetings": ("meetings.csv", _hs_meetings),
    "tickets": ("tickets.csv", _hs_tickets),
    "usage_events": ("amplitude_events.parquet", _hs_usage),
    "surveys": ("feedback_submissions.csv", _hs_surveys),
}
