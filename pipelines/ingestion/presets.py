"""Mappings from a CRM's export shape to the canonical tables, as data not code.

A preset is a YAML file in the very format a team writes for its own CRM (see
``examples/mapping_example.yaml``): per canonical table, one or more *sources* (a file
and how its columns become canonical columns). The first source whose file exists wins;
the others are reported as ignored (Salesforce Contract beats Opportunity, Segment beats
Amplitude). The logic here is generic: nothing is specific to one CRM. The constructs
beyond renaming (lookups in related files, value patterns, generated ids, the contract's
defaults) are in ``mapping.py``; this module holds the file format and applies a source.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from features.errors import InputError
from features.meetings_titles import OTHER, classify_meeting_title
from features.schemas import TABLES, Table
from pipelines.ingestion.mapping import (
    CONTRACT_DEFAULTS,
    STEP_KEYS,
    FilterValue,
    HashStep,
    LookupStep,
    Matcher,
    RelatedTable,
    Step,
    ValuePattern,
    as_list,
    blank_to_na,
    coalesce,
    fill_blanks,
    hash_ids,
    lookup_available,
    lookup_values,
    read_related,
    step_columns,
    yaml_text,
)
from pipelines.ingestion.mapping import map_values as map_values

PRESETS_DIR = Path(__file__).parent / "presets"
EXAMPLE_MAPPING = "pipelines/ingestion/presets/examples/mapping_example.yaml"
BUILT_IN = ("canonical", "salesforce", "hubspot")
TIMESTAMP_FORMATS = ("auto", "iso", "salesforce", "epoch_ms", "epoch_s")
_TERM = re.compile(r"\s*([+-])\s*(\d+)\s*(day|days|month|months|year|years)\s*")
_DERIVATION = re.compile(
    r"^\s*(\w+)((?:\s*[+-]\s*\d+\s*(?:day|days|month|months|year|years)\s*)*)"
    r"(?:\s*\bif\s+(\w+)\s+is\s+(.+?))?\s*$"
)
PRESENT = "present"  # derive ... if <column> is present: the column has a value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    """Where one canonical column comes from.

    ``source``: a chain of steps coalesced row by row (the first with a value wins): a
    source column, ``{lookup: ...}`` (a related file, by key: ``mapping.LookupStep``) or
    ``{hash: [columns]}`` (a generated id); a lookup or hash alone may be written without
    ``source:``;
    ``transform``: ``meeting_title`` (classify titles; with several sources the first
    that is not "other"), ``first_id`` (first of a ``;``/``,`` separated id list),
    ``json_key`` (the value of ``key`` in a JSON object such as Amplitude's ``groups``);
    ``values``: a map of source values (case-insensitive) to canonical values;
    ``patterns``: ``[{regex: ..., value: ...}, {contains: ..., value: ...}]``, tried in
    order (case-insensitive) on values ``values`` did not map;
    ``format``: the timestamp format of this column, overriding the source's.
    """

    source: list[Step]
    transform: Literal["meeting_title", "first_id", "json_key"] | None = None
    key: str | None = None
    values: dict[str, str] | None = None
    patterns: list[ValuePattern] = []
    format: str | None = None

    _listify = field_validator("source", mode="before")(as_list)

    @model_validator(mode="before")
    @classmethod
    def _lone_step(cls, data: Any) -> Any:
        """``{hash: [a, b]}`` and ``{lookup: ..., match: ..., take: ...}`` are short for ``{source: [<that step>]}``."""
        if isinstance(data, dict) and "source" not in data and ("hash" in data or "lookup" in data):
            step = {k: v for k, v in data.items() if k in STEP_KEYS}
            return {**{k: v for k, v in data.items() if k not in STEP_KEYS}, "source": [step]}
        return data

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
            return {yaml_text(k): yaml_text(v) for k, v in values.items()}
        return values

    @model_validator(mode="after")
    def _json_needs_key(self) -> "ColumnSpec":
        if self.transform == "json_key" and not self.key:
            raise ValueError("transform json_key needs a key")
        return self

    @property
    def columns(self) -> list[str]:
        """The source columns named directly (not through a lookup or a hash)."""
        return [s for s in self.source if isinstance(s, str)]

    @property
    def lookups(self) -> list[LookupStep]:
        return [s for s in self.source if isinstance(s, LookupStep)]


class FilterSpec(_Strict):
    """Keep only rows whose ``column`` matches ``keep`` (or does not match ``drop``); the rest are filtered with ``reason``.

    ``column`` may list spellings, coalesced row by row; ``keep``/``drop`` list exact values
    (case-insensitive) or patterns (``{regex: ...}``, ``{contains: ...}``).
    """

    column: list[str]
    keep: list[FilterValue] | None = None
    drop: list[FilterValue] | None = None
    reason: str

    _listify = field_validator("column", mode="before")(as_list)

    @field_validator("keep", "drop", mode="before")
    @classmethod
    def _text(cls, values: Any) -> Any:
        if values is None:
            return None
        return [v if isinstance(v, (dict, Matcher)) else yaml_text(v) for v in as_list(values)]

    @model_validator(mode="after")
    def _one_rule(self) -> "FilterSpec":
        if (self.keep is None) == (self.drop is None):
            raise ValueError("a filter needs exactly one of keep or drop")
        return self

    def listed(self, values: pd.Series) -> pd.Series:
        """Which values the rule's list names (exactly, case-insensitively, or by pattern)."""
        rules = self.keep if self.keep is not None else self.drop or []
        exact = [r.lower() for r in rules if isinstance(r, str)]
        text = values.astype("string").str.strip()
        found = text.str.lower().isin(exact).fillna(False).astype(bool)
        for rule in rules:
            if isinstance(rule, Matcher):
                found |= rule.matches(text)
        return found


class RelatedFilterSpec(FilterSpec):
    """A related file's filter: the reason is optional (its rows are looked up, not counted)."""

    reason: str = ""


class RelatedSpec(_Strict):
    """A file read whole for lookups (not a canonical table): its name(s), filters and date format."""

    file: list[str]
    filters: list[RelatedFilterSpec] = []
    timestamp_format: str = "auto"

    _listify = field_validator("file", mode="before")(as_list)

    @field_validator("timestamp_format")
    @classmethod
    def _known_format(cls, fmt: str) -> str:
        _check_format(fmt)
        return fmt


class SourceSpec(_Strict):
    """One file of the export and how its columns become a canonical table."""

    file: list[str]
    columns: dict[str, ColumnSpec] = {}
    timestamp_format: str = "auto"
    constants: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    derive: dict[str, str] = {}
    filters: list[FilterSpec] = []

    _listify = field_validator("file", mode="before")(as_list)

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
                    f"derive.{target}: cannot read {expression!r}; write e.g. 'start_date + 12 months - 1 day' "
                    "or 'end_date if status is cancelled'"
                )
        return derive

    @property
    def lookups(self) -> list[LookupStep]:
        return [step for spec in self.columns.values() for step in spec.lookups]


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
    related: dict[str, RelatedSpec] = {}
    tables: dict[str, TableSpec]

    @model_validator(mode="after")
    def _canonical_names(self) -> "Mapping":
        for table_name, spec in self.tables.items():
            if table_name not in TABLES:
                raise ValueError(f"tables.{table_name}: not a canonical table ({', '.join(TABLES)})")
            known = set(TABLES[table_name].column_names)
            for source in spec.sources:
                named = set(source.columns) | set(source.constants) | set(source.defaults) | set(source.derive)
                for expression in source.derive.values():
                    base, _, condition, _ = _DERIVATION.match(expression).groups()
                    named |= {base} | ({condition} if condition else set())
                for column in sorted(named - known):
                    raise ValueError(
                        f"tables.{table_name}: '{column}' is not a column of {table_name} ({', '.join(sorted(known))})"
                    )
                for step in source.lookups:
                    if step.lookup not in self.related:
                        listed = ", ".join(self.related) or "none"
                        raise ValueError(
                            f"tables.{table_name}: lookup '{step.lookup}' is not under related: (defined: {listed})"
                        )
        return self


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


