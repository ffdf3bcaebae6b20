"""Reason → play: the recommended action for each risk signal, from the team's playbook."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from features.catalogue import SIGNALS
from features.errors import InputError


def validate_playbook(playbook: dict, source: str) -> dict[str, str]:
    """Every key must be a known signal and every play a non-empty text."""
    if not isinstance(playbook, dict):
        raise InputError(f"{source}: the playbook must map signal names to plays")
    unknown = sorted(set(playbook) - set(SIGNALS))
    if unknown:
        raise InputError(f"{source}: unknown signal(s) {', '.join(unknown)}; known: {', '.join(SIGNALS)}")
    empty = sorted(k for k, v in playbook.items() if not isinstance(v, str) or not v.strip())
    if empty:
        raise InputError(f"{source}: empty play for {', '.join(empty)}")
    return {k: " ".join(v.split()) for k, v in playbook.items()}


def plays_for(signals: pd.Series, playbook: dict[str, str]) -> pd.Series:
    """The play of each reason's signal; a signal the playbook lacks gets a generic review."""
    fallback = "Review the account with its owner this week."
    return signals.map(lambda s: playbook.get(s, fallback) if isinstance(s, str) else pd.NA).astype("string")


def load_playbook(path: Path) -> dict[str, str]:
    """The team's playbook file (``paths.playbook``), validated."""
    try:
        return validate_playbook(yaml.safe_load(Path(path).read_text()), str(path))
    except FileNotFoundError:
        raise InputError(f"{path}: playbook not found (params.yaml paths.playbook)") from None
