"""Atomic writes: a failed or interrupted stage never leaves a half-written output."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


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


def write_json(doc: dict, target: Path | str) -> None:
    """Pretty, key-sorted JSON (stable bytes for DVC), written atomically."""
    text = json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"
    write_atomic(target, lambda tmp: tmp.write_text(text))
