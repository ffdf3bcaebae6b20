"""Repair rules and reject rules for canonical tables, one small function per rule.

Each function returns what it changed or found as a boolean mask over the rows, so the
caller can count every repaired and every rejected row by rule: nothing disappears
silently. The rules are listed, with their reasons, in the README ("Ingestion rules").
The two rules that compare rows with each other (duplicates, key conflicts) need the whole
table, so they live with the staged table in ``pipelines.ingestion.pipeline``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.errors
import pandera.pandas as pa

from features.duck import arrow_ids, positions_in
from features.errors import InputError
from features.schemas import Column, Table

USER_HASH_CHARS = 16
# Event dates may run at most this many days past the export date. Contracts
# may start up to a year ahead: renewals are signed before the current term ends.
FUTURE_TOLERANCE_DAYS = {"start_date": 366}
DEFAULT_FUTURE_TOLERANCE_DAYS = 1
FUTURE_CHECKED = {
    "accounts": ("created_date",),
    "contracts": ("start_date",),
    "emails": ("sent_at",),
    "meetings": ("start_at",),
    "tickets": ("created_at",),
    "usage_events": ("event_at",),
    "surveys": ("sent_at",),
}
# What happened to a row later: after the export date it had not happened yet when the export
# was taken (a ticket still open, a survey not yet answered), so the value is blanked, not the row lost.
FOLLOW_UPS = {"tickets": ("first_response_at", "closed_at"), "surveys": ("responded_at",)}
_TRUE = ("true", "t", "yes", "y", "1", "1.0")
_FALSE = ("false", "f", "no", "n", "0", "0.0")
_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*[+-]\d{2}:?\d{2}$"
_ZERO_OFFSET = r"[+-]00:?00$"
_EPOCH = r"-?\d+(?:\.\d+)?"


@dataclass(frozen=True)
class Parsed:
    """A coerced column, the rows whose text could not be parsed, and rows changed in passing."""

    values: pd.Series
    bad: pd.Series
    converted: pd.Series  # timestamps with a non-UTC offset, converted to UTC


# --- text clean-up -----------------------------------------------------------------


def strip_text(frame: pd.DataFrame, table: Table) -> tuple[pd.DataFrame, pd.Series]:
    """Trim whitespace in every text column and turn blanks into missing values.

    Returns the frame and the rows where an *id* changed: stray spaces in ids break joins
    silently, so they are counted as the "id whitespace stripped" repair.
    """
    frame = frame.copy()
    id_changed = pd.Series(False, index=frame.index)
    for column in table.columns:
        values = frame[column.name]
        if not _is_text(values):
            continue
        text = values.astype("string")
        # CRLF inside quoted multi-line fields is the same Windows artefact as between rows
        stripped = text.str.strip().str.replace("\r\n", "\n", regex=False)
        if column.dtype == "id":
            id_changed |= (stripped != text).fillna(False)
        frame[column.name] = stripped.mask(stripped == "")
    return frame, id_changed


def lowercase_categories(frame: pd.DataFrame, table: Table) -> tuple[pd.DataFrame, pd.Series]:
    """``Active`` is ``active``: categories with a fixed vocabulary are compared in lower case."""
    frame = frame.copy()
    changed = pd.Series(False, index=frame.index)
    for column in table.columns:
        if column.allowed is None or not _is_text(frame[column.name]):
            continue
        text = frame[column.name].astype("string")
        lowered = text.str.lower()
        changed |= (lowered != text).fillna(False)
        frame[column.name] = lowered
    return frame, changed


def hash_user_ids(values: pd.Series) -> pd.Series:
    """Pseudonymise user ids (often e-mail addresses): sha256, first 16 hex characters.

    Hashes each distinct id once (there are far fewer users than events).
    """
    codes, uniques = pd.factorize(values.astype("string"), use_na_sentinel=True)
    digests = np.array([hashlib.sha256(str(u).encode()).hexdigest()[:USER_HASH_CHARS] for u in uniques], dtype=object)
    present = codes >= 0
    hashed = np.where(present, digests[np.where(present, codes, 0)] if len(digests) else None, None)
    return pd.Series(hashed, index=values.index, dtype="string")


def _is_text(values: pd.Series) -> bool:
    return values.dtype == object or pd.api.types.is_string_dtype(values)


# --- typing, column by column -------------------------------------------------------


def coerce(values: pd.Series, column: Column, fmt: str = "auto") -> Parsed:
    """Parse one column to its canonical dtype; unparseable non-empty values are flagged, not guessed."""
    parsers = {"timestamp": parse_timestamps, "date": parse_dates}
    if column.dtype in parsers:
        return parsers[column.dtype](values, fmt)
    none = pd.Series(False, index=values.index)
    if column.dtype == "float":
        parsed = _numbers(values)
        return Parsed(parsed, values.notna() & parsed.isna(), none)
    if column.dtype == "int":
        numbers = _numbers(values)
        whole = numbers.isna() | (numbers % 1 == 0)
        bad = (values.notna() & numbers.isna()) | ~whole
        return Parsed(numbers.where(whole).round().astype("Int64"), bad, none)
    if column.dtype == "bool":
        return parse_bools(values)
    return Parsed(values.astype("string"), none, none)


def _numbers(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    return pd.to_numeric(values.astype("string"), errors="coerce").astype("float64")


def parse_bools(values: pd.Series) -> Parsed:
    """true/false, yes/no, 1/0 (any case) to booleans."""
    text = values.astype("string").str.strip().str.lower()
    parsed = pd.Series(pd.NA, index=values.index, dtype="boolean")
    parsed[text.isin(_TRUE).fillna(False)] = True
    parsed[text.isin(_FALSE).fillna(False)] = False
    return Parsed(parsed, values.notna() & parsed.isna(), pd.Series(False, index=values.index))


def parse_timestamps(values: pd.Series, fmt: str = "auto") -> Parsed:
    """Any of ISO 8601 (``Z``, ``+02:00``, Salesforce ``+0000``), epoch s/ms or a strftime pattern, to UTC.

    Timestamps without an offset are taken as UTC. Rows carrying a non-zero offset are
    flagged as converted (the "offset converted to UTC" repair).
    """
    none = pd.Series(False, index=values.index)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return Parsed(values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]"), none, none)
    if pd.api.types.is_datetime64_dtype(values):
        return Parsed(values.dt.tz_localize("UTC").astype("datetime64[ns, UTC]"), none, none)
    if pd.api.types.is_numeric_dtype(values):
        parsed = _from_epoch(values.astype("float64"), fmt)
        return Parsed(parsed, values.notna() & parsed.isna(), none)
    text = values.astype("string").str.strip()
    if "%" in fmt:
        parsed = pd.to_datetime(text, format=fmt, utc=True, errors="coerce")
    else:
        is_epoch = matches(text, f"^(?:{_EPOCH})$")
        from_text = pd.to_datetime(text.mask(is_epoch), utc=True, format="ISO8601", errors="coerce")
        from_epoch = _from_epoch(pd.to_numeric(text.where(is_epoch), errors="coerce"), fmt)
        parsed = from_text.where(~is_epoch, from_epoch)
        if fmt in ("epoch_ms", "epoch_s"):
            parsed = parsed.where(is_epoch)
    parsed = parsed.astype("datetime64[ns, UTC]")
    bad = text.notna() & parsed.isna()
    converted = matches(text, _OFFSET) & ~matches(text, _ZERO_OFFSET) & ~bad
    return Parsed(parsed, bad, converted)


def matches(text: pd.Series, pattern: str) -> pd.Series:
    """Whether each (stripped) text matches ``pattern`` anywhere; missing is False.

    Arrow's RE2 engine: pandas' ``str.contains`` falls back to Python's ``re`` for a pattern
    ending in ``$`` (which in Python also matches before a final newline), one call per row,
    30x slower on millions of timestamps. The values are stripped, so the two agree.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    found = pc.match_substring_regex(pa.array(text.astype("string[pyarrow]"), from_pandas=True), pattern)
    return pd.Series(found.fill_null(False).to_numpy(zero_copy_only=False), index=text.index, dtype=bool)


