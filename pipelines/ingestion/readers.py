"""Read one export file into a frame of strings, whatever the CSV dialect.

Real exports come from Excel, from CRMs set to a European locale and from warehouses:
UTF-8 BOMs, Windows line endings, `;` or tab delimiters, quoted multi-line fields,
empty files. Everything is read as text first so that each value that cannot be parsed
later can be traced back to its row.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import re
import zlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.errors import InputError

EXTENSIONS = (".csv", ".csv.gz", ".parquet")
DELIMITERS = (",", ";", "\t", "|")
ROW = "_row"  # 1-based position of the data row in its file, kept for rejected rows
_HEAD_BYTES = 64 * 1024
_BOM = b"\xef\xbb\xbf"
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


CHUNK_ROWS = 500_000  # rows per chunk: large tables stream through ingest in pieces of this size


@dataclass
class RawTable:
    """One export file opened for reading: where it is, what was fixed on the way, and its rows in chunks.

    Rows are read lazily, ``chunk_rows`` at a time, so a file of a hundred million rows
    never sits in memory whole; ``frame`` reads everything at once, for small files.
    """

    path: Path
    read_chunks: Callable[[int], Iterator[pd.DataFrame]]
    empty_file: bool = False
    notes: list[str] = field(default_factory=list)
    ends_mid_row: bool = False  # the file ends mid-row: its last data row is rejected, not trusted

    def chunks(self, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """The rows in order, at least one (possibly empty) frame, each with ``_row`` numbered from 1."""
        offset = 0
        for frame in self.read_chunks(chunk_rows):
            frame = _with_row_numbers(frame, offset)
            offset += len(frame)
            yield frame

    @property
    def frame(self) -> pd.DataFrame:
        """Every row at once."""
        return pd.concat(list(self.chunks()), ignore_index=True)


def find_file(folder: Path, names: list[str]) -> Path | None:
    """The file for one table: ``<name>.csv``, ``.csv.gz`` or ``.parquet``, any letter case.

    ``names`` are tried in order (glob patterns allowed); the first that matches wins.
    Two files for the same name (e.g. ``accounts.csv`` and ``accounts.parquet``) are
    ambiguous, so they raise instead of one being picked silently.
    """
    files = {p.name.lower(): p for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}
    for name in names:
        patterns = [f"{name.lower()}{ext}" for ext in EXTENSIONS]
        found = sorted({files[f] for f in files for pattern in patterns if fnmatch.fnmatchcase(f, pattern)})
        if len(found) > 1:
            listed = ", ".join(p.name for p in found)
            raise InputError(f"{folder}: several files for '{name}' ({listed}); keep one")
        if found:
            return found[0]
    return None


def looked_for(names: list[str]) -> str:
    """The file names ``find_file`` tries, for error messages."""
    return ", ".join(f"{name}{ext}" for name in names for ext in EXTENSIONS)


def read_export_file(path: Path, columns: Collection[str] | None = None) -> RawTable:
    """Open a CSV (plain or gzipped, read as strings) or a Parquet file (read as stored).

    ``columns``: read only those of them the file has (a quick look at a few columns), or all.
    """
    if path.name.lower().endswith(".parquet"):
        return _open_parquet(path, columns)
    return _open_csv(path, columns)


def _open_parquet(path: Path, columns: Collection[str] | None = None) -> RawTable:
    """A Parquet file read in row batches; a truncated or corrupt one is a user error, not a traceback."""
    import pyarrow
    import pyarrow.parquet as pq

    def refuse(exc: Exception) -> InputError:
        reason = " ".join(str(exc).replace(f"'{path}'", "").split())[:160]
        return InputError(f"{path}: not a readable Parquet file, truncated or corrupt ({reason}); export it again")

    try:
        schema = pq.ParquetFile(path).schema_arrow
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        raise refuse(exc) from None

    def read(chunk_rows: int) -> Iterator[pd.DataFrame]:
        try:
            kept = schema if columns is None else pyarrow.schema([f for f in schema if f.name in columns])
            batches = pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=kept.names)
            first = True
            for batch in batches:
                first = False
                # through a Table with the file's schema, so pandas metadata (e.g. Int64) applies
                yield pyarrow.Table.from_batches([batch], schema=kept).to_pandas()
            if first:
                yield kept.empty_table().to_pandas()
        except (pyarrow.ArrowException, OSError, ValueError) as exc:
            raise refuse(exc) from None

    return RawTable(path, read)


def _open_csv(path: Path, columns: Collection[str] | None = None) -> RawTable:
    head = _head_bytes(path)
    notes: list[str] = []
    if not head.removeprefix(_BOM).strip():
        return RawTable(
            path,
            lambda _: iter([pd.DataFrame()]),
            empty_file=True,
            notes=["empty file (0 bytes): read as a zero-row table"],
        )
    if head.startswith(_BOM):
        notes.append("UTF-8 byte-order mark removed")
    if b"\r\n" in head:
        notes.append("Windows (CRLF) line endings read as plain newlines")
    encoding = _encoding(head)
    if encoding != "utf-8-sig":
        notes.append(f"not valid UTF-8: decoded as {encoding}")
    text_head = head.decode(encoding, errors="replace")
    delimiter = sniff_delimiter(text_head)
    if delimiter != ",":
        notes.append(f"delimiter detected: {_DELIMITER_NAMES[delimiter]}")

    def read(chunk_rows: int) -> Iterator[pd.DataFrame]:
        for number, frame in enumerate(_parse_csv(path, delimiter, encoding, chunk_rows, columns)):
            if number == 0 and columns is None:
                _refuse_unsplit_header(path, frame)
            yield frame

    return RawTable(path, read, notes=notes, ends_mid_row=_ends_mid_row(path))


def _ends_mid_row(path: Path) -> bool:
    """A plain CSV whose last byte is not a newline was probably cut mid-row (an interrupted download).

    Gzipped files are not checked: a cut .gz fails to decompress and is refused as a whole.
    """
    if path.name.lower().endswith(".gz"):
        return False
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        if handle.tell() == 0:
            return False
        handle.seek(-1, 2)
        return handle.read(1) not in (b"\n", b"\r")


def _head_bytes(path: Path) -> bytes:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            return handle.read(_HEAD_BYTES)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise InputError(f"{path}: cannot be read ({' '.join(str(exc).split())})") from None


def _encoding(head: bytes) -> str:
    """UTF-8 when the head decodes (a cut multi-byte char at the end is tolerated), else cp1252."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:
            return "cp1252"
    return "utf-8-sig"


