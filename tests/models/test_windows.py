"""The out-of-time windows derived from the labelled snapshots (``train.windows: auto``) or given as dates."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.errors import InputError
from models.params import TrainParams
from models.targets import RENEWAL
from models.train import split_out_of_time
from models.windows import Windows, auto_windows, fully_labelled_dates, resolve_windows, weeks_needed

MONDAY = dt.date(2022, 4, 4)


def weekly(n: int, first: dt.date = MONDAY, every: int = 7) -> list[dt.date]:
    return [first + dt.timedelta(days=every * i) for i in range(n)]


def check(w: Windows, dates: list[dt.date], test: int, valid: int, min_train: int, gap_days: int) -> None:
    """The invariants of auto windows over ``dates``."""
    in_window = {
        "train": [d for d in dates if w.train_start <= d <= w.train_end],
        "valid": [d for d in dates if w.valid_start <= d <= w.valid_end],
        "test": [d for d in dates if w.test_start <= d <= w.test_end],
    }
    assert w.test_end == dates[-1] and w.train_start == dates[0]  # the most recent weeks are the test
    assert (w.valid_start - w.train_end).days >= gap_days and (w.test_start - w.valid_end).days >= gap_days
    assert (w.test_end - w.test_start).days < 7 * test and (w.valid_end - w.valid_start).days < 7 * valid
    assert (w.train_end - w.train_start).days // 7 + 1 >= min_train
    # each window is as large as it may be: one more snapshot would break a size or a gap
    week = dt.timedelta(days=7)
    assert not [d for d in dates if w.test_end - test * week < d < w.test_start]
    assert not [d for d in dates if w.valid_end - valid * week < d < w.valid_start]
    assert not [d for d in dates if w.valid_end < d <= w.test_start - dt.timedelta(days=gap_days)]
    assert not [d for d in dates if w.train_end < d <= w.valid_start - dt.timedelta(days=gap_days)]
    assert all(in_window.values())


def test_the_most_recent_labelled_weeks_are_the_test_then_validation_then_train_with_gaps():
    dates = weekly(100)  # 2022-04-04 .. 2024-02-26, as on the shifted-calendar demo book
    w = auto_windows(dates, test=13, valid=13, min_train=26, gap_days=120)
    assert w == Windows(
        train_end=dt.date(2023, 1, 2),
        valid_start=dt.date(2023, 5, 8),
        valid_end=dt.date(2023, 7, 31),
        test_start=dt.date(2023, 12, 4),
        test_end=dt.date(2024, 2, 26),
        train_start=dt.date(2022, 4, 4),
    )
    assert (w.valid_start - w.train_end).days == 126 and (w.test_start - w.valid_end).days == 126  # 18 weeks >= 120 d
    check(w, dates, 13, 13, 26, 120)


def test_too_short_a_history_says_how_many_labelled_weeks_there_are_and_how_many_are_needed():
    need = weeks_needed(test=13, valid=13, min_train=26, gap_days=120)
    assert need == 86  # 13 + 13 + 26 weeks, and 17 weeks skipped twice so that each gap is 126 >= 120 days
    auto_windows(weekly(need), 13, 13, 26, 120)  # exactly enough
    with pytest.raises(InputError) as error:
        auto_windows(weekly(need - 1), 13, 13, 26, 120)
    message = str(error.value)
    assert message.startswith("features.parquet: 85 fully labelled weeks (2022-04-04 to 2023-11-13), ")
    assert "train.windows auto needs 86: train >= 26, validation 13 and test 13 weeks" in message
    assert "\n" not in message
    with pytest.raises(InputError, match=r"^features\.parquet: 0 fully labelled weeks, train\.windows auto needs 86"):
        auto_windows([], 13, 13, 26, 120)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 160),
    test=st.integers(1, 30),
    valid=st.integers(1, 30),
    min_train=st.integers(1, 40),
    gap_days=st.integers(1, 200),
    every=st.sampled_from([7, 14]),
)
def test_auto_windows_hold_their_sizes_and_gaps_or_say_the_history_is_too_short(
    n, test, valid, min_train, gap_days, every
):
    dates = weekly(n, every=every)
    try:
        w = auto_windows(dates, test, valid, min_train, gap_days)
    except InputError as error:
        assert "fully labelled weeks" in str(error)
        if every == 7:  # on a weekly grid, exactly when there are fewer weeks than needed
            assert n < weeks_needed(test, valid, min_train, gap_days)
        return
    if every == 7:
        assert n >= weeks_needed(test, valid, min_train, gap_days)
    check(w, dates, test, valid, min_train, gap_days)


def labelled_frame() -> pd.DataFrame:
    """Two accounts on 120 weekly snapshots; the last 17 weeks labelled only where a churn is confirmed."""
    dates = pd.to_datetime(weekly(120))
    frame = pd.DataFrame(
        {
            "account_id": ["a", "b"] * len(dates),
            "snapshot_date": dates.repeat(2),
            "label": pd.array([0, 1] * len(dates), dtype="Int8"),
        }
    )
    partial = frame["snapshot_date"] > dates[-18]
    frame.loc[partial & (frame["account_id"] == "a"), "label"] = pd.NA  # only the churner is known
    frame.loc[frame["snapshot_date"] > dates[-6], "label"] = pd.NA  # nothing known yet
    return frame


def test_only_snapshots_whose_every_row_is_labelled_count():
    frame = labelled_frame()
    dates = fully_labelled_dates(frame)
    assert dates == weekly(103)
    p = TrainParams.model_validate(
        {**TRAIN, "windows": "auto", "window_weeks": {"test": 13, "valid": 13, "min_train": 26, "min_outcomes": 0}}
    )
    w = resolve_windows(frame, p, horizon_days=90, grace_days=30)
    assert w.test_end == weekly(103)[-1]
    parts = split_out_of_time(frame, w)
    assert parts["test"]["snapshot_date"].max() == pd.Timestamp(w.test_end)
    assert parts["test"]["label"].astype(int).mean() == 0.5  # no week of churners alone


def test_explicit_dates_are_taken_as_given_and_an_open_test_end_stops_at_the_last_fully_labelled_week():
    frame = labelled_frame()
    dates = {"train_end": "2023-03-20", "valid_start": "2023-06-19", "valid_end": "2023-09-18"}
    p = TrainParams.model_validate({**TRAIN, "windows": "dates", **dates, "test_start": "2023-12-18", "test_end": None})
    w = resolve_windows(frame, p, horizon_days=90, grace_days=30)
    assert w == Windows(
        dt.date(2023, 3, 20), dt.date(2023, 6, 19), dt.date(2023, 9, 18), dt.date(2023, 12, 18), weekly(103)[-1]
    )
    # an explicit window that reaches into the partly labelled weeks still leaves them out
    parts = split_out_of_time(frame, Windows(w.train_end, w.valid_start, w.valid_end, w.test_start, None))
    assert parts["test"]["snapshot_date"].max() == pd.Timestamp(weekly(103)[-1])


TRAIN = {
    "calibration": "sigmoid",
    "seed": 42,
    "tuning": {
        "candidates": [
            {
                "name": "only",
                "num_leaves": 7,
                "min_data_in_leaf_share": 0.01,
                "lambda_l2": 0.0,
                "learning_rate": 0.1,
                "feature_fraction": 1.0,
            }
        ],
        "min_data_in_leaf_floor": 20,
        "search_rows": 1000,
        "num_boost_round": 10,
        "early_stopping_rounds": 5,
        "bagging_fraction": 1.0,
        "bagging_freq": 0,
    },
    "scale_pos_weight": 1.0,
    "max_window_rows": 1_000_000,
    "monotone": True,
    "registered_model": "m",
    "renewal_registered_model": "r",
    "experiment": "e",
}


# ---------------------------------------------------------------- the renewal model: windows by term end


def terms_frame(accounts: int = 60, seed: int = 3) -> pd.DataFrame:
    """Weekly snapshots of accounts on annual terms; each term renews or not; terms ending after the export unknown."""
    rng = np.random.default_rng(seed)
    snaps = pd.date_range("2022-01-03", "2025-06-30", freq="7D")
    export = pd.Timestamp("2025-06-30")
    rows = []
    for i in range(accounts):
        end = pd.Timestamp("2022-01-01") + pd.Timedelta(days=int(rng.integers(1, 365)))
        for snap in snaps:
            while end < snap:
                end += pd.Timedelta(days=365)
            known = end + pd.Timedelta(days=30) <= export
            renews = rng.random() < 0.8
            rows.append((f"a{i:02d}", snap, end, renews, known))
    frame = pd.DataFrame(rows, columns=["account_id", "snapshot_date", "term_end", "renews", "known"])
    # one label per term, drawn once: the first draw of each (account, term) decides
    per_term = frame.groupby(["account_id", "term_end"])["renews"].transform("first")
    frame["renewal_label"] = pd.array(np.where(frame["known"], (~per_term).astype(int), pd.NA), dtype="Int8")
    frame["label"] = frame["renewal_label"]  # the 90-day label is not what this model reads
    return frame.drop(columns=["renews", "known"])


def test_the_renewal_split_keeps_every_term_in_one_window_and_its_windows_follow_term_ends():
    frame = terms_frame()
    p = TrainParams.model_validate(
        {**TRAIN, "windows": "auto", "window_weeks": {"test": 13, "valid": 13, "min_train": 26, "min_outcomes": 0}}
    )
    w = resolve_windows(frame, p, horizon_days=90, grace_days=30, target=RENEWAL)
    parts = split_out_of_time(frame, w, RENEWAL)
    seen: dict[tuple, str] = {}
    for name, part in parts.items():
        for key in part[["account_id", "term_end"]].drop_duplicates().itertuples(index=False):
            assert seen.setdefault(tuple(key), name) == name, f"term {tuple(key)} in {seen[tuple(key)]} and {name}"
    monday = lambda d: (d - pd.to_timedelta(d.dt.weekday, unit="D")).dt.date  # noqa: E731
    assert monday(parts["train"]["term_end"]).max() <= w.train_end < w.valid_start
    assert (
        w.valid_start <= monday(parts["valid"]["term_end"]).min()
        and monday(parts["valid"]["term_end"]).max() <= w.valid_end
    )
    assert monday(parts["test"]["term_end"]).min() >= w.test_start
    assert (w.valid_start - w.train_end).days >= 30 and (w.test_start - w.valid_end).days >= 30  # grace_days
    # every term of the test window has its label, and the latest one ended at least grace_days before the export
    assert parts["test"]["label"].notna().all()
    assert parts["test"]["term_end"].max() + pd.Timedelta(days=30) <= pd.Timestamp("2025-06-30")
    # snapshots far from the renewal are in the test window too: months ahead, not only the last 90 days
    ahead = (parts["test"]["term_end"] - parts["test"]["snapshot_date"]).dt.days
    assert ahead.max() > 300


def test_a_renewal_history_too_short_says_so_in_term_end_weeks():
    frame = terms_frame()
    p = TrainParams.model_validate(
        {**TRAIN, "windows": "auto", "window_weeks": {"test": 13, "valid": 13, "min_train": 500, "min_outcomes": 0}}
    )
    with pytest.raises(InputError, match=r"weeks of fully labelled term ends .* \(grace_days\) between them"):
        resolve_windows(frame, p, horizon_days=90, grace_days=30, target=RENEWAL)


def test_on_a_small_book_test_and_validation_reach_back_until_each_holds_enough_of_both_outcomes():
    frame = terms_frame(accounts=15, seed=5)
    sizes = {"test": 13, "valid": 13, "min_train": 26}
    plain = resolve_windows(
        frame, TrainParams.model_validate({**TRAIN, "windows": "auto", "window_weeks": {**sizes, "min_outcomes": 0}}),
        90, 30, RENEWAL,
    )  # fmt: skip
    p = TrainParams.model_validate({**TRAIN, "windows": "auto", "window_weeks": {**sizes, "min_outcomes": 4}})
    w = resolve_windows(frame, p, 90, 30, RENEWAL)
    parts = split_out_of_time(frame, w, RENEWAL)
    for name in ("valid", "test"):
        terms = parts[name].drop_duplicates(["account_id", "term_end"])
        assert (terms["label"] == 1).sum() >= 4 and (terms["label"] == 0).sum() >= 4, name
    assert w.test_start < plain.test_start  # reached back: 13 weeks of 15 accounts' term ends hold too few churns
    assert w.test_end == plain.test_end and (w.test_start - w.valid_end).days >= 30