def _from_epoch(numbers: pd.Series, fmt: str) -> pd.Series:
    """Epoch numbers to UTC: milliseconds when asked, or when too large to be seconds (after 1973)."""
    numbers = numbers.astype("float64")
    as_ms = numbers.abs() >= 1e11 if fmt == "auto" else pd.Series(fmt != "epoch_s", index=numbers.index)
    millis = numbers.where(as_ms, numbers * 1000)
    return pd.to_datetime(millis, unit="ms", utc=True, errors="coerce").astype("datetime64[ns, UTC]")


def parse_dates(values: pd.Series, fmt: str = "auto") -> Parsed:
    """Calendar dates, kept as written: ``2025-03-04T23:30:00-05:00`` is 4 March, not 5 March in UTC.

    Epoch numbers have no written date and are read as UTC dates.
    """
    none = pd.Series(False, index=values.index)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return Parsed(
            values.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize().astype("datetime64[ns]"), none, none
        )
    if pd.api.types.is_datetime64_dtype(values):
        return Parsed(values.dt.normalize().astype("datetime64[ns]"), none, none)
    text = values.astype("string").str.strip()
    if "%" in fmt:
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    else:
        written = text.str.extract(r"^(\d{4}-\d{2}-\d{2})(?:[T ].*)?$", expand=False)
        parsed = pd.to_datetime(written, format="%Y-%m-%d", errors="coerce")
        stamps = parse_timestamps(text.mask(written.notna()), fmt).values
        parsed = parsed.fillna(stamps.dt.tz_localize(None))
    parsed = parsed.dt.normalize().astype("datetime64[ns]")
    return Parsed(parsed, text.notna() & parsed.isna(), none)