def sniff_delimiter(text: str) -> str:
    """The delimiter of a CSV from its header line: the candidate that appears most often.

    Quoted header names are ignored, so a column called "a;b" does not fool the count.
    A header without any candidate is a one-column file, read with a comma.
    """
    header = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    unquoted = re.sub(r'"[^"]*"', "", header)
    counts = {d: unquoted.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _parse_csv(
    path: Path, delimiter: str, encoding: str, chunk_rows: int, columns: Collection[str] | None = None
) -> Iterator[pd.DataFrame]:
    """The CSV's rows as string frames of ``chunk_rows``; parse errors become one-line InputErrors."""
    wanted = None if columns is None else (lambda name: _header_name(name) in columns)
    try:
        reader = pd.read_csv(
            path,
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding=encoding,
            quotechar='"',
            skip_blank_lines=True,
            compression="infer",
            chunksize=chunk_rows,
            usecols=wanted,
        )
        with reader:
            yield from reader
    except pd.errors.EmptyDataError:
        yield pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise InputError(f"{path}: not a readable CSV ({reason})") from None
    except (EOFError, OSError, zlib.error) as exc:  # a cut or corrupt .gz; click would print only "Aborted!"
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        raise InputError(f"{path}: compressed file is truncated or corrupt ({reason}); export it again") from None


def _refuse_unsplit_header(path: Path, frame: pd.DataFrame) -> None:
    """A single column whose name still holds a delimiter means the split went wrong."""
    if len(frame.columns) == 1 and any(d in str(frame.columns[0]) for d in DELIMITERS):
        raise InputError(
            f"{path}: could not split the header into columns with any of "
            f"comma, semicolon, tab or pipe (header: {str(frame.columns[0])[:80]!r})"
        )


def _header_name(name: object) -> str:
    return str(name).strip().lstrip("\ufeff")


def _with_row_numbers(frame: pd.DataFrame, offset: int = 0) -> pd.DataFrame:
    """Trim header whitespace and number the data rows from ``offset + 1``, as a spreadsheet user counts."""
    frame = frame.rename(columns=_header_name)
    frame = frame.reset_index(drop=True)
    frame[ROW] = pd.RangeIndex(offset + 1, offset + len(frame) + 1)
    return frame


__all__ = [
    "CHUNK_ROWS",
    "EXTENSIONS",
    "ROW",
    "RawTable",
    "find_file",
    "looked_for",
    "read_export_file",
    "sniff_delimiter",
]
