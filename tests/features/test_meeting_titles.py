import pandas as pd
import pytest

from features.meetings_titles import classify_meeting_title


@pytest.mark.parametrize(
    ("title", "kind"),
    [
        ("QBR", "qbr"),
        ("Q3 Business Review", "qbr"),
        ("q1 business review - Acme", "qbr"),
        ("EBR", "qbr"),
        ("Executive Business Review", "qbr"),
        ("Revue trimestrielle", "qbr"),
        ("Quarterly review", "qbr"),
        ("QBR prep call", "qbr"),
        ("Onboarding", "onboarding"),
        ("Kickoff", "onboarding"),
        ("Kick-off Bistro", "onboarding"),
        ("Onboarding call", "onboarding"),
        ("Training", "training"),
        ("Webinar: new dashboards", "training"),
        ("Call", "call"),
        ("Weekly sync", "call"),
        ("Check-in", "call"),
        ("check in with Hans", "call"),
        ("Lunch with Hans", "other"),
        ("Product roadmap", "other"),
        ("Ebro river trip", "other"),  # "ebr" inside a word is not an EBR
        ("Recall of invoices", "other"),  # nor "call" inside a word
    ],
)
def test_titles_map_to_their_meeting_type(title, kind):
    assert classify_meeting_title(pd.Series([title])).iloc[0] == kind


def test_missing_titles_are_other_and_the_index_is_kept():
    titles = pd.Series(["QBR", None, pd.NA, ""], index=[10, 11, 12, 13])
    kinds = classify_meeting_title(titles)
    assert kinds.tolist() == ["qbr", "other", "other", "other"]
    assert kinds.index.tolist() == [10, 11, 12, 13]
    assert kinds.name == "meeting_type"


def test_the_input_is_not_modified():
    titles = pd.Series(["Q3 Business Review"])
    classify_meeting_title(titles)
    assert titles.tolist() == ["Q3 Business Review"]
