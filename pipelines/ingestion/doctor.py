"""`churn doctor`: will this export ingest with this preset, and if not, what maps to what?

Reads the header and the first ``sample_rows`` rows of each file only (row counts come
from Parquet metadata or a fast newline count), so it takes seconds on a large export:

- per canonical table and column, the source the preset would use, or that it is missing,
  defaulted, constant, derived or looked up;
- for columns the preset cannot find, the likely matches among the file's unread columns,
  scored by name (difflib and token overlap after normalising case, ``_``, ``__c``,
  ``hs_``, camelCase and a few CRM synonyms) and by value shape (dates parse, ids look
  like ids, numbers, small vocabularies matching the canonical one);
- the real ingest run on the sample (``ingest_export_to`` on a folder of sampled files), so
  the share of rows the row rules would reject is the rules' own, not a re-implementation;
- a verdict: ingest would run, or why not.

Privacy: only column names, types, counts and shares are reported; cell values only for
vocabulary columns (status, direction, ...) and only short ones.
"""

from __future__ import annotations

import datetime as dt
import difflib
import gzip
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from features.duck import read_frame
from features.errors import InputError
from features.schemas import TABLES, Column, Table
from pipelines.config import ConfigError
from pipelines.ingestion.mapping import CONTRACT_DEFAULTS, HashStep, LookupStep
from pipelines.ingestion.presets import Mapping, SourceSpec, load_mapping
from pipelines.ingestion.readers import EXTENSIONS, ROW, find_file, read_export_file
from pipelines.ingestion.repairs import parse_dates

SAMPLE_ROWS = 10_000
UNKNOWN_ACCOUNT = "unknown account"  # the row rule's reason (pipeline.py)
MATCH_THRESHOLD = 0.5  # a guess below this score is not proposed
MIN_NAME_SCORE = 0.4  # nor one whose name has nothing in common with the canonical name
MIN_NAME_RATIO = 0.62  # nor one alike only by spelling (difflib), not by words: createdate is not cancel_date
VOCAB_MAX_VALUES = 12  # a column with more distinct values is not a vocabulary
VOCAB_MAX_CHARS = 20  # longer values are never printed

# Words CRMs and in-house exports use for the canonical ones (after normalising).
SYNONYMS = {
    "company": "account",
    "client": "account",
    "customer": "account",
    "acct": "account",
    "org": "account",
    "message": "email",
    "mail": "email",
    "organisation": "account",
    "organization": "account",
    "begin": "start",
    "begins": "start",
    "started": "start",
    "from": "start",
    "finish": "end",
    "ends": "end",
    "ended": "end",
    "expiry": "end",
    "expires": "end",
    "until": "end",
    "to": "end",
    "signup": "created",
    "create": "created",
    "creation": "created",
    "opened": "created",
    "since": "created",
    "amount": "arr",
    "revenue": "arr",
    "annual": "arr",
    "licenses": "seats",
    "licences": "seats",
    "users": "seats",
    "seat": "seats",
    "state": "status",
    "stage": "status",
    "identifier": "id",
    "key": "id",
    "num": "id",
    "no": "id",
    "number": "id",
    "ref": "id",
    "dt": "date",
    "day": "date",
    "on": "date",
    "time": "at",
    "timestamp": "at",
    "datetime": "at",
    "name": "name",
    "title": "name",
    "manager": "owner",
    "csm": "owner",
    "rep": "owner",
    "sector": "industry",
    "vertical": "industry",
    "tier": "segment",
    "size": "segment",
    "tz": "timezone",
    "geo": "region",
    "territory": "region",
    "severity": "priority",
    "urgency": "priority",
    "rating": "score",
    "kind": "type",
    "category": "type",
    "event": "feature",
    "action": "feature",
    "user": "user",
    "sent": "sent",
    "received": "responded",
    "answered": "responded",
    "solved": "closed",
    "resolved": "closed",
}
# Tokens that say little on their own: a match on them alone is weak.
WEAK_TOKENS = {"id", "date", "at", "name", "type"}


