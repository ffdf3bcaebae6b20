"""The playbook: reason signal → recommended play."""

import pandas as pd
import pytest

from features.catalogue import SIGNALS
from features.errors import InputError
from models import plays
from tests.models.conftest import ROOT


def test_the_project_playbook_has_one_play_per_actionable_signal():
    playbook = plays.load_playbook(ROOT / "pipelines" / "playbook.yaml")
    assert set(playbook) == set(SIGNALS) - {"context"}  # context (region, segment) is never a reason
    for signal, play in playbook.items():
        assert play.strip() == play and "\n" not in play and "  " not in play, signal


def test_plays_are_folded_onto_one_line(tmp_path):
    path = tmp_path / "playbook.yaml"
    path.write_text("qbr: |\n  Schedule a QBR\n    with   the sponsor.\n")
    assert plays.load_playbook(path) == {"qbr": "Schedule a QBR with the sponsor."}


@pytest.mark.parametrize(
    "text, match",
    [
        ("qbr: Book it.\nweather: Bring an umbrella.\n", "unknown signal.*weather"),
        ("qbr: '  '\n", "empty play for qbr"),
        ("qbr:\n", "empty play for qbr"),
        ("- qbr\n", "must map signal names to plays"),
    ],
)
def test_a_bad_playbook_is_an_input_error_naming_the_problem(tmp_path, text, match):
    path = tmp_path / "playbook.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=match) as err:
        plays.load_playbook(path)
    assert str(path) in str(err.value)


def test_a_missing_playbook_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="playbook not found"):
        plays.load_playbook(tmp_path / "nope.yaml")


def test_plays_for_each_reason_with_a_generic_fallback():
    signals = pd.Series(["qbr", "voice", pd.NA], index=["a", "b", "c"])
    out = plays.plays_for(signals, {"qbr": "Book a QBR."})
    assert out["a"] == "Book a QBR."
    assert out["b"] == "Review the account with its owner this week."
    assert pd.isna(out["c"]) and list(out.index) == ["a", "b", "c"]
