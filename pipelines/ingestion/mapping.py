"""The mapping language's constructs beyond renaming: related-file lookups, value patterns, generated ids.

A mapping file (see ``presets.py``) says, per canonical column, where its values come
from as a chain of *steps*, coalesced row by row (the first step with a value wins):

- a column of the file: ``ARR__c``;
- a lookup in a related file, by key: ``{lookup: won_opportunities, match: {ContractId: Id}, take: Amount}``,
  optionally restricted in time (``on_or_before: {CloseDate: StartDate}``) and ordered
  (``latest: CloseDate``) when several related rows match;
- a generated id: ``{hash: [Account, Campaign, Sent]}``, a stable hash of named columns,
  for tables whose export has no id column.

Value patterns (``{regex: ..., value: ...}``, ``{contains: ..., value: ...}``) map source
values case-insensitively by rule instead of listing each value; filters match the same way.
``CONTRACT_DEFAULTS`` fill optional columns the contract gives a meaning when empty.

Everything here is vectorised pandas on frames of text, and knows nothing of any one CRM.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Discriminator, Tag, field_validator, model_validator

from pipelines.ingestion.readers import find_file, read_export_file
from pipelines.ingestion.repairs import parse_dates

ID_HASH_CHARS = 16
_SEPARATOR = "\x1f"  # joins hashed values: cannot occur in a CSV cell typed by a person

# Optional columns the contract gives a value when the export has none: a raw track call
# (Segment, Amplitude, Mixpanel) is one event. Kept beside the mapping, not in
# features/schemas.py, because only ingestion fills them.
CONTRACT_DEFAULTS: dict[str, dict[str, str]] = {"usage_events": {"event_count": "1"}}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def as_list(value: Any) -> Any:
    """``x`` is short for ``[x]`` wherever a list of names or steps is expected."""
    return [value] if isinstance(value, (str, dict)) else value


# --- value patterns --------------------------------------------------------------------


class Matcher(_Strict):
    """A case-insensitive rule on a text value: a regular expression searched in it, or a substring."""

    regex: str | None = None
    contains: str | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"regex {pattern!r} does not compile ({exc})") from None
        return pattern

    @model_validator(mode="after")
    def _one_rule(self) -> "Matcher":
        if (self.regex is None) == (self.contains is None):
            raise ValueError("a pattern needs exactly one of regex or contains")
        return self

    def matches(self, values: pd.Series) -> pd.Series:
        """Which values match (missing values never do)."""
        text = values.astype("string")
        if self.regex is not None:
            with warnings.catch_warnings():  # groups in a user's regex are fine: only whether it matches counts
                warnings.filterwarnings("ignore", "This pattern is interpreted as a regular expression", UserWarning)
                found = text.str.contains(self.regex, case=False, regex=True)
        else:
            found = text.str.contains(str(self.contains), case=False, regex=False)
        return found.fillna(False).astype(bool)

    def __str__(self) -> str:
        return f"regex {self.regex!r}" if self.regex is not None else f"contains {self.contains!r}"


FilterValue = Annotated[
    Annotated[str, Tag("value")] | Annotated[Matcher, Tag("pattern")],
    Discriminator(lambda v: "pattern" if isinstance(v, (dict, Matcher)) else "value"),
]
"""A filter's listed value: exact text, or ``{regex: ...}`` / ``{contains: ...}``."""