# --- results -----------------------------------------------------------------------------


@dataclass
class Guess:
    """A source column that looks like a canonical one."""

    source: str
    score: float
    why: str


@dataclass
class ColumnVerdict:
    """Where one canonical column would come from."""

    column: Column
    status: str  # mapped | lookup | hash | constant | default | derived | missing | absent | guessed
    source: str = ""
    guesses: list[Guess] = field(default_factory=list)
    vocabulary: list[str] = field(default_factory=list)
    vocabulary_unknown: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> bool:
        return self.status == "missing"


@dataclass
class TableVerdict:
    """One canonical table: its file, row count, columns, and what ingest made of the sample."""

    table: Table
    file: Path | None = None
    source: SourceSpec | None = None
    guessed_file: bool = False
    rows: int | None = None
    rows_exact: bool = True
    sample: int = 0
    columns: list[ColumnVerdict] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)
    sample_kept: int | None = None
    sample_rejected: dict[str, int] = field(default_factory=dict)
    sample_filtered: int = 0
    sample_unjudged: int = 0  # rows of accounts beyond the accounts sample: the unknown-account rule not judged
    date_range: tuple[str, str] | None = None
    date_column: str | None = None

    @property
    def missing(self) -> list[ColumnVerdict]:
        return [c for c in self.columns if c.blocking]


@dataclass
class Diagnosis:
    """The whole export: per table verdicts and whether ingest would run."""

    export: Path
    preset: str
    tables: list[TableVerdict]
    ingest_error: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def would_run(self) -> bool:
        return not self.problems


# --- names and shapes ------------------------------------------------------------------------


def normalise(name: str) -> str:
    """Lower case words: ``Customer_Segment__c`` -> ``customer segment``, ``hs_object_id`` -> ``object id``."""
    text = re.sub(r"__c$", "", str(name).strip())
    text = re.sub(r"^hs_", "", text, flags=re.IGNORECASE)
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)  # camelCase
    text = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", " ", text)  # IDNumber -> ID Number
    text = re.sub(r"[^A-Za-z0-9]+", " ", text).lower()
    return " ".join(text.split())


def tokens(name: str) -> set[str]:
    return {SYNONYMS.get(t, t) for t in normalise(name).split()}


def name_score(source: str, canonical: str, table: str) -> tuple[float, str]:
    """How alike two column names are (0..1), and why."""
    a, b = normalise(source), normalise(canonical)
    ratio = difflib.SequenceMatcher(None, a.replace(" ", ""), b.replace(" ", "")).ratio()
    ta, tb = tokens(source), tokens(canonical)
    overlap = ta & tb
    union = ta | tb
    jaccard = len(overlap) / len(union) if union else 0.0
    if overlap and overlap <= WEAK_TOKENS:
        jaccard *= 0.5
    # the core words: without "id"/"date"/... and the table's own name ("ContractStart" in contracts)
    own = {SYNONYMS.get(table.rstrip("s"), table.rstrip("s"))} - tb
    ca, cb = ta - WEAK_TOKENS - own, tb - WEAK_TOKENS
    if ca and cb and ca & cb:
        core = len(ca & cb) / len(ca | cb)
        if core > jaccard:
            jaccard, overlap = core, ca & cb
    if jaccard >= ratio or (jaccard >= MIN_NAME_SCORE and ratio < MIN_NAME_RATIO):
        return jaccard, f"name tokens {'+'.join(sorted(overlap))}"
    return ratio, f"name ~ {ratio:.2f}"