@dataclass
class Mapped:
    """A chunk mapped to canonical columns (text), the rows each counted lookup filled, and notes."""

    frame: pd.DataFrame
    repaired: dict[str, pd.Series] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def load_related(export_dir: Path, mapping: Mapping, source: SourceSpec) -> dict[str, RelatedTable]:
    """The related files the source's lookups name, read whole and filtered (small tables such as Opportunity)."""
    columns: dict[str, set[str]] = {}
    for step in source.lookups:
        columns.setdefault(step.lookup, set()).update(step.related_columns, step.take)
    out = {}
    for name, needed in columns.items():
        spec = mapping.related[name]
        needed |= {c for rule in spec.filters for c in rule.column}

        def keep_rows(frame: pd.DataFrame, path: Path, filters=spec.filters) -> tuple[pd.Series, dict, list]:
            return _apply_filter_rules(frame, filters, path)

        out[name] = read_related(name, spec.file, spec.timestamp_format, export_dir, needed, keep_rows)
    return out


def apply_filters(frame: pd.DataFrame, source: SourceSpec, path: Path) -> tuple[pd.Series, dict[str, int], list[str]]:
    """Which rows the preset keeps, how many each filter removed, and notes on skipped filters."""
    return _apply_filter_rules(frame, source.filters, path)


