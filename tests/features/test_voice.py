import math

import pandas as pd
import pytest
from canonical_frames import table

from features.voice import voice_features


def survey(sid, kind, sent, responded=None, score=None, account="A"):
    return {
        "survey_id": sid,
        "account_id": account,
        "sent_at": sent,
        "survey_type": kind,
        "responded_at": responded,
        "score": score,
    }


SURVEYS = table(
    "surveys",
    [
        survey("s1", "nps", "2024-06-01 10:00", "2024-06-03 10:00", 9.0),
        survey("s2", "nps", "2025-01-10 10:00", "2025-01-12 10:00", 5.0),
        survey("s3", "nps", "2025-03-25 10:00", "2025-04-05 10:00", 10.0),  # answered after 2025-04-01
        survey("c1", "csat", "2025-02-01 10:00", "2025-02-02 10:00", 4.0),
        survey("c2", "csat", "2025-03-01 10:00"),  # never answered
        survey("c3", "csat", "2024-01-01 10:00", "2024-01-02 10:00", 1.0),  # older than 365 days
    ],
)


def features_at(*pairs):
    grid = pd.DataFrame(
        {
            "account_id": pd.Series([a for a, _ in pairs], dtype="string"),
            "snapshot_date": pd.to_datetime([s for _, s in pairs]),
        }
    )
    out = voice_features({"surveys": SURVEYS}, grid)
    return {(r["account_id"], r["snapshot_date"].strftime("%Y-%m-%d")): r for r in out.to_dict("records")}


def test_detractor_before_the_late_answer():
    a = features_at(("A", "2025-04-01"))["A", "2025-04-01"]
    assert a["nps_last_score"] == 5.0
    assert a["nps_detractor_flag"] == 1.0
    assert a["nps_change_score"] == -4.0
    assert a["survey_response_share_365d"] == pytest.approx(3 / 5)  # s1, s2, c1 of s1, s2, s3, c1, c2
    assert a["survey_csat_mean_score_365d"] == pytest.approx(4.0)


def test_promoter_after_the_late_answer():
    a = features_at(("A", "2025-04-10"))["A", "2025-04-10"]
    assert a["nps_last_score"] == 10.0
    assert a["nps_detractor_flag"] == 0.0
    assert a["nps_change_score"] == 5.0


def test_no_surveys_is_missing_not_zero():
    b = features_at(("B", "2025-04-01"))["B", "2025-04-01"]
    assert all(
        math.isnan(b[k])
        for k in (
            "nps_last_score",
            "nps_detractor_flag",
            "nps_change_score",
            "survey_response_share_365d",
            "survey_csat_mean_score_365d",
        )
    )