def shape_score(values: pd.Series, column: Column) -> tuple[float, str]:
    """How well sample values fit the canonical column's type (0..1), and why. Values are never returned."""
    text = values.astype("string").str.strip()
    text = text[text.notna() & (text != "")]
    if text.empty:
        return 0.3, "empty in sample"
    if column.dtype in ("date", "timestamp"):
        share = float(parse_dates(text).values.notna().mean())
        numeric = float(pd.to_numeric(text, errors="coerce").notna().mean())
        if numeric > 0.9 and share > 0.9 and not text.str.len().ge(10).all():
            share = 0.0  # small integers are not epoch dates
        return share, f"dates parse {share:.0%}"
    if column.dtype in ("float", "int"):
        share = float(pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce").notna().mean())
        return share, f"numbers {share:.0%}"
    if column.dtype == "bool":
        share = float(text.str.lower().isin(["true", "false", "0", "1", "yes", "no", "y", "n"]).mean())
        return share, f"booleans {share:.0%}"
    if column.dtype == "id":
        distinct = text.nunique() / len(text)
        short = float((text.str.len() <= 64).mean())
        no_space = float((~text.str.contains(" ", regex=False)).mean())
        dates = float(parse_dates(text).values.notna().mean())
        score = short * (0.5 + 0.5 * no_space) * (1 - dates)
        return score, f"id-like {score:.0%}, {distinct:.0%} distinct"
    if column.allowed:
        lowered = text.str.lower()
        share = float(lowered.isin(column.allowed).mean())
        if share < 0.5 and lowered.nunique() <= VOCAB_MAX_VALUES:
            mapped = lowered.map(lambda v: _closest(v, column.allowed))
            share = max(share, 0.8 * float(mapped.notna().mean()))
        return share, f"vocabulary {share:.0%}"
    if column.dtype == "category":
        few = text.nunique() <= max(50, len(text) // 10)
        numbers = float(pd.to_numeric(text, errors="coerce").notna().mean())
        return (0.8 if few else 0.4) * (1 - numbers), "few distinct values" if few else "many distinct values"
    numbers = float(pd.to_numeric(text, errors="coerce").notna().mean())
    return 0.7 * (1 - numbers), "text"


def _closest(value: str, allowed: tuple[str, ...]) -> str | None:
    if value in allowed:
        return value
    found = difflib.get_close_matches(value, list(allowed), n=1, cutoff=0.6)
    if found:
        return found[0]
    starts = [a for a in allowed if a.startswith(value[:3]) or value.startswith(a[:3])]
    return starts[0] if len(starts) == 1 else None


def score_candidate(values: pd.Series, source: str, column: Column, table: str) -> Guess:
    """A source column's score as ``column``: name 60%, shape 40%; a shape that cannot fit rules it out."""
    by_name, name_why = name_score(source, column.name, table)
    by_shape, shape_why = shape_score(values, column)
    weak_name = by_name < MIN_NAME_SCORE or (name_why.startswith("name ~") and by_name < MIN_NAME_RATIO)
    if weak_name or (column.dtype in ("date", "timestamp", "float", "int") and by_shape < 0.5):
        return Guess(source, 0.0, f"{name_why}, {shape_why}")
    score = 0.6 * by_name + 0.4 * by_shape
    return Guess(source, round(score, 2), f"{name_why}, {shape_why}")


def vocabulary(values: pd.Series) -> list[str] | None:
    """The distinct short values of a vocabulary column, or None when it is not one (too many, too long)."""
    text = values.astype("string").str.strip()
    distinct = text[text.notna() & (text != "")].unique()
    if len(distinct) > VOCAB_MAX_VALUES or any(len(str(v)) > VOCAB_MAX_CHARS for v in distinct):
        return None
    return sorted(str(v) for v in distinct)


# --- reading a sample ---------------------------------------------------------------------------


def read_sample(path: Path, rows: int = SAMPLE_ROWS) -> pd.DataFrame:
    """The header and first ``rows`` rows of an export file (strings for CSV), without the row number."""
    raw = read_export_file(path)
    if raw.empty_file:
        return pd.DataFrame()
    frame = next(iter(raw.chunks(rows)))
    return frame.drop(columns=[ROW]).head(rows)


def count_rows(path: Path) -> tuple[int, bool]:
    """Data rows of a file, and whether the count is exact: Parquet metadata, else newlines (quoted newlines overcount)."""
    if path.name.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows, True
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    lines, last = 0, b"\n"
    with opener(path, "rb") as handle:
        while block := handle.read(1 << 22):
            lines += block.count(b"\n")
            last = block[-1:]
    if last not in (b"\n", b""):
        lines += 1
    return max(lines - 1, 0), False


# --- the diagnosis ------------------------------------------------------------------------------


def diagnose(export_dir: Path, preset: str | Path = "canonical", sample_rows: int = SAMPLE_ROWS) -> Diagnosis:
    """Check ``export_dir`` against ``preset`` from a sample of each file; see the module docstring."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise InputError(f"{export_dir}: export folder not found")
    mapping = load_mapping(preset)
    files = [p for p in sorted(export_dir.iterdir()) if p.is_file() and p.name.lower().endswith(EXTENSIONS)]
    claimed: set[Path] = set()
    for spec in mapping.tables.values():
        for source in spec.sources:
            if (path := find_file(export_dir, source.file)) is not None:
                claimed.add(path)
    for spec in mapping.related.values():
        if (path := find_file(export_dir, spec.file)) is not None:
            claimed.add(path)
    diagnosis = Diagnosis(export_dir, mapping.name, [])
    for name, table in TABLES.items():
        verdict = _diagnose_table(export_dir, mapping, table, files, claimed, sample_rows)
        diagnosis.tables.append(verdict)
        if verdict.file is None and table.required:
            diagnosis.problems.append(f"required table {name}: no file found")
        for column in verdict.missing:
            diagnosis.problems.append(f"{name}.{column.column.name}: required, no source column")
        for column in verdict.columns:
            if column.status == "guessed" and column.column.required:
                diagnosis.problems.append(
                    f"{name}.{column.column.name}: not in the preset, likely '{column.source}' (--write-mapping)"
                )
    if not diagnosis.problems:
        _ingest_sample(diagnosis, mapping, preset, sample_rows)
    return diagnosis


def _source_found(export_dir: Path, mapping: Mapping, table: Table) -> tuple[SourceSpec, Path] | None:
    spec = mapping.tables.get(table.name)
    for source in spec.sources if spec else []:
        if (path := find_file(export_dir, source.file)) is not None:
            return source, path
    return None


def _guess_file(table: Table, files: list[Path], claimed: set[Path]) -> Path | None:
    """An unclaimed file whose name looks like the table's (``Clients.csv`` for accounts)."""
    best, best_score = None, 0.0
    for path in files:
        if path in claimed:
            continue
        stem = re.sub(r"(\.csv\.gz|\.csv|\.parquet)$", "", path.name, flags=re.IGNORECASE)
        score, _ = name_score(stem, table.name.rstrip("s"), table.name)
        score = max(score, name_score(stem, table.name, table.name)[0])
        if score > best_score:
            best, best_score = path, score
    return best if best_score >= 0.6 else None


def _diagnose_table(
    export_dir: Path, mapping: Mapping, table: Table, files: list[Path], claimed: set[Path], sample_rows: int
) -> TableVerdict:
    verdict = TableVerdict(table)
    found = _source_found(export_dir, mapping, table)
    if found is not None:
        verdict.source, verdict.file = found
    else:
        verdict.file = _guess_file(table, files, claimed)
        verdict.guessed_file = verdict.file is not None
        if verdict.file is not None:
            claimed.add(verdict.file)
    if verdict.file is None:
        return verdict
    frame = read_sample(verdict.file, sample_rows)
    verdict.sample = len(frame)
    verdict.rows, verdict.rows_exact = count_rows(verdict.file)
    if verdict.sample < sample_rows:  # the whole file was read: its count is exact
        verdict.rows, verdict.rows_exact = verdict.sample, True
    source = verdict.source or SourceSpec(file=[verdict.file.name])
    used: set[str] = set()
    for column in table.columns:
        cv = _column_verdict(frame, source, table, column, mapping)
        verdict.columns.append(cv)
        if cv.status == "mapped":
            used.add(cv.source)
    used |= {c for rule in source.filters for c in rule.column}
    for spec in source.columns.values():
        for step in spec.source:
            if isinstance(step, str):
                used.add(step)
            elif isinstance(step, LookupStep):
                used |= set(step.own_columns)
            elif isinstance(step, HashStep):
                used |= set(step.hash)
    verdict.unread = [str(c) for c in frame.columns if c not in used]
    _guess_columns(frame, verdict)
    return verdict


def _column_verdict(frame: pd.DataFrame, source: SourceSpec, table: Table, column: Column, mapping: Mapping):
    name = column.name
    spec = source.columns.get(name)
    default = source.defaults.get(name, CONTRACT_DEFAULTS.get(table.name, {}).get(name))
    if name in source.constants:
        return ColumnVerdict(column, "constant", "constant")
    for step in spec.source if spec else []:
        if isinstance(step, str) and step in frame.columns:
            cv = ColumnVerdict(column, "mapped", step)
            if column.allowed and (vocab := vocabulary(frame[step])) is not None:
                cv.vocabulary = vocab
                mapped_values = spec.values or {}
                lowered = {k.lower(): v for k, v in mapped_values.items()}
                cv.vocabulary_unknown = [
                    v for v in vocab if lowered.get(v.lower(), v.lower()) not in column.allowed and not spec.patterns
                ]
            return cv
        if isinstance(step, LookupStep) and all(c in frame.columns for c in step.own_columns):
            return ColumnVerdict(column, "lookup", str(step))
        if isinstance(step, HashStep) and all(c in frame.columns for c in step.hash):
            return ColumnVerdict(column, "hash", str(step))
    if name in source.derive:
        return ColumnVerdict(column, "derived", f"derived: {source.derive[name]}")
    if default is not None:
        return ColumnVerdict(column, "default", f"default {default}")
    if column.required:
        return ColumnVerdict(column, "missing", " or ".join(spec.columns) if spec else name)
    return ColumnVerdict(column, "absent", " or ".join(spec.columns) if spec else "")


def _guess_columns(frame: pd.DataFrame, verdict: TableVerdict) -> None:
    """Best unread source column for each missing or absent canonical column, greedy by score."""
    open_columns = [c for c in verdict.columns if c.status in ("missing", "absent", "default")]
    pairs: list[tuple[float, ColumnVerdict, Guess]] = []
    for cv in open_columns:
        scored = [score_candidate(frame[s], s, cv.column, verdict.table.name) for s in verdict.unread]
        scored = sorted((g for g in scored if g.score >= MATCH_THRESHOLD), key=lambda g: -g.score)
        cv.guesses = scored[:3]
        pairs += [(g.score, cv, g) for g in scored]
    taken: set[str] = set()
    chosen: set[str] = set()
    for _, cv, guess in sorted(pairs, key=lambda p: -p[0]):
        if guess.source in taken or cv.column.name in chosen:
            continue
        taken.add(guess.source)
        chosen.add(cv.column.name)
        cv.guesses = [guess] + [g for g in cv.guesses if g.source != guess.source][:2]
        cv.status, cv.source = "guessed", guess.source
        if cv.column.allowed and (vocab := vocabulary(frame[guess.source])) is not None:
            cv.vocabulary = vocab
            cv.vocabulary_unknown = [v for v in vocab if v.lower() not in cv.column.allowed]
    for cv in open_columns:
        if cv.column.name not in chosen:
            cv.guesses = [g for g in cv.guesses if g.source not in taken]


def _ingest_sample(diagnosis: Diagnosis, mapping: Mapping, preset: str | Path, sample_rows: int) -> None:
    """Run the real ingest on the first rows of every file; record kept/rejected counts and date ranges."""
    from pipelines.ingestion.pipeline import ingest_export_to

    with tempfile.TemporaryDirectory(prefix="churn-doctor-") as tmp:
        sample_dir = Path(tmp) / diagnosis.export.name
        sample_dir.mkdir()
        for path in sorted(diagnosis.export.iterdir()):
            if path.is_file() and path.name.lower().endswith(EXTENSIONS):
                _write_sample(path, sample_dir / path.name, sample_rows)
        out = Path(tmp) / "out"
        quiet = logging.getLogger("churn")
        level = quiet.level
        quiet.setLevel(logging.WARNING)
        try:
            # The sample is the files' first rows, so it cannot tell where the export ends: only
            # rows dated after today are judged future-dated here; ingest infers the real date.
            report = ingest_export_to(sample_dir, out, preset, export_date=dt.datetime.now(dt.UTC).date())
        except (InputError, ConfigError) as exc:
            message = str(exc).replace(str(sample_dir), str(diagnosis.export))
            diagnosis.ingest_error = message
            diagnosis.problems.append(f"ingest on the sample stops: {message}")
            return
        finally:
            quiet.setLevel(level)
        accounts = next(t for t in diagnosis.tables if t.table.name == "accounts")
        accounts_cut = accounts.rows is not None and accounts.rows > accounts.sample
        for verdict in diagnosis.tables:
            tr = report.tables.get(verdict.table.name)
            if tr is None:
                continue
            verdict.sample_kept = tr.rows_kept
            verdict.sample_rejected = dict(tr.rows_rejected)
            if accounts_cut and UNKNOWN_ACCOUNT in verdict.sample_rejected:
                # their account may be beyond the accounts sample: not judged, not counted as rejected
                verdict.sample_unjudged = verdict.sample_rejected.pop(UNKNOWN_ACCOUNT)
            verdict.sample_filtered = sum(tr.rows_filtered.values())
            dated = [c.name for c in verdict.table.columns if c.dtype in ("date", "timestamp")]
            if dated and tr.rows_kept:
                kept = read_frame(out / f"{verdict.table.name}.parquet", columns=dated[:1])
                values = kept[dated[0]].dropna()
                if len(values):
                    verdict.date_column = dated[0]
                    verdict.date_range = (str(values.min().date()), str(values.max().date()))
            if verdict.table.required and tr.rows_kept == 0:
                diagnosis.problems.append(f"{verdict.table.name}: every sampled row would be rejected or filtered")


def _write_sample(path: Path, target: Path, rows: int) -> None:
    """The first ``rows`` rows of a file, as a file of the same kind (CSV text kept as read)."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        handle = pq.ParquetFile(path)
        batch = next(handle.iter_batches(batch_size=rows), None)
        table = handle.schema_arrow.empty_table() if batch is None else pa_table(batch, handle.schema_arrow)
        pq.write_table(table, target)
        return
    if name.endswith(".gz") or rows_beyond(path, rows):
        frame = read_sample(path, rows)
        compression = "gzip" if name.endswith(".gz") else None
        frame.to_csv(target, index=False, compression=compression)
    else:
        shutil.copy2(path, target)  # small file: as it is (keeps its dialect and quirks)


def pa_table(batch, schema):
    import pyarrow

    return pyarrow.Table.from_batches([batch], schema=schema)


def rows_beyond(path: Path, rows: int) -> bool:
    """Whether a plain CSV has more than ``rows`` lines (reads at most that many)."""
    with open(path, "rb") as handle:
        for number, _ in enumerate(handle):
            if number > rows:
                return True
    return False


# --- output -------------------------------------------------------------------------------------

_STATUS = {
    "mapped": "<- {source}",
    "lookup": "<- lookup {source}",
    "hash": "<- {source}",
    "constant": "constant",
    "default": "{source} (no column)",
    "derived": "{source}",
    "missing": "MISSING (looked for {source})",
    "absent": "absent (optional)",
    "guessed": "?? not mapped; likely {source}",
}


def render(diagnosis: Diagnosis) -> str:
    """The terminal report: one block per table, then the verdict line."""
    lines = [f"export {diagnosis.export}, preset {diagnosis.preset}", ""]
    for verdict in diagnosis.tables:
        lines += _render_table(verdict)
        lines.append("")
    if diagnosis.problems:
        lines.append("problems:")
        lines += [f"  - {problem}" for problem in diagnosis.problems]
    lines.append(verdict_line(diagnosis))
    return "\n".join(lines)


def verdict_line(diagnosis: Diagnosis) -> str:
    """The last line: whether ``churn ingest`` would run on this export with this preset."""
    if diagnosis.would_run:
        return "verdict: ingest would run"
    count = len(diagnosis.problems)
    return f"verdict: ingest would NOT run ({count} problem{'s' if count > 1 else ''}, listed above)"


def _render_table(verdict: TableVerdict) -> list[str]:
    table = verdict.table
    need = "required" if table.required else "optional"
    if verdict.file is None:
        return [f"== {table.name} ({need}): no file found"]
    rows = f"{verdict.rows:,} rows" if verdict.rows_exact else f"~{verdict.rows:,} rows"
    how = "guessed file, not in the preset" if verdict.guessed_file else "file"
    lines = [f"== {table.name} ({need}): {how} {verdict.file.name}, {rows}, sample {verdict.sample:,}"]
    if verdict.date_range:
        lines.append(f"   {verdict.date_column}: {verdict.date_range[0]} .. {verdict.date_range[1]} (sample)")
    if verdict.sample_kept is not None and verdict.sample:
        rejected = sum(verdict.sample_rejected.values())
        share = rejected / verdict.sample
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(verdict.sample_rejected.items(), key=lambda kv: -kv[1]))
        filtered = f", {verdict.sample_filtered} filtered" if verdict.sample_filtered else ""
        if verdict.sample_unjudged:
            filtered += f", {verdict.sample_unjudged} of accounts beyond the accounts sample (not judged)"
        lines.append(f"   row rules on sample: {share:.1%} rejected{f' ({reasons})' if reasons else ''}{filtered}")
    width = max(len(c.column.name) for c in verdict.columns)
    for cv in verdict.columns:
        flag = "*" if cv.column.required else " "
        text = _STATUS[cv.status].format(source=cv.source)
        line = f"   {flag} {cv.column.name:<{width}} {cv.column.dtype:<9} {text}"
        if cv.status == "guessed" and cv.guesses:
            line += f" ({cv.guesses[0].score:.2f}: {cv.guesses[0].why})"
        elif cv.status in ("missing", "absent", "default") and cv.guesses:
            line += "; candidates " + ", ".join(f"{g.source} {g.score:.2f}" for g in cv.guesses)
        lines.append(line)
        if cv.vocabulary:
            unknown = ", ".join(cv.vocabulary_unknown)
            unknown = f"; unmapped (filtered, else rejected): {unknown}" if unknown else ""
            lines.append(f"     {'':<{width}} values {', '.join(cv.vocabulary)}{unknown}")
    left = [c for c in verdict.unread if not any(g.source == c for cv in verdict.columns for g in cv.guesses[:1])]
    if left:
        lines.append(f"   unread columns: {', '.join(left[:15])}{' ...' if len(left) > 15 else ''}")
    return lines


# --- starter mapping ---------------------------------------------------------------------------


def starter_mapping(diagnosis: Diagnosis, preset: str | Path) -> str:
    """A mapping YAML: the preset's sources for tables it finds, best guesses (commented) for the rest."""
    mapping = load_mapping(preset)
    lines = [
        f"# Starter mapping written by `churn doctor` for {diagnosis.export.name} (from preset {mapping.name}).",
        "# Lines ending in '# guess' were matched by name and value shape: check them, then run",
        f"#   churn doctor --export {diagnosis.export} --preset <this file>",
        "# Format: pipelines/ingestion/presets/examples/mapping_example.yaml",
        f"name: {_flow(diagnosis.export.name.replace(' ', '_') or 'my_export')}",
        f"description: {_flow(f'Starter mapping for {diagnosis.export.name}, derived from preset {mapping.name}.')}",
    ]
    used_related: set[str] = set()
    body: list[str] = []
    for verdict in diagnosis.tables:
        if verdict.file is None:
            continue
        source = verdict.source
        stem = re.sub(r"(\.csv\.gz|\.csv|\.parquet)$", "", verdict.file.name, flags=re.IGNORECASE)
        body.append(f"  {verdict.table.name}:")
        body.append(f"    file: {_flow(stem)}{'  # guess: file name' if verdict.guessed_file else ''}")
        if source is not None and source.timestamp_format != "auto":
            body.append(f"    timestamp_format: {_flow(source.timestamp_format)}")
        body.append("    columns:")
        for cv in verdict.columns:
            name = cv.column.name
            spec = source.columns.get(name) if source else None
            if cv.status in ("mapped", "lookup", "hash", "derived") and spec is not None:
                dumped = spec.model_dump(exclude_defaults=True)
                used_related |= {s.lookup for s in spec.lookups}
                value = dumped["source"][0] if list(dumped) == ["source"] and len(dumped["source"]) == 1 else dumped
                body.append(f"      {name}: {_flow(value)}")
            elif cv.status == "guessed" and cv.guesses:
                guess = cv.guesses[0]
                unknown = {v: _closest(v.lower(), cv.column.allowed) for v in cv.vocabulary_unknown}
                unknown = {k: v for k, v in unknown.items() if v}
                value = {"source": guess.source, "values": unknown} if unknown else guess.source
                body.append(f"      {name}: {_flow(value)}  # guess: score {guess.score:.2f} ({guess.why})")
            elif cv.status == "missing":
                body.append(f"      # {name}: ???  # required: no candidate found, name the source column")
        if source is not None:
            extras = source.model_dump(exclude_defaults=True, include={"constants", "defaults", "derive", "filters"})
            for key, value in extras.items():
                body.append(f"    {key}: {_flow(value)}")
    if used_related:
        related = {k: v.model_dump(exclude_defaults=True) for k, v in mapping.related.items() if k in used_related}
        lines.append("related:")
        lines += ["  " + line for line in yaml.safe_dump(related, sort_keys=False).splitlines()]
    lines.append("tables:")
    return "\n".join(lines + body) + "\n"


def _flow(value) -> str:
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True)
        .strip()
        .removesuffix("\n...")
        .removesuffix("...")
        .strip()
    )


def write_starter_mapping(diagnosis: Diagnosis, preset: str | Path, target: Path) -> None:
    text = starter_mapping(diagnosis, preset)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(text, encoding="utf-8")


def main(export: Path, preset: str | None, write_mapping: Path | None, sample_rows: int = SAMPLE_ROWS) -> int:
    """Print the diagnosis (and write a starter mapping); the exit code: 0 when ingest would run, 1 otherwise."""
    if preset is None:
        from pipelines.config import settings

        preset = settings().data.preset
    started = dt.datetime.now()
    diagnosis = diagnose(Path(export), preset, sample_rows)
    print(render(diagnosis))
    if write_mapping is not None:
        write_starter_mapping(diagnosis, preset, Path(write_mapping))
        print(f"starter mapping written to {write_mapping}; check the '# guess' lines, then run doctor with it")
    print(f"({(dt.datetime.now() - started).total_seconds():.1f} s)")
    return 0 if diagnosis.would_run else 1