class ValuePattern(Matcher):
    """A pattern and the canonical value it maps to: ``{contains: nps, value: nps}``."""

    value: str

    @field_validator("value", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return yaml_text(value)


def map_values(values: pd.Series, exact: dict[str, str], patterns: list[ValuePattern] = ()) -> pd.Series:
    """Replace source values by canonical ones: exact values first (case-insensitive), then patterns in order.

    Values nothing matches are kept as they are, to be validated (and rejected) later.
    """
    text = values.astype("string")
    lookup = {k.lower(): v for k, v in exact.items()}
    mapped = text.str.strip().str.lower().map(lookup).astype("string")
    for pattern in patterns:
        mapped = mapped.mask(mapped.isna() & pattern.matches(text), pattern.value)
    return mapped.fillna(text).where(values.notna())


def yaml_text(value: Any) -> str:
    """YAML reads ``true``/``1`` as bool/int; mapping values are compared as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


# --- steps of a column's source chain ---------------------------------------------------


class LookupStep(_Strict):
    """A value taken from a related file: the rows whose ``match`` columns equal this row's.

    ``match``: related column -> column of this file (all pairs must be equal; ids are trimmed);
    ``take``: the related column(s) whose value is used (several: the first non-empty);
    ``on_or_before`` / ``on_or_after``: related date column -> this file's date column;
    ``latest`` / ``earliest``: when several related rows qualify, the one with the latest
    (earliest) date in that related column; otherwise, and on ties, the last in the file;
    ``sum: true``: instead, the sum of every qualifying row's number (an opportunity and its
    add-ons); a value that is not a number is passed on as it is, to be rejected as unparseable;
    ``count_as``: values this step supplies are counted as repaired under this name (say so
    for a step that guesses, like a fallback by date).
    """

    lookup: str
    match: dict[str, str]
    take: list[str]
    on_or_before: dict[str, str] = {}
    on_or_after: dict[str, str] = {}
    latest: str | None = None
    earliest: str | None = None
    sum: bool = False
    count_as: str | None = None

    _listify = field_validator("take", mode="before")(as_list)

    @model_validator(mode="after")
    def _sane(self) -> "LookupStep":
        if not self.match:
            raise ValueError(f"lookup {self.lookup}: match needs at least one related column: this column pair")
        if sum(bool(x) for x in (self.latest, self.earliest, self.sum)) > 1:
            raise ValueError(f"lookup {self.lookup}: give one of latest, earliest or sum")
        return self

    @property
    def related_columns(self) -> list[str]:
        """Columns the related file must have (``take`` needs only one of its columns)."""
        dated = [*self.on_or_before, *self.on_or_after, *([self.latest] if self.latest else [])]
        return list(dict.fromkeys([*self.match, *dated, *([self.earliest] if self.earliest else [])]))

    @property
    def own_columns(self) -> list[str]:
        """Columns this file must have."""
        return list(dict.fromkeys([*self.match.values(), *self.on_or_before.values(), *self.on_or_after.values()]))

    def __str__(self) -> str:
        keys = ", ".join(f"{theirs} = {ours}" for theirs, ours in self.match.items())
        return f"{self.lookup}.{'/'.join(self.take)} by {keys}"


class HashStep(_Strict):
    """A generated id: a stable hash (sha256, 16 hex characters) of the named columns' text."""

    hash: list[str]

    _listify = field_validator("hash", mode="before")(as_list)

    @field_validator("hash")
    @classmethod
    def _some(cls, columns: list[str]) -> list[str]:
        if not columns:
            raise ValueError("hash needs at least one column")
        return columns

    def __str__(self) -> str:
        return f"hash of {', '.join(self.hash)}"


STEP_KEYS = frozenset(LookupStep.model_fields) | frozenset(HashStep.model_fields)


def _step_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "column"
    if isinstance(value, LookupStep):
        return "lookup"
    if isinstance(value, HashStep):
        return "hash"
    if isinstance(value, dict):
        return "lookup" if "lookup" in value else "hash" if "hash" in value else None
    return None


Step = Annotated[
    Annotated[str, Tag("column")] | Annotated[LookupStep, Tag("lookup")] | Annotated[HashStep, Tag("hash")],
    Discriminator(
        _step_kind,
        custom_error_type="source_step",
        custom_error_message="a source is a column name, {lookup: ..., match: ..., take: ...} or {hash: [columns]}",
    ),
]


def step_columns(step: Step) -> list[str]:
    """The columns of the file a step reads."""
    if isinstance(step, str):
        return [step]
    if isinstance(step, LookupStep):
        return step.own_columns
    return list(step.hash)


# --- related files -----------------------------------------------------------------------


