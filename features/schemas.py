"""The CRM export contract: one canonical table spec and one pandera schema per table.

Every export, whatever CRM it came from, is read into these tables by `ingest`.
The specs below are the single source of truth: the pandera schemas, the README's
contract table and the ingestion code are all derived from them.

Conventions:
- ``timestamp`` columns are timezone-aware UTC (``datetime64[ns, UTC]``);
- ``date`` columns are calendar dates, stored as ``datetime64`` at midnight, no time zone;
- ids are stripped strings;
- no personal data: contact names, e-mail addresses, subjects and bodies are dropped at ingest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa


@dataclass(frozen=True)
class Column:
    """One column of a canonical table."""

    name: str
    dtype: str  # one of: id, str, category, timestamp, date, float, int, bool
    meaning: str
    required: bool = True  # must be present in the export (after preset mapping)
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None


@dataclass(frozen=True)
class Table:
    """One canonical table: its columns, key and whether an export must have it."""

    name: str
    required: bool
    meaning: str
    key: tuple[str, ...]
    columns: tuple[Column, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


ACCOUNTS = Table(
    name="accounts",
    required=True,
    meaning="One row per customer account (company).",
    key=("account_id",),
    columns=(
        Column("account_id", "id", "Unique account id (CRM Id)."),
        Column(
            "account_name",
            "str",
            "Company name; shown in the at-risk CSV, never a feature.",
            required=False,
            nullable=True,
        ),
        Column(
            "owner",
            "str",
            "Account owner / CSM id or name; shown in the at-risk CSV, never a feature.",
            required=False,
            nullable=True,
        ),
        Column("created_date", "date", "Date the account became a customer (signup)."),
        Column("region", "category", "Sales region, e.g. NA, EMEA, LATAM, APAC.", required=False, nullable=True),
        Column("country", "category", "ISO 3166 alpha-2 country code.", required=False, nullable=True),
        Column(
            "segment", "category", "Customer segment, e.g. SMB, Mid-Market, Enterprise.", required=False, nullable=True
        ),
        Column("industry", "category", "Industry.", required=False, nullable=True),
        Column(
            "timezone",
            "str",
            "IANA time zone of the customer (business hours, holidays); UTC when absent.",
            required=False,
            nullable=True,
        ),
    ),
)

CONTRACTS = Table(
    name="contracts",
    required=True,
    meaning="One row per subscription contract term (new business or renewal).",
    key=("contract_id",),
    columns=(
        Column("contract_id", "id", "Unique contract id."),
        Column("account_id", "id", "Account the contract belongs to."),
        Column("start_date", "date", "First day of the term."),
        Column("end_date", "date", "Last day of the term (exclusive end is start of next term)."),
        Column("arr", "float", "Annual recurring revenue of the term, in the export's currency.", min_value=0),
        Column("seats", "int", "Contracted seats (licensed users).", required=False, nullable=True, min_value=0),
        Column(
            "status",
            "category",
            "active, ended or cancelled.",
            required=False,
            nullable=True,
            allowed=("active", "ended", "cancelled"),
        ),
        Column(
            "cancel_date",
            "date",
            "Date a cancelled contract effectively stopped; empty otherwise.",
            required=False,
            nullable=True,
        ),
    ),
)

EMAILS = Table(
    name="emails",
    required=False,
    meaning="One row per e-mail message between the customer and us. Only ids, direction and time are kept.",
    key=("email_id",),
    columns=(
        Column("email_id", "id", "Unique message id."),
        Column("account_id", "id", "Account the message relates to."),
        Column("thread_id", "id", "Conversation thread id."),
        Column("sent_at", "timestamp", "When the message was sent (UTC)."),
        Column(
            "direction",
            "category",
            "inbound (from the customer) or outbound (from us).",
            allowed=("inbound", "outbound"),
        ),
    ),
)

MEETINGS = Table(
    name="meetings",
    required=False,
    meaning="One row per meeting or call with the account. Titles are classified at ingest, then dropped.",
    key=("meeting_id",),
    columns=(
        Column("meeting_id", "id", "Unique meeting id."),
        Column("account_id", "id", "Account met."),
        Column("start_at", "timestamp", "Meeting start (UTC)."),
        Column(
            "meeting_type",
            "category",
            "qbr (quarterly/executive business review), onboarding, training, call or other; "
            "derived from the title when the export has none.",
            allowed=("qbr", "onboarding", "training", "call", "other"),
        ),
    ),
)

TICKETS = Table(
    name="tickets",
    required=False,
    meaning="One row per support ticket.",
    key=("ticket_id",),
    columns=(
        Column("ticket_id", "id", "Unique ticket id."),
        Column("account_id", "id", "Account that opened the ticket."),
        Column("created_at", "timestamp", "Ticket creation (UTC)."),
        Column(
            "first_response_at",
            "timestamp",
            "Our first public response (UTC); empty if none yet.",
            required=False,
            nullable=True,
        ),
        Column(
            "closed_at",
            "timestamp",
            "When the ticket was closed or solved (UTC); empty while open.",
            required=False,
            nullable=True,
        ),
        Column("priority", "category", "low, normal, high or urgent.", allowed=("low", "normal", "high", "urgent")),
        Column("is_escalated", "bool", "Escalated to engineering or management.", required=False, nullable=True),
        Column(
            "csat",
            "float",
            "Satisfaction rating 1-5 given on the ticket; empty if not rated.",
            required=False,
            nullable=True,
            min_value=1,
            max_value=5,
        ),
    ),
)

USAGE_EVENTS = Table(
    name="usage_events",
    required=False,
    meaning="Product usage: one row per (user, feature, event time) with a count. Usually the largest table.",
    key=(),
    columns=(
        Column("account_id", "id", "Account (group) of the user."),
        Column("user_id", "id", "Pseudonymous user id (hashed at ingest)."),
        Column("feature", "str", "Product feature or event name."),
        Column("event_at", "timestamp", "Event time (UTC)."),
        Column(
            "event_count",
            "int",
            "Number of events this row stands for (1 for raw track calls).",
            required=False,
            min_value=1,
        ),
    ),
)

SURVEYS = Table(
    name="surveys",
    required=False,
    meaning="One row per survey sent: NPS (0-10) or CSAT (1-5).",
    key=("survey_id",),
    columns=(
        Column("survey_id", "id", "Unique survey id."),
        Column("account_id", "id", "Account surveyed."),
        Column("sent_at", "timestamp", "When the survey was sent (UTC)."),
        Column("survey_type", "category", "nps or csat.", allowed=("nps", "csat")),
        Column(
            "responded_at",
            "timestamp",
            "When it was answered (UTC); empty when not answered.",
            required=False,
            nullable=True,
        ),
        Column(
            "score",
            "float",
            "Score: 0-10 for NPS, 1-5 for CSAT; empty when not answered.",
            required=False,
            nullable=True,
            min_value=0,
            max_value=10,
        ),
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (ACCOUNTS, CONTRACTS, EMAILS, MEETINGS, TICKETS, USAGE_EVENTS, SURVEYS)}
REQUIRED_TABLES = tuple(name for name, t in TABLES.items() if t.required)
OPTIONAL_TABLES = tuple(name for name, t in TABLES.items() if not t.required)

_PANDAS_DTYPES = {
    "id": "string",
    "str": "string",
    "category": "string",
    "timestamp": "datetime64[ns, UTC]",
    "date": "datetime64[ns]",
    "float": "float64",
    "int": "Int64",
    "bool": "boolean",
}


def pandas_dtype(column: Column) -> str:
    """The pandas dtype a canonical column is stored with."""
    return _PANDAS_DTYPES[column.dtype]


def _checks(column: Column) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if column.allowed is not None:
        checks.append(pa.Check.isin(list(column.allowed)))
    if column.min_value is not None:
        checks.append(pa.Check.ge(column.min_value))
    if column.max_value is not None:
        checks.append(pa.Check.le(column.max_value))
    if column.dtype == "id":
        checks.append(pa.Check.str_length(min_value=1))
    return checks


def schema_for(table: Table, unique_key: bool = True) -> pa.DataFrameSchema:
    """A strict, coercing pandera schema for one canonical table (without the key check: rows judged alone)."""
    columns = {
        c.name: pa.Column(pandas_dtype(c), checks=_checks(c), nullable=c.nullable, coerce=True, required=True)
        for c in table.columns
    }
    unique = list(table.key) if table.key and unique_key else None
    return pa.DataFrameSchema(columns, strict=True, ordered=False, unique=unique, name=table.name)


SCHEMAS: dict[str, pa.DataFrameSchema] = {name: schema_for(t) for name, t in TABLES.items()}
# Ingest checks rows chunk by chunk, before duplicates and key conflicts are settled over the whole table.
ROW_SCHEMAS: dict[str, pa.DataFrameSchema] = {name: schema_for(t, unique_key=False) for name, t in TABLES.items()}


def empty_table(name: str) -> pd.DataFrame:
    """A zero-row frame with the canonical columns and dtypes of table ``name``."""
    table = TABLES[name]
    return pd.DataFrame({c.name: pd.Series(dtype=pandas_dtype(c)) for c in table.columns})


def contract_markdown() -> str:
    """The export contract as Markdown tables, for the README."""
    lines: list[str] = []
    for t in TABLES.values():
        need = "required" if t.required else "optional"
        lines += [
            f"#### `{t.name}` ({need})",
            "",
            t.meaning,
            "",
            "| column | type | required | meaning |",
            "|---|---|---|---|",
        ]
        for c in t.columns:
            req = "yes" if c.required else ("no, may be empty" if c.nullable else "no")
            lines.append(f"| `{c.name}` | {c.dtype} | {req} | {c.meaning} |")
        lines.append("")
    return "\n".join(lines)
