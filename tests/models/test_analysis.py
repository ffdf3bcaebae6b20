"""Analysis helpers behind the notebooks, on tiny frames with answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import analysis

UTC = "UTC"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def test_table_coverage_counts_rows_accounts_and_span():
    tables = {
        "emails": pd.DataFrame(
            {"account_id": ["a", "a", "b"], "sent_at": [ts("2025-01-02 10:00"), ts("2025-03-01"), ts("2025-02-01")]}
        ),
        "accounts": pd.DataFrame({"account_id": ["a", "b"]}),
    }
    out = analysis.table_coverage(tables, {"emails": ["sent_at"]})
    assert out.loc["emails", "rows"] == 3 and out.loc["emails", "accounts"] == 2
    assert out.loc["emails", "first"] == pd.Timestamp("2025-01-02 10:00")
    assert out.loc["emails", "last"] == pd.Timestamp("2025-03-01")
    assert pd.isna(out.loc["accounts", "first"])


REPORT = {
    "tables": {
        "emails": {
            "rows_read": 10,
            "rows_kept": 7,
            "rows_rejected": {"unknown account": 2},
            "rows_filtered": {"duplicate": 1},
            "rows_repaired": {"id whitespace stripped": 4},
            "notes": ["mixed offsets"],
        },
        "accounts": {
            "rows_read": 3,
            "rows_kept": 3,
            "rows_rejected": {},
            "rows_filtered": {},
            "rows_repaired": {},
            "notes": [],
        },
    }
}


def test_ingest_summary_sums_reasons():
    out = analysis.ingest_summary(REPORT)
    assert out.loc["emails"].to_dict() == {
        "rows_read": 10,
        "rows_kept": 7,
        "rows_rejected": 2,
        "rows_filtered": 1,
        "rows_repaired": 4,
        "kept_share": 0.7,
    }
    assert out.loc["accounts", "rows_rejected"] == 0


def test_ingest_issues_lists_every_reason_largest_first():
    out = analysis.ingest_issues(REPORT)
    assert out[["action", "reason", "rows"]].iloc[:3].values.tolist() == [
        ["repaired", "id whitespace stripped", 4],
        ["rejected", "unknown account", 2],
        ["filtered", "duplicate", 1],
    ]
    assert out.iloc[3]["action"] == "note"
    assert analysis.ingest_issues({"tables": {}}).empty


def test_rejected_reasons_counts_and_gives_an_example_row():
    rejected = {
        "emails": pd.DataFrame({"row": [5, 3, 9], "reason": ["bad date", "bad date", "unknown account"]}),
        "meetings": pd.DataFrame({"row": pd.Series([], dtype=int), "reason": pd.Series([], dtype=str)}),
    }
    out = analysis.rejected_reasons(rejected)
    assert out.values.tolist() == [["emails", "bad date", 2, 3], ["emails", "unknown account", 1, 9]]
    assert analysis.rejected_reasons({}).empty


def test_reply_latencies_use_the_feature_definition():
    emails = pd.DataFrame(
        {
            "account_id": ["a", "a", "a", "b"],
            "thread_id": ["t1", "t1", "t2", "t3"],
            "sent_at": [ts("2025-01-06 09:00"), ts("2025-01-08 11:00"), ts("2025-01-06 10:00"), ts("2025-01-06 10:00")],
            "direction": ["inbound", "outbound", "outbound", "inbound"],
        }
    )
    accounts = pd.DataFrame(
        {"account_id": ["a", "b"], "region": ["NA", "EMEA"], "segment": ["SMB", "SMB"], "timezone": ["UTC", "UTC"]}
    )
    out = analysis.reply_latencies(emails, accounts).set_index("account_id")
    assert out.loc["a", "latency_hours"] == pytest.approx(50.0)  # another thread's reply does not count
    assert pd.isna(out.loc["b", "latency_hours"]) and out.loc["b", "region"] == "EMEA"


def test_latency_by_group_counts_unanswered_apart():
    frame = pd.DataFrame({"region": ["NA"] * 4 + ["EMEA"], "latency_hours": [1.0, 50.0, 3.0, np.nan, 10.0]})
    out = analysis.latency_by_group(frame, "region")
    assert out.loc["NA", "inbound"] == 4 and out.loc["NA", "answered"] == 3
    assert out.loc["NA", "median_hours"] == 3.0
    assert out.loc["NA", "over_threshold_share"] == pytest.approx(1 / 3)
    assert out.loc["NA", "unanswered_share"] == pytest.approx(0.25)
    assert out.loc["EMEA", "over_threshold_share"] == 0


def test_ecdf_is_sorted_and_ends_at_one():
    out = analysis.ecdf(pd.Series([3.0, np.nan, 1.0, 2.0]))
    assert out["value"].tolist() == [1.0, 2.0, 3.0] and out["share"].iloc[-1] == 1.0


def test_gaps_between_is_per_account():
    meetings = pd.DataFrame(
        {
            "account_id": ["a", "b", "a", "a"],
            "start_at": [ts("2025-01-01"), ts("2025-01-05"), ts("2025-04-01"), ts("2025-05-01")],
        }
    )
    out = analysis.gaps_between(meetings, "start_at")
    assert out["account_id"].tolist() == ["a", "a"] and out["gap_days"].tolist() == [90.0, 30.0]


CONTRACTS = pd.DataFrame(
    {
        "account_id": ["a", "a", "b", "c"],
        "start_date": pd.to_datetime(["2024-01-01", "2025-01-01", "2024-06-01", "2024-01-01"]),
        "end_date": pd.to_datetime(["2024-12-31", "2025-12-31", "2025-05-31", "2025-12-31"]),
        "arr": [10.0, 12.0, 5.0, 8.0],
        "seats": pd.array([10, 20, 4, 0], dtype="Int64"),
        "cancel_date": pd.to_datetime([None, None, None, "2025-02-01"]),
    }
)


def test_adoption_vs_seats_uses_the_current_contract():
    usage = pd.DataFrame(
        {
            "account_id": ["a", "a", "a", "b"],
            "user_id": ["u1", "u2", "u1", "u9"],
            "feature": ["x", "y", "x", "x"],
            "event_at": [ts("2025-03-10"), ts("2025-03-20"), ts("2025-01-01"), ts("2025-03-15")],
        }
    )
    out = analysis.adoption_vs_seats(usage, CONTRACTS, pd.Timestamp("2025-04-01"))
    assert set(out.index) == {"a", "b"}  # c was cancelled in February
    assert out.loc["a", "seats"] == 20 and out.loc["a", "active_users"] == 2 and out.loc["a", "seat_utilisation"] == 0.1
    assert out.loc["b", "features_used"] == 1


def test_spells_and_lifetimes_follow_the_label_rules():
    spells = analysis.contract_spells(CONTRACTS, grace_days=30)
    assert spells.groupby("account_id").size().to_dict() == {"a": 1, "b": 1, "c": 1}  # a renewed: one spell
    life = analysis.account_lifetimes(
        spells, pd.Timestamp("2025-12-31"), grace_days=30, observed_from=pd.Timestamp("2024-03-01")
    )
    assert life.loc["a", "churned"] == False and life.loc["a", "duration_days"] == 730  # noqa: E712 (censored)
    assert life.loc["b", "churned"] == True and life.loc["b", "duration_days"] == 364  # noqa: E712
    assert life.loc["c", "end"] == pd.Timestamp("2025-02-01") and life.loc["c", "entry_days"] == 60
    assert life.loc["b", "entry_days"] == 0


def test_kaplan_meier_by_hand():
    # 4 accounts: churn at 10, censored at 15, churn at 20, censored at 30
    out = analysis.kaplan_meier(pd.Series([10, 15, 20, 30]), pd.Series([True, False, True, False]))
    assert out["days"].tolist() == [0, 10, 20]
    assert out["retention"].tolist() == pytest.approx([1.0, 0.75, 0.375])


def test_kaplan_meier_delayed_entry_does_not_count_accounts_before_they_are_seen():
    # the second account enters at 12: it is not at risk at 10, so the first churn is 1 of 1
    out = analysis.kaplan_meier(pd.Series([10, 20]), pd.Series([True, True]), entry=pd.Series([0, 12]))
    assert out["retention"].tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_retention_by_cohort_skips_small_cohorts():
    life = pd.DataFrame(
        {
            "signup": pd.to_datetime(["2023-02-01"] * 3 + ["2024-05-01"]),
            "duration_days": [100.0, 200.0, 300.0, 50.0],
            "churned": [True, False, True, True],
        }
    )
    out = analysis.retention_by_cohort(life, "Y", min_accounts=2)
    assert out["cohort"].unique().tolist() == ["2023"]
    assert out["retention"].tolist() == pytest.approx(
        [1.0, 2 / 3, 0.0]
    )  # churn at 100 (1 of 3), censor at 200, churn at 300 (1 of 1)


def test_churn_rate_by_band_ignores_unlabelled_snapshots():
    frame = pd.DataFrame({"tenure": [100, 200, 400, 500, 600], "label": pd.array([1, 0, 0, 1, pd.NA], dtype="Int8")})
    out = analysis.churn_rate_by_band(frame, "tenure", [0, 365, 10_000], ["first year", "later"])
    assert out["snapshots"].tolist() == [2, 2] and out["churn_rate"].tolist() == [0.5, 0.5]


def test_step_at_compares_both_sides_of_the_line():
    values = pd.Series([40.0, 45.0, 50.0, 55.0, 100.0])
    contrib = pd.Series([0.0, 0.1, 0.5, 0.7, 9.0])
    out = analysis.step_at(values, contrib, threshold=48, width=10)
    assert out["below"] == pytest.approx(0.05) and out["above"] == pytest.approx(0.6)
    assert out["step"] == pytest.approx(0.55) and (out["n_below"], out["n_above"]) == (2, 2)


def test_dependence_curve_bins_by_quantile():
    values = pd.Series(np.arange(100, dtype=float))
    out = analysis.dependence_curve(values, values * 2, bins=4)
    assert len(out) == 4 and out["rows"].sum() == 100
    assert out["contribution"].is_monotonic_increasing


def test_numeric_matrix_turns_categories_into_codes():
    X = pd.DataFrame({"region": pd.Categorical(["NA", "EMEA", None], categories=["EMEA", "NA"]), "x": [1, 2, 3]})
    out = analysis.numeric_matrix(X)
    assert out["region"].tolist()[:2] == [1.0, 0.0] and np.isnan(out["region"].iloc[2])
    assert out["x"].dtype == float


def test_pick_account_defaults_to_the_riskiest():
    frame = pd.DataFrame({"account_id": ["a", "b", "c"]})
    assert analysis.pick_account(frame, np.array([0.1, 0.9, 0.3])) == "b"
    assert analysis.pick_account(frame, np.array([0.1, 0.9, 0.3]), "c") == "c"
    with pytest.raises(KeyError):
        analysis.pick_account(frame, np.array([0.1, 0.9, 0.3]), "z")


PLAYBOOK = {"renewal": "Start the renewal plan now.", "responsiveness": "Reply the same day;\n  name one owner."}


def at_risk(rows: list[tuple]) -> pd.DataFrame:
    columns = [
        "account_id",
        "account_name",
        "owner",
        "segment",
        "region",
        "arr",
        "churn_probability",
        "risk_tier",
        "expected_arr_at_risk",
        "rank",
        "reason_1",
        "what_changed",
        "play_1",
        "play_2",
        "play_3",
    ]
    return pd.DataFrame(rows, columns=columns)


NOW = at_risk(
    [
        (
            "a",
            "A Co",
            "csm-1",
            "SMB",
            "NA",
            100.0,
            0.6,
            "high",
            60.0,
            1,
            "r",
            "Renewal coming up",
            "Start the renewal plan now.",
            "Reply the same day; name one owner.",
            None,
        ),
        (
            "b",
            "B Co",
            "csm-1",
            "SMB",
            "EMEA",
            200.0,
            0.3,
            "medium",
            60.0,
            2,
            "r",
            "x",
            "Reply the same day; name one owner.",
            None,
            None,
        ),
        (
            "c",
            "C Co",
            "csm-2",
            "Enterprise",
            "NA",
            1000.0,
            0.05,
            "low",
            50.0,
            3,
            "r",
            "x",
            "Start the renewal plan now.",
            None,
            None,
        ),
        ("e", "E Co", "csm-2", "SMB", "NA", 10.0, 0.4, "medium", 4.0, 4, "r", "x", None, None, None),
    ]
)
BEFORE = at_risk(
    [
        ("a", "A Co", "csm-1", "SMB", "NA", 100.0, 0.55, "high", 55.0, 1, "r", "x", None, None, None),
        ("b", "B Co", "csm-1", "SMB", "EMEA", 200.0, 0.1, "low", 20.0, 3, "r", "x", None, None, None),
        ("c", "C Co", "csm-2", "Enterprise", "NA", 1000.0, 0.3, "medium", 300.0, 2, "r", "x", None, None, None),
        ("d", "D Co", "csm-3", "SMB", "LATAM", 50.0, 0.7, "high", 35.0, 4, "r", "x", None, None, None),
    ]
)


def test_arr_at_risk_by_owner():
    out = analysis.arr_at_risk_by(NOW, "owner")
    assert out.index.tolist() == ["csm-1", "csm-2"]
    assert out.loc["csm-1"].to_dict() == {
        "accounts": 2,
        "arr": 300.0,
        "expected_arr_at_risk": 120.0,
        "watch_accounts": 2,
        "watch_arr": 300.0,
        "mean_probability": pytest.approx(0.45),
    }
    assert out.loc["csm-2", "watch_arr"] == 10.0


def test_headline():
    out = analysis.headline(NOW)
    assert out.to_dict() == {
        "accounts_scored": 4,
        "watch_accounts": 3,
        "arr": 1310.0,
        "watch_arr": 310.0,
        "expected_arr_at_risk": 174.0,
    }


def test_reason_signals_read_back_from_plays_whatever_the_line_breaks():
    out = analysis.reason_signals(NOW, PLAYBOOK)
    assert out["signal_1"].tolist()[:3] == ["renewal", "responsiveness", "renewal"]
    assert out.loc[0, "signal_2"] == "responsiveness" and pd.isna(out.loc[3, "signal_1"])


def test_reason_counts_on_the_watch_list():
    out = analysis.reason_counts(NOW, PLAYBOOK, {"renewal": "Renewal coming up"})
    assert out.loc["renewal", ["label", "first_reason", "any_reason", "expected_arr_at_risk"]].tolist() == [
        "Renewal coming up",
        1,
        1,
        60.0,
    ]  # c (low tier) is not on the watch list
    assert out.loc["responsiveness", "any_reason"] == 2 and out.loc["responsiveness", "label"] == "responsiveness"


def test_compare_weeks_new_exit_and_moves():
    out = analysis.compare_weeks(BEFORE, NOW).set_index("account_id")
    assert out["status"].to_dict() == {"a": "stays", "b": "new", "c": "exit", "d": "exit", "e": "new"}
    assert out.loc["b", "p_change"] == pytest.approx(0.2)
    assert pd.isna(out.loc["d", "p_now"]) and out.loc["d", "account_name"] == "D Co"  # no longer active, name kept
    assert pd.isna(out.loc["e", "p_before"]) and out.loc["e", "rank_before"] is pd.NA
    assert list(analysis.compare_weeks(BEFORE, NOW).columns) == analysis.COMPARE_COLUMNS


def test_entries_exits_and_biggest_moves_are_ordered():
    comparison = analysis.compare_weeks(BEFORE, NOW)
    assert analysis.new_entries(comparison)["account_id"].tolist() == ["e", "b"]
    assert analysis.exits(comparison)["account_id"].tolist() == ["d", "c"]  # gone first, then the largest drop
    assert analysis.biggest_moves(comparison, 2)["account_id"].tolist() == ["c", "b"]
    assert analysis.status_counts(comparison).to_dict() == {"new": 2, "exit": 2, "stays": 1}


def test_watch_list_keeps_rank_order():
    assert analysis.watch_list(NOW)["account_id"].tolist() == ["a", "b", "e"]


def test_metrics_table_side_by_side():
    pred = pd.DataFrame(
        {
            "label": [0, 0, 1, 1],
            "arr": [1.0, 1.0, 1.0, 1.0],
            "p_model": [0.1, 0.2, 0.8, 0.9],
            "p_logistic": [0.9, 0.2, 0.8, 0.1],
            "p_health": [0.5] * 4,
        }
    )
    out = analysis.metrics_table(pred)
    assert list(out.columns) == ["model", "logistic", "health"]
    assert out.loc["roc_auc", "model"] == 1.0 and out.loc["roc_auc", "health"] == 0.5