@dataclass
class RelatedTable:
    """A related file's rows kept by its filters, as trimmed text (blank cells missing)."""

    name: str
    path: Path | None
    frame: pd.DataFrame
    timestamp_format: str = "auto"
    notes: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.path is not None


def read_related(
    name: str, files: list[str], timestamp_format: str, export_dir: Path, columns: set[str], keep_rows
) -> RelatedTable:
    """Read the related file named ``files`` (tried in order), keep the rows its filters keep and only ``columns``.

    ``keep_rows(frame, path) -> (mask, counts, notes)`` applies the filters (the same code as a
    table's filters). A missing file is not an error here: the steps that need it are skipped.
    """
    path = find_file(export_dir, files)
    if path is None:
        looked = " or ".join(files)
        note = f"lookup '{name}': no {looked} file in the export, its steps are skipped"
        return RelatedTable(name, None, pd.DataFrame(), timestamp_format, [note])
    parts, notes, read, left_out = [], [], 0, 0
    for chunk in read_export_file(path).chunks():  # chunk by chunk, keeping only the columns lookups use
        keep, counts, chunk_notes = keep_rows(chunk, path)
        parts.append(chunk.loc[keep, [c for c in chunk.columns if c in columns]])
        notes.extend(n for n in chunk_notes if n not in notes)
        read, left_out = read + len(chunk), left_out + sum(counts.values())
    kept = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    kept = kept.apply(lambda s: blank_to_na(s.astype("string").str.strip()))
    filtered = f", {left_out} left out by its filters" if left_out else ""
    notes.append(f"lookup '{name}': {path.name}, {read} rows{filtered}")
    return RelatedTable(name, path, kept, timestamp_format, notes)


def lookup_values(frame: pd.DataFrame, step: LookupStep, related: RelatedTable, own_format: str) -> pd.Series:
    """For each row of ``frame``, the value ``step`` takes from ``related`` (missing when nothing qualifies).

    One merge on the key columns, then the date conditions, then one row per input row:
    the latest (or earliest) by the ordering column, ties and unordered matches going to
    the row furthest down the related file.
    """
    out = pd.Series(pd.NA, index=frame.index, dtype="string")
    take = [c for c in step.take if c in related.frame.columns]
    if not len(frame) or not len(related.frame) or not take:
        return out
    rel = related.frame
    keys = [f"_k{i}" for i in range(len(step.match))]
    left = pd.DataFrame({k: _key(frame[ours]) for k, ours in zip(keys, step.match.values())})
    left["_pos"] = np.arange(len(frame))
    right = pd.DataFrame({k: _key(rel[theirs]) for k, theirs in zip(keys, step.match)})
    right["_value"] = coalesce(rel, take)
    right["_order"] = np.arange(len(rel))
    conditions = [(t, o, "<=") for t, o in step.on_or_before.items()] + [
        (t, o, ">=") for t, o in step.on_or_after.items()
    ]
    for i, (theirs, ours, _) in enumerate(conditions):
        right[f"_rd{i}"] = parse_dates(rel[theirs], related.timestamp_format).values
        left[f"_ld{i}"] = parse_dates(frame[ours], own_format).values
    order = step.latest or step.earliest
    if order:
        right["_by"] = parse_dates(rel[order], related.timestamp_format).values
    merged = left.dropna(subset=keys).merge(right.dropna(subset=[*keys, "_value"]), on=keys, how="inner")
    for i, (_, _, op) in enumerate(conditions):
        theirs, ours = merged[f"_rd{i}"], merged[f"_ld{i}"]
        ok = (theirs <= ours) if op == "<=" else (theirs >= ours)
        merged = merged[ok.fillna(False).to_numpy(dtype=bool)]
    if merged.empty:
        return out
    if step.sum:
        return _summed(merged, out)
    if step.earliest:
        merged = merged.sort_values(["_by", "_order"], ascending=[True, False], na_position="last", kind="stable")
        picked = merged.drop_duplicates("_pos", keep="first")
    else:
        by = ["_by", "_order"] if step.latest else ["_order"]
        merged = merged.sort_values(by, na_position="first", kind="stable")
        picked = merged.drop_duplicates("_pos", keep="last")
    values = out.to_numpy(dtype=object)
    values[picked["_pos"].to_numpy()] = picked["_value"].to_numpy(dtype=object)
    return pd.Series(values, index=frame.index, dtype="string")


