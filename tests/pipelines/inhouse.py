"""An in-house export: the demo export with every canonical column renamed as a home-grown CRM might name it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

RENAMES = {
    "accounts": {
        "account_id": "Company ID",
        "account_name": "acct_name",
        "owner": "Account Manager",
        "created_date": "Customer Since",
        "region": "Sales Region",
        "country": "Country Code",
        "segment": "Tier",
        "industry": "Sector",
        "timezone": "TZ",
    },
    "contracts": {
        "contract_id": "Contract No",
        "account_id": "Company ID",
        "start_date": "ContractStart",
        "end_date": "ContractEnd",
        "arr": "Annual Amount",
        "seats": "Licenses",
        "status": "Contract Status",
        "cancel_date": "CancelledOn",
    },
    "emails": {
        "email_id": "Message ID",
        "account_id": "Company ID",
        "thread_id": "Thread",
        "sent_at": "SentAt",
        "direction": "Direction",
    },
    "meetings": {
        "meeting_id": "Meeting Ref",
        "account_id": "Company ID",
        "start_at": "Starts",
        "meeting_type": "Meeting Kind",
    },
    "tickets": {
        "ticket_id": "Ticket Number",
        "account_id": "Company ID",
        "created_at": "Opened At",
        "first_response_at": "First Reply At",
        "closed_at": "Resolved At",
        "priority": "Severity",
        "is_escalated": "Escalated",
        "csat": "CSAT Rating",
    },
    "usage_events": {
        "account_id": "company_id",
        "user_id": "user",
        "feature": "event_name",
        "event_at": "event_time",
        "event_count": "count",
    },
    "surveys": {
        "survey_id": "Survey Ref",
        "account_id": "Company ID",
        "sent_at": "Sent Date",
        "survey_type": "Survey Kind",
        "responded_at": "Answered At",
        "score": "Score",
    },
}


def rename_export(demo: Path, target: Path) -> Path:
    """Copy a canonical export to ``target`` with the columns of every file renamed (``RENAMES``)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(demo.iterdir()):
        table = path.name.split(".")[0]
        if table not in RENAMES:
            shutil.copy2(path, target / path.name)
            continue
        if path.name.endswith(".parquet"):
            pd.read_parquet(path).rename(columns=RENAMES[table]).to_parquet(target / path.name, index=False)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame.rename(columns=RENAMES[table]).to_csv(target / path.name, index=False)
    return target
