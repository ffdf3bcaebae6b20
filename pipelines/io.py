"""Every write of the pipeline, atomic: a failed or interrupted stage never leaves a half-written output.

Files, JSON, CSV, Parquet, figures and whole folders (staged, then swapped in) are written here
and nowhere else, so the guarantee holds for every output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa
    from matplotlib.figure import Figure


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; outputs should look like any other file
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_atomic(target: Path | str, writer: Callable[[Path], None]) -> None:
    """Run ``writer(tmp)`` then move the result into place."""
    with atomic_path(target) as tmp:
        writer(tmp)


def write_parquet(frame: pd.DataFrame, target: Path | str) -> None:
    """Parquet without the pandas index, written atomically."""
    write_atomic(target, lambda tmp: frame.to_parquet(tmp, index=False))


def arrow_table(frame: pd.DataFrame, schema: "pa.Schema | None" = None) -> "pa.Table":
    """``pyarrow.Table.from_pandas`` without the index.

    pyarrow still reads tz-aware columns through ``Series.values``, which pandas 3.1 deprecates
    with a warning per column; pandas' own ``to_parquet`` silences it the same way.
    """
    import warnings

    import pyarrow as pa

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray that drops timezone")
        return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def write_json(doc: dict, target: Path | str) -> None:
    """Pretty, key-sorted JSON (stable bytes for DVC), written atomically."""
    text = json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"
    write_atomic(target, lambda tmp: tmp.write_text(text))


def replace_folder(target: Path | str, fill: Callable[[Path], None]) -> None:
    """Run ``fill(staging)`` in a sibling folder, then swap it in for ``target`` whole.

    For stages that write several files (ingest: one Parquet per table plus rejected rows):
    a failure or an interrupt before the swap leaves every previous file as it was, so
    downstream never reads a mix of two runs. Leftovers of a killed run are removed first.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    backup = target.with_name(f".{target.name}.old")
    _recover(target, backup)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        fill(staging)
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp creates 0700
        if target.exists():
            target.rename(backup)
        staging.rename(target)
    except BaseException:
        if backup.exists() and not target.exists():  # interrupted between the two renames
            backup.rename(target)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(backup, ignore_errors=True)


def _recover(target: Path, backup: Path) -> None:
    """Undo what a killed ``replace_folder`` left: restore the previous folder, drop half-filled stagings."""
    if backup.exists():
        if target.exists():
            shutil.rmtree(backup, ignore_errors=True)
        else:
            backup.rename(target)
    for stale in target.parent.glob(f".{target.name}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def atomic_paths(*targets: Path | str) -> Iterator[list[Path]]:
    """Temporary paths for several files that belong together, renamed into place together on success.

    The renames follow each other with nothing in between, so a reader never pairs a new
    file with an old companion (e.g. features.parquet and its feature_catalog.json).
    """
    with ExitStack() as stack:
        yield [stack.enter_context(atomic_path(t)) for t in targets]


def json_text(doc: dict) -> str:
    """Pretty, key-sorted JSON (stable bytes for DVC)."""
    return json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"


def write_csv(frame: pd.DataFrame, target: Path | str) -> None:
    """CSV without the pandas index, written atomically."""
    write_atomic(target, lambda tmp: frame.to_csv(tmp, index=False))


def write_figure(fig: Figure, target: Path | str, **savefig: object) -> Path:
    """A PNG of ``fig``, written atomically, then closed.

    Fixed metadata (no "Software" stamp) keeps the bytes identical from one run to the next,
    so DVC and git see no change when nothing changed.
    """
    import matplotlib.pyplot as plt

    write_atomic(target, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}, **savefig))
    plt.close(fig)
    return Path(target)


def replace_figures(target: Path | str, figures: Callable[[], Iterator[tuple[str, Figure]]], **savefig: object) -> None:
    """A folder of PNGs (``name.png`` per figure drawn by ``figures()``), swapped in whole."""

    def fill(staging: Path) -> None:
        for name, fig in figures():
            write_figure(fig, staging / f"{name}.png", **savefig)

    replace_folder(target, fill)


def file_sha256(path: Path | str) -> str:
    """sha256 of a file: the identity of the data a model was trained on, or of the model itself."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