def _summed(merged: pd.DataFrame, out: pd.Series) -> pd.Series:
    """Per input row, the sum of the qualifying values; the first one that is not a number, if any."""
    numbers = pd.to_numeric(merged["_value"], errors="coerce")
    totals = numbers.groupby(merged["_pos"]).sum(min_count=1)
    text = totals.map(lambda x: f"{x:.10g}" if pd.notna(x) else None).astype("string")
    bad = merged.loc[numbers.isna().to_numpy(), ["_pos", "_value"]].drop_duplicates("_pos")
    text.loc[bad["_pos"].to_numpy()] = bad["_value"].to_numpy()
    values = out.to_numpy(dtype=object)
    values[text.index.to_numpy()] = text.to_numpy(dtype=object)
    return pd.Series(values, index=out.index, dtype="string")


def lookup_available(step: LookupStep, frame: pd.DataFrame, related: RelatedTable | None) -> str | None:
    """Why ``step`` cannot run on ``frame`` (a note), or None when it can."""
    if related is None or not related.found:
        return f"lookup {step} skipped: the related file is not in the export"
    missing_theirs = [c for c in step.related_columns if c not in related.frame.columns]
    if not any(c in related.frame.columns for c in step.take):
        missing_theirs.append(" or ".join(step.take))
    if missing_theirs:
        return f"lookup {step} skipped: {related.path.name} has no column {', '.join(missing_theirs)}"
    missing_ours = [c for c in step.own_columns if c not in frame.columns]
    if missing_ours:
        return f"lookup {step} skipped: no column {', '.join(missing_ours)} in this file"
    return None


def _key(values: pd.Series) -> pd.Series:
    return blank_to_na(values.astype("string").str.strip())


# --- generated ids -------------------------------------------------------------------------


def hash_ids(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """A stable id per row: sha256 of the columns' trimmed text, joined by a separator; 16 hex characters.

    The same values give the same id in every run (so an id names the same record from one
    export to the next), different values a different id; a row whose named columns are all
    empty has no id (and is rejected as missing one). Hashes each distinct value once.
    """
    parts = [frame[c].astype("string").str.strip().fillna("") for c in columns]
    joined = parts[0].str.cat(parts[1:], sep=_SEPARATOR) if len(parts) > 1 else parts[0]
    empty = np.logical_and.reduce([(p == "").to_numpy(dtype=bool) for p in parts])
    codes, uniques = pd.factorize(joined, use_na_sentinel=True)
    digests = np.array([hashlib.sha256(str(u).encode()).hexdigest()[:ID_HASH_CHARS] for u in uniques], dtype=object)
    values = digests[codes] if len(digests) else np.full(len(frame), None, dtype=object)
    values = np.where(empty, None, values)
    return pd.Series(values, index=frame.index, dtype="string")


# --- shared helpers -------------------------------------------------------------------------


def blank_to_na(values: pd.Series) -> pd.Series:
    """Empty or whitespace-only text is a missing value."""
    if pd.api.types.is_string_dtype(values) or values.dtype == object:
        text = values.astype("string")
        return text.mask(text.str.strip() == "")
    return values


def fill_blanks(values: pd.Series, default: Any) -> pd.Series:
    """Empty cells take ``default``; a numeric column stays numeric (a Parquet count column), others become text."""
    values = blank_to_na(values)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        number = pd.to_numeric(pd.Series([yaml_text(default)]), errors="coerce").iloc[0]
        if pd.notna(number):
            return values.fillna(number)
    return values.astype("string").fillna(yaml_text(default))


def coalesce(frame: pd.DataFrame, present: list[str]) -> pd.Series:
    """Row by row, the first non-empty value among the present columns."""
    values = blank_to_na(frame[present[0]])
    for other in present[1:]:
        values = values.fillna(blank_to_na(frame[other]))
    return values