def _apply_filter_rules(
    frame: pd.DataFrame, rules: list[FilterSpec], path: Path
) -> tuple[pd.Series, dict[str, int], list[str]]:
    keep = pd.Series(True, index=frame.index)
    counts: dict[str, int] = {}
    notes: list[str] = []
    for rule in rules:
        present = [c for c in rule.column if c in frame.columns]
        if not present:
            named = " or ".join(f"'{c}'" for c in rule.column)
            notes.append(f"filter on {named} skipped: no such column in {path.name}")
            continue
        listed = rule.listed(coalesce(frame, present))
        passes = listed if rule.keep is not None else ~listed
        removed = keep & ~passes
        if removed.any():
            counts[rule.reason] = counts.get(rule.reason, 0) + int(removed.sum())
        keep &= passes
    return keep, counts, notes


def map_columns(
    frame: pd.DataFrame,
    source: SourceSpec,
    table: Table,
    path: Path,
    related: dict[str, RelatedTable] | None = None,
) -> pd.DataFrame:
    """The canonical columns of ``table`` built from ``frame`` (strings, not yet typed); see ``map_source``."""
    return map_source(frame, source, table, path, related).frame


def map_source(
    frame: pd.DataFrame,
    source: SourceSpec,
    table: Table,
    path: Path,
    related: dict[str, RelatedTable] | None = None,
) -> Mapped:
    """The canonical columns of ``table`` built from ``frame``, with the rows counted lookups filled.

    Per column: a constant, else the source chain (columns, lookups, hashes), else empty;
    then the mapping's default, else the contract's (``event_count`` is 1), for empty cells.
    A required canonical column none of whose steps can run (no source column, no related
    file), with no constant, default or derivation to fall back on, is an ``InputError``
    naming what was looked for.
    """
    related = related or {}
    out = pd.DataFrame(index=frame.index)
    mapped = Mapped(out)
    contract_defaults = CONTRACT_DEFAULTS.get(table.name, {})
    for column in table.columns:
        name = column.name
        spec = source.columns.get(name)
        default = source.defaults.get(name, contract_defaults.get(name))
        values = None
        if name in source.constants:
            values = pd.Series(yaml_text(source.constants[name]), index=frame.index, dtype="string")
        elif spec is not None:
            values = _column_values(frame, spec, source, related, mapped)
        if values is None:
            if column.required and default is None and name not in source.derive:
                raise InputError(_missing_column_message(path, name, spec, table, frame, source, related))
            values = pd.Series(pd.NA, index=frame.index, dtype="string")
            if default is not None and name not in source.defaults:
                mapped.notes.append(f"no {name} column: each row counts as {default} (the contract's default)")
        if default is not None:
            values = fill_blanks(values, default)
        out[name] = values
    return mapped


