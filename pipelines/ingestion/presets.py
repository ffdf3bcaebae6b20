"""Mappings from a CRM's export shape to the canonical tables, as data not code.

A preset is a YAML file in the very format a team writes for its own CRM (see
``examples/mapping_example.yaml``): per canonical table, one or more *sources* (a file
and how its columns become canonical columns). The first source whose file exists wins;
the others are reported as ignored (Salesforce Contract beats Opportunity, Segment beats
Amplitude). The logic here is generic: nothing is specific to one CRM.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from features.errors import InputError
from features.meetings_titles import OTHER, classify_meeting_title
from features.schemas import TABLES, Table

PRESETS_DIR = Path(__file__).parent / "presets"
EXAMPLE_MAPPING = "pipelines/ingestion/presets/examples/mapping_example.yaml"
BUILT_IN = ("canonical", "salesforce", "hubspot")
TIMESTAMP_FORMATS = ("auto", "iso", "salesforce", "epoch_ms", "epoch_s")
_TERM = re.compile(r"\s*([+-])\s*(\d+)\s*(day|days|month|months|year|years)\s*")
_DERIVATION = re.compile(r"^\s*(\w+)((?:\s*[+-]\s*\d+\s*(?:day|days|month|months|year|years)\s*)*)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class ColumnSpec(_Strict):
    """Where one canonical column comes from.

    ``source``: one source column or several, coalesced row by row (the first non-empty);
    ``transform``: ``meeting_title`` (classify titles; with several sources the first
    that is not "other"), ``first_id`` (first of a ``;``/``,`` separated id list),
    ``json_key`` (the value of ``key`` in a JSON object such as Amplitude's ``groups``);
    ``values``: a map of source values (case-insensitive) to canonical values;
    ``format``: the timestamp format of this column, overriding the source's.
    """

    source: list[str]
    transform: Literal["meeting_title", "first_id", "json_key"] | None = None
    key: str | None = None
    values: dict[str, str] | None = None
    format: str | None = None

    _listify = field_validator("source", mode="before")(_as_list)

    @field_validator("format")
    @classmethod
    def _known_format(cls, fmt: str | None) -> str | None:
        if fmt is not None:
            _check_format(fmt)
        return fmt

    @field_validator("values", mode="before")
    @classmethod
    def _values_as_text(cls, values: Any) -> Any:
        """YAML reads true/false/1 as bool/int; map keys and values are compared as text."""
        if isinstance(values, dict):
            return {_yaml_text(k): _yaml_text(v) for k, v in values.items()}
        return values

    @model_validator(mode="after")
    def _json_needs_key(self) -> "ColumnSpec":
        if self.transform == "json_key" and not self.key:
            raise ValueError("transform json_key needs a key")
        return self


class FilterSpec(_Strict):
    """Keep only rows whose ``column`` is in ``keep`` (or not in ``drop``); the rest are filtered with ``reason``."""

    column: str
    keep: list[str] | None = None
    drop: list[str] | None = None
    reason: str

    @field_validator("keep", "drop", mode="before")
    @classmethod
    def _text(cls, values: Any) -> Any:
        return [_yaml_text(v) for v in _as_list(values)] if values is not None else None

    @model_validator(mode="after")
    def _one_rule(self) -> "FilterSpec":
        if (self.keep is None) == (self.drop is None):
            raise ValueError("a filter needs exactly one of keep or drop")
        return self


class SourceSpec(_Strict):
    """One file of the export and how its columns become a canonical table."""

    file: list[str]
    columns: dict[str, ColumnSpec] = {}
    timestamp_format: str = "auto"
    constants: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    derive: dict[str, str] = {}
    filters: list[FilterSpec] = []

    _listify = field_validator("file", mode="before")(_as_list)

    @field_validator("columns", mode="before")
    @classmethod
    def _short_columns(cls, columns: Any) -> Any:
        """``account_id: Id`` and ``account_id: [AccountId, WhatId]`` are short for ``{source: ...}``."""
        if not isinstance(columns, dict):
            return columns
        return {k: v if isinstance(v, dict) else {"source": v} for k, v in columns.items()}

    @field_validator("timestamp_format")
    @classmethod
    def _known_format(cls, fmt: str) -> str:
        _check_format(fmt)
        return fmt

    @field_validator("derive")
    @classmethod
    def _parseable(cls, derive: dict[str, str]) -> dict[str, str]:
        for target, expression in derive.items():
            if not _DERIVATION.match(expression):
                raise ValueError(
                    f"derive.{target}: cannot read {expression!r}; write e.g. 'start_date + 12 months - 1 day'"
                )
        return derive


class TableSpec(_Strict):
    """The sources of one canonical table, in order of preference."""

    sources: list[SourceSpec]

    @model_validator(mode="before")
    @classmethod
    def _single_source(cls, data: Any) -> Any:
        """A table with one file may skip the ``sources:`` list."""
        if isinstance(data, dict) and "sources" not in data:
            return {"sources": [data]}
        return data


class Mapping(_Strict):
    """A whole preset: a name and one table spec per canonical table it can produce."""

    name: str
    description: str = ""
    tables: dict[str, TableSpec]

    @model_validator(mode="after")
    def _canonical_names(self) -> "Mapping":
        for table_name, spec in self.tables.items():
            if table_name not in TABLES:
                raise ValueError(f"tables.{table_name}: not a canonical table ({', '.join(TABLES)})")
            known = set(TABLES[table_name].column_names)
            for source in spec.sources:
                named = set(source.columns) | set(source.constants) | set(source.defaults) | set(source.derive)
                for column in sorted(named - known):
                    raise ValueError(
                        f"tables.{table_name}: '{column}' is not a column of {table_name} ({', '.join(sorted(known))})"
                    )
        return self


def _yaml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _check_format(fmt: str) -> None:
    if fmt not in TIMESTAMP_FORMATS and "%" not in fmt:
        raise ValueError(
            f"timestamp format {fmt!r}: use one of {', '.join(TIMESTAMP_FORMATS)} "
            "or a strftime pattern such as '%d/%m/%Y %H:%M'"
        )


def canonical_mapping() -> Mapping:
    """The identity preset, derived from the contract: ``<table>.csv`` with canonical columns."""
    tables = {name: {"file": [name], "columns": {c: c for c in table.column_names}} for name, table in TABLES.items()}
    return Mapping.model_validate(
        {"name": "canonical", "description": "The canonical export contract.", "tables": tables}
    )


def load_mapping(preset: str | Path) -> Mapping:
    """A built-in preset by name, or a team's mapping YAML by path."""
    if str(preset) == "canonical":
        return canonical_mapping()
    path = PRESETS_DIR / f"{preset}.yaml" if str(preset) in BUILT_IN else Path(preset)
    if not path.is_file():
        raise InputError(f"preset '{preset}': not one of {', '.join(BUILT_IN)} and no such mapping file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return Mapping.model_validate(raw)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{path}: {where}: {first['msg']}") from None


# --- applying one source to a frame of strings ---------------------------------------


def apply_filters(frame: pd.DataFrame, source: SourceSpec, path: Path) -> tuple[pd.Series, dict[str, int], list[str]]:
    """Which rows the preset keeps, how many each filter removed, and notes on skipped filters."""
    keep = pd.Series(True, index=frame.index)
    counts: dict[str, int] = {}
    notes: list[str] = []
    for rule in source.filters:
        if rule.column not in frame.columns:
            notes.append(f"filter on '{rule.column}' skipped: no such column in {path.name}")
            continue
        values = frame[rule.column].astype("string").str.strip().str.lower()
        listed = values.isin([v.lower() for v in (rule.keep or rule.drop or [])]).fillna(False)
        passes = listed if rule.keep is not None else ~listed
        removed = keep & ~passes
        if removed.any():
            counts[rule.reason] = counts.get(rule.reason, 0) + int(removed.sum())
        keep &= passes
    return keep, counts, notes


def map_columns(frame: pd.DataFrame, source: SourceSpec, table: Table, path: Path) -> pd.DataFrame:
    """The canonical columns of ``table`` built from ``frame`` (strings, not yet typed).

    A required canonical column with none of its source columns in the file, and no
    constant, default or derivation to fall back on, is an ``InputError`` naming both.
    """
    out = pd.DataFrame(index=frame.index)
    for column in table.columns:
        name = column.name
        spec = source.columns.get(name)
        present = [s for s in spec.source if s in frame.columns] if spec else []
        if name in source.constants:
            out[name] = pd.Series(_yaml_text(source.constants[name]), index=frame.index, dtype="string")
        elif present:
            out[name] = _column_values(frame, present, spec)
        elif column.required and name not in source.defaults and name not in source.derive:
            raise InputError(_missing_column_message(path, name, spec, table, frame, source))
        else:
            out[name] = pd.Series(pd.NA, index=frame.index, dtype="string")
        if name in source.defaults:
            out[name] = _blank_to_na(out[name]).fillna(_yaml_text(source.defaults[name]))
    return out


def _missing_column_message(
    path: Path, name: str, spec: ColumnSpec | None, table: Table, frame: pd.DataFrame, source: SourceSpec
) -> str:
    found = ", ".join(str(c) for c in frame.columns if c != "_row")
    wanted = spec.source if spec else [name]
    if wanted == [name]:
        message = f"{path}: missing required column '{name}' (columns found: {found})"
    else:
        options = " or ".join(f"'{s}'" for s in wanted)
        message = f"{path}: missing required column {options} for {table.name}.{name} (columns found: {found})"
    return message + _rename_hint(wanted, name, table, unread_columns(frame, source))


def _rename_hint(wanted: list[str], name: str, table: Table, unread: list[str]) -> str:
    """A renamed column: point at the unread column that looks like it, and at the mapping file that fixes it."""
    lowered = {c.lower(): c for c in unread}
    for candidate in wanted:
        close = difflib.get_close_matches(candidate.lower(), list(lowered), n=1, cutoff=0.6)
        if close:
            column = lowered[close[0]]
            return (
                f"; '{column}' looks like a renamed '{candidate}': rename it back, or pass --preset with a "
                f"mapping file that maps {table.name}.{name} to '{column}' (start from {EXAMPLE_MAPPING})"
            )
    return ""


def unread_columns(frame: pd.DataFrame, source: SourceSpec) -> list[str]:
    """Columns of the file the mapping does not read (new columns, personal data, or a renamed one)."""
    used = {c for spec in source.columns.values() for c in spec.source} | {f.column for f in source.filters}
    return [str(c) for c in frame.columns if c != "_row" and c not in used]


def _column_values(frame: pd.DataFrame, present: list[str], spec: ColumnSpec) -> pd.Series:
    if spec.transform == "meeting_title":
        return _first_classified_title(frame, present)
    values = _coalesce(frame, present)
    if spec.transform == "first_id":
        values = values.astype("string").str.split(r"[;,]", regex=True).str[0].str.strip()
    elif spec.transform == "json_key":
        values = _json_key(values, spec.key or "")
    if spec.values:
        values = map_values(values, spec.values)
    return values


def _coalesce(frame: pd.DataFrame, present: list[str]) -> pd.Series:
    """Row by row, the first non-empty value among the present source columns."""
    values = _blank_to_na(frame[present[0]])
    for other in present[1:]:
        values = values.fillna(_blank_to_na(frame[other]))
    return values


def _blank_to_na(values: pd.Series) -> pd.Series:
    if pd.api.types.is_string_dtype(values) or values.dtype == object:
        text = values.astype("string")
        return text.mask(text.str.strip() == "")
    return values


def _first_classified_title(frame: pd.DataFrame, present: list[str]) -> pd.Series:
    """Classify each title column; the first one that says more than "other" wins."""
    kinds = classify_meeting_title(frame[present[0]])
    for other in present[1:]:
        kinds = kinds.mask(kinds == OTHER, classify_meeting_title(frame[other]))
    return kinds


def _json_key(values: pd.Series, key: str) -> pd.Series:
    """The value of ``key`` in JSON text such as ``{"company_id": ["42"]}``, vectorised by regex."""
    pattern = rf'"{re.escape(key)}"\s*:\s*\[?\s*"?([^",\]\}}]+)'
    return values.astype("string").str.extract(pattern, expand=False).str.strip()


def map_values(values: pd.Series, mapping: dict[str, str]) -> pd.Series:
    """Replace source values by canonical ones, matching case-insensitively; others unchanged."""
    lookup = {k.lower(): v for k, v in mapping.items()}
    text = values.astype("string")
    mapped = text.str.strip().str.lower().map(lookup)
    return mapped.astype("string").fillna(text).where(values.notna())


def apply_derivations(frame: pd.DataFrame, derive: dict[str, str]) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Fill empty target columns from date arithmetic, e.g. ``end_date = start_date + 12 months - 1 day``.

    Returns the frame and, per target, the mask of rows that were derived (reported as repairs).
    """
    derived: dict[str, pd.Series] = {}
    frame = frame.copy()
    for target, expression in derive.items():
        match = _DERIVATION.match(expression)
        assert match is not None  # validated when the mapping was loaded
        base = match.group(1)
        value = frame[base]
        for sign, amount, unit in _TERM.findall(match.group(2)):
            offset = _offset(int(amount), unit)
            value = value + offset if sign == "+" else value - offset
        fill = frame[target].isna() & frame[base].notna()
        frame[target] = frame[target].mask(fill, value)
        derived[target] = fill
    return frame, derived


def _offset(amount: int, unit: str) -> pd.DateOffset | pd.Timedelta:
    if unit.startswith("day"):
        return pd.Timedelta(days=amount)
    if unit.startswith("month"):
        return pd.DateOffset(months=amount)
    return pd.DateOffset(years=amount)


def column_format(source: SourceSpec, column: str) -> str:
    """The timestamp format for one canonical column: its own, else the source's."""
    spec = source.columns.get(column)
    return spec.format if spec and spec.format else source.timestamp_format
