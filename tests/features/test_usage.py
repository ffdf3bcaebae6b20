"""Usage metrics learned from the export's vocabulary: hand-checked values, the vocabulary rules, a brute force."""

import math

import numpy as np
import pandas as pd
import pytest
from canonical_frames import feature_params, random_export, table

from features.build import build_features
from features.catalogue import format_value
from features.usage import OTHER, Vocabulary, event_vocabulary, usage_features, vocabulary_specs


def use(account, user, feature, at, count=1):
    return {"account_id": account, "user_id": user, "feature": feature, "event_at": at, "event_count": count}


USAGE = table(
    "usage_events",
    [
        use("A", "u1", "posts", "2025-03-20 10:00", 3),
        use("A", "u2", "posts", "2025-03-25 23:59", 1),
        use("A", "u2", "exports", "2025-03-26 08:00", 2),
        use("A", "u1", "posts", "2025-02-10 08:00", 2),  # in the base [2024-12-02, 2025-03-02) and in 90 days
        use("A", "u3", "posts", "2024-12-05 08:00", 4),  # in the base, older than 90 days
        use("A", "u3", "posts", "2024-11-20 08:00", 9),  # older than 120 days: nowhere
        use("A", "u1", "alerts", "2025-03-28 08:00", 1),
        use("B", "u8", "posts", "2025-01-30 12:00", 5),  # nobody active in the last 30 days
        use("B", "u9", "posts", "2025-04-01 00:00", 7),  # at the snapshot: not seen
    ],
)
S = "2025-04-01"
GRID = pd.DataFrame(
    {"account_id": pd.Series(["A", "B", "C"], dtype="string"), "snapshot_date": pd.to_datetime([S] * 3)}
)


def features(vocabulary: Vocabulary) -> dict[str, dict]:
    out = usage_features({"usage_events": USAGE}, GRID, vocabulary)
    return {r["account_id"]: r for r in out.to_dict("records")}


def test_the_vocabulary_is_the_most_used_types_and_the_rest_is_pooled():
    assert event_vocabulary({"usage_events": USAGE}, 20) == Vocabulary(("posts", "exports", "alerts"), False)
    assert event_vocabulary({"usage_events": USAGE}, 1) == Vocabulary(("posts",), True)
    tied = table("usage_events", [use("A", "u", "b", "2025-01-01"), use("A", "u", "a", "2025-01-02")])
    assert event_vocabulary({"usage_events": tied}, 1).event_types == ("a",)  # ties by name


def test_counts_per_user_and_trend_by_hand():
    a = features(Vocabulary(("posts", "exports", "alerts"), False))["A"]
    assert a["events_posts_30d"] == 4.0  # 3 + 1; the 2025-04-01 row of B is B's, and at the snapshot
    assert a["events_posts_90d"] == 6.0  # + the 2 of February
    assert a["events_posts_per_user_30d"] == pytest.approx(4 / 2)  # u1 and u2 active in 30 days
    assert a["events_posts_trend_30d"] == pytest.approx(4 / ((2 + 4) / 3))  # base: Feb 2 + Dec 4
    assert a["events_exports_30d"] == 2.0 and math.isnan(a["events_exports_trend_30d"])  # no base
    assert a["usage_active_days_30d"] == 4.0  # 20, 25, 26, 28 March
    assert a["usage_active_users_30d"] == 2.0


def test_no_active_user_gives_no_per_user_value_and_silent_accounts_zeros():
    rows = features(Vocabulary(("posts",), True))
    b, c = rows["B"], rows["C"]
    assert b["events_posts_30d"] == 0.0 and b["events_posts_90d"] == 5.0 and b["usage_active_users_30d"] == 0.0
    assert math.isnan(b["events_posts_per_user_30d"])  # no active user: per user is undefined, not 0
    assert b["events_posts_trend_30d"] == 0.0  # 0 against 5 / 3
    assert c["events_posts_30d"] == 0.0 and c["events_other_30d"] == 0.0 and c["usage_active_days_30d"] == 0.0
    assert math.isnan(c["events_posts_trend_30d"])
    a = rows["A"]
    assert a["events_other_30d"] == 3.0  # exports 2 + alerts 1 pooled


def test_a_fixed_vocabulary_gives_its_columns_whatever_the_export_holds():
    """Scoring uses the model's vocabulary: a type the export lacks is zeros, a type the model lacks is not counted."""
    rows = features(Vocabulary(("posts", "logins"), False))
    assert rows["A"]["events_logins_30d"] == 0.0 and rows["A"]["events_posts_30d"] == 4.0
    assert "events_exports_30d" not in rows["A"]


def test_names_are_column_safe_unique_and_phrases_keep_the_type_name():
    vocabulary = Vocabulary(("Post Created", "post-created", "{weird} name", "other"), True)
    assert vocabulary.slugs == ["post_created", "post_created_2", "weird_name", "other", "other_2"]
    assert vocabulary.labels[-1] == OTHER
    specs = {s.name: s for s in vocabulary_specs(vocabulary)}
    weird = specs["events_weird_name_30d"]
    assert weird.phrase.format(value=format_value(3.0, weird.unit)) == "{weird} name in the last 30 days: 3"
    assert weird.learned and weird.risk_direction == 0 and weird.group == "Use of {weird} name"
    assert not specs["usage_active_days_30d"].learned and specs["usage_active_days_30d"].risk_direction == -1
    assert len({s.group for s in specs.values() if s.learned}) == 5  # one reason per event type


def test_every_slot_matches_a_brute_force_on_a_random_export():
    export = random_export(n_accounts=6, seed=11, days=400, usage_per_day=4)
    params = feature_params(first_snapshot="2024-03-04", usage={"max_event_types": 5})
    frame, doc = build_features(export, None, params)
    vocabulary = Vocabulary.from_dict(doc["vocabulary"]["usage_events"])
    assert vocabulary.other and len(vocabulary.event_types) == 5
    u = export["usage_events"].copy()
    u["day"] = u["event_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.floor("D")
    u["n"] = u["event_count"].fillna(1).astype(float)
    u["slot"] = u["feature"].where(u["feature"].isin(vocabulary.event_types), OTHER)
    rows = frame.sample(60, random_state=2)
    for row in rows.itertuples():
        s = row.snapshot_date
        mine = u[(u["account_id"] == row.account_id) & (u["day"] < s)]
        last30 = mine[mine["day"] >= s - pd.Timedelta(days=30)]
        users = last30["user_id"].dropna().nunique()
        assert row.usage_active_days_30d == last30["day"].nunique()
        assert row.usage_active_users_30d == users
        for label, slug in zip(vocabulary.labels, vocabulary.slugs):
            kind = mine[mine["slot"] == label]
            c30 = kind.loc[kind["day"] >= s - pd.Timedelta(days=30), "n"].sum()
            c90 = kind.loc[kind["day"] >= s - pd.Timedelta(days=90), "n"].sum()
            base = kind.loc[
                (kind["day"] >= s - pd.Timedelta(days=120)) & (kind["day"] < s - pd.Timedelta(days=30)), "n"
            ]
            assert getattr(row, f"events_{slug}_30d") == c30
            assert getattr(row, f"events_{slug}_90d") == c90
            per_user = getattr(row, f"events_{slug}_per_user_30d")
            assert (np.isnan(per_user) and users == 0) or per_user == pytest.approx(c30 / users)
            trend = getattr(row, f"events_{slug}_trend_30d")
            assert (np.isnan(trend) and base.sum() == 0) or trend == pytest.approx(c30 / (base.sum() / 3))