# --- reject rules -------------------------------------------------------------------


def missing_values(frame: pd.DataFrame, table: Table) -> dict[str, pd.Series]:
    """Rows lacking a value the contract says cannot be empty, per column."""
    return {c.name: frame[c.name].isna() for c in table.columns if not c.nullable}


def unknown_accounts(frame: pd.DataFrame, known: pd.Index) -> pd.Series:
    """Rows whose ``account_id`` is not an account of the export (after accounts were cleaned).

    By ``positions_in``: pandas' ``isin`` against a string index was most of ingest's time
    on a 100,000-account book.
    """
    return pd.Series(positions_in(frame["account_id"], arrow_ids(known.to_series())) < 0, index=frame.index)


def negative_amounts(frame: pd.DataFrame) -> pd.Series:
    """ARR below zero: a typo we refuse to guess the sign of."""
    return (frame["arr"] < 0).fillna(False)


def ends_before_start(frame: pd.DataFrame) -> pd.Series:
    """A contract term that ends before it starts."""
    return (frame["end_date"] < frame["start_date"]).fillna(False)


def future_dated(frame: pd.DataFrame, table: Table, reference: dt.date) -> dict[str, pd.Series]:
    """Rows dated after the export could have been taken, per checked column.

    A value is future-dated when it falls on or after ``reference + tolerance + 1`` day:
    one day of tolerance for time zones, a year for contract starts.
    """
    return {
        name: after_export(frame[name], reference, FUTURE_TOLERANCE_DAYS.get(name, DEFAULT_FUTURE_TOLERANCE_DAYS))
        for name in FUTURE_CHECKED.get(table.name, ())
    }


def after_export(values: pd.Series, reference: dt.date, tolerance_days: int) -> pd.Series:
    """Which values fall on or after ``reference + tolerance + 1`` day (naive or UTC-aware dates alike)."""
    limit = pd.Timestamp(reference) + pd.Timedelta(days=tolerance_days + 1)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        limit = limit.tz_localize("UTC")
    return (values >= limit).fillna(False)


def blank_future_follow_ups(frame: pd.DataFrame, table: Table, reference: dt.date) -> pd.Series:
    """Blank the follow-up dates (``FOLLOW_UPS``) after the export date, in place; which rows changed."""
    changed = pd.Series(False, index=frame.index)
    for name in FOLLOW_UPS.get(table.name, ()):
        late = after_export(frame[name], reference, DEFAULT_FUTURE_TOLERANCE_DAYS)
        frame.loc[late, name] = pd.NaT
        changed |= late
    return changed


def schema_failures(frame: pd.DataFrame, schema: pa.DataFrameSchema, where: str) -> pd.Series:
    """The reason each row fails its pandera schema (empty when all pass).

    Failures that name no row (a wrong dtype, a missing column) are bugs of ours or
    unusable input, raised as one-line ``InputError`` rather than a traceback.
    """
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        by_row = cases[cases["index"].notna()]
        whole = cases[cases["index"].isna()]
        if len(whole):
            first = whole.iloc[0]
            raise InputError(
                f"{where}: column '{first['column']}' fails {first['check']} ({first['failure_case']})"
            ) from None
        reasons = "failed check " + by_row["check"].astype(str) + " on " + by_row["column"].astype(str)
        return pd.Series(reasons.to_numpy(), index=by_row["index"].to_numpy()).groupby(level=0).first()
    return pd.Series(dtype="object")