def _column_values(
    frame: pd.DataFrame, spec: ColumnSpec, source: SourceSpec, related: dict[str, RelatedTable], mapped: Mapped
) -> pd.Series | None:
    """The chain of steps coalesced row by row; None when no step can run on this file."""
    if spec.transform == "meeting_title":
        present = [c for c in spec.columns if c in frame.columns]
        return _first_classified_title(frame, present) if present else None
    values = None
    for step in spec.source:
        if values is not None and values.notna().all():
            break  # later steps are fallbacks for empty rows: none left
        found = _step_values(frame, step, source, related, mapped)
        if found is None:
            continue
        if values is None:
            filled = found.notna()
            values = found
        else:
            filled = values.isna() & found.notna()
            values = values.fillna(found)
        if isinstance(step, LookupStep) and step.count_as:
            previous = mapped.repaired.get(step.count_as, pd.Series(False, index=frame.index))
            mapped.repaired[step.count_as] = previous | filled
    if values is None:
        return None
    if spec.transform == "first_id":
        values = values.astype("string").str.split(r"[;,]", regex=True).str[0].str.strip()
    elif spec.transform == "json_key":
        values = _json_key(values, spec.key or "")
    if spec.values or spec.patterns:
        values = map_values(values, spec.values or {}, spec.patterns)
    return values


def _step_values(
    frame: pd.DataFrame, step: Step, source: SourceSpec, related: dict[str, RelatedTable], mapped: Mapped
) -> pd.Series | None:
    if isinstance(step, str):
        return blank_to_na(frame[step]) if step in frame.columns else None
    if isinstance(step, HashStep):
        return hash_ids(frame, step.hash) if all(c in frame.columns for c in step.hash) else None
    table = related.get(step.lookup)
    why_not = lookup_available(step, frame, table)
    if why_not is not None:
        mapped.notes.append(why_not)
        return None
    return lookup_values(frame, step, table, source.timestamp_format)


def _missing_column_message(
    path: Path,
    name: str,
    spec: ColumnSpec | None,
    table: Table,
    frame: pd.DataFrame,
    source: SourceSpec,
    related: dict[str, RelatedTable] | None = None,
) -> str:
    found = ", ".join(str(c) for c in frame.columns if c != "_row")
    wanted = spec.columns if spec else [name]
    others = [str(s) for s in spec.source if not isinstance(s, str)] if spec else []
    if wanted == [name] and not others:
        message = f"{path}: missing required column '{name}' (columns found: {found})"
    else:
        options = " or ".join([*(f"'{s}'" for s in wanted), *others])
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
    used = {c for spec in source.columns.values() for step in spec.source for c in step_columns(step)}
    used |= {c for rule in source.filters for c in rule.column}
    return [str(c) for c in frame.columns if c != "_row" and c not in used]


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


def repair_rules(source: SourceSpec) -> list[str]:
    """The repair rules the source itself can trigger, in a fixed order: derivations, then counted lookups."""
    derived = [derive_rule(target, expression) for target, expression in source.derive.items()]
    counted = [step.count_as for step in source.lookups if step.count_as]
    return list(dict.fromkeys([*derived, *counted]))


def derive_rule(target: str, expression: str) -> str:
    """The repair rule of a derived column, e.g. ``end_date derived (start_date + 12 months - 1 day)``."""
    return f"{target} derived ({' '.join(expression.split())})"


def apply_derivations(frame: pd.DataFrame, derive: dict[str, str]) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Fill empty target columns from date arithmetic, e.g. ``end_date = start_date + 12 months - 1 day``.

    ``... if <column> is <value>[ or <value>]`` derives only rows whose (canonical) column has
    one of those values, case-insensitively; ``if <column> is present``, rows where it has one.
    Returns the frame and, per repair rule (``derive_rule``), the mask of rows that were derived.
    """
    derived: dict[str, pd.Series] = {}
    frame = frame.copy()
    for target, expression in derive.items():
        match = _DERIVATION.match(expression)
        assert match is not None  # validated when the mapping was loaded
        base, terms, condition, wanted = match.groups()
        value = frame[base]
        for sign, amount, unit in _TERM.findall(terms):
            offset = _offset(int(amount), unit)
            value = value + offset if sign == "+" else value - offset
        fill = frame[target].isna() & frame[base].notna()
        if condition:
            fill &= _condition(frame[condition], wanted)
        frame[target] = frame[target].mask(fill, value)
        derived[derive_rule(target, expression)] = fill
    return frame, derived


def _condition(values: pd.Series, wanted: str) -> pd.Series:
    if wanted.strip().lower() == PRESENT:
        return values.notna()
    options = [v.strip().lower() for v in re.split(r",|\bor\b", wanted) if v.strip()]
    return values.astype("string").str.strip().str.lower().isin(options).fillna(False).astype(bool)


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
