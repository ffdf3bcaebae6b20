"""Where an export's history starts, and the first snapshot of ``features.first_snapshot: auto``."""

import numpy as np
import pandas as pd
import pytest
from canonical_frames import contracts, feature_params, random_export

from features.build import LONGEST_WINDOW_DAYS, build_features
from features.errors import InputError
from features.export_date import export_last_date
from features.history import EVENT_TIME, bulk_start, first_snapshot_after, history_start


def days(first: str, last: str, per_day: float, seed: int = 0) -> pd.Series:
    """Poisson rows per day from ``first`` to ``last``."""
    index = pd.date_range(first, last, freq="D")
    return pd.Series(np.random.default_rng(seed).poisson(per_day, len(index)), index=index)


def test_each_event_table_is_dated_by_its_first_timestamp():
    assert EVENT_TIME == {
        "emails": "sent_at",
        "meetings": "start_at",
        "tickets": "created_at",
        "usage_events": "event_at",
        "surveys": "sent_at",
    }


def test_a_few_stray_rows_years_earlier_do_not_move_the_start():
    bulk = days("2024-04-01", "2026-11-20", 500)
    strays = pd.Series([3, 1, 19], index=pd.to_datetime(["2015-06-01", "2019-02-03", "2023-12-30"]))
    assert bulk_start(pd.concat([strays, bulk])) == pd.Timestamp("2024-04-01")


def test_a_small_table_and_a_quiet_holiday_month_start_where_the_data_starts():
    small = days("2022-01-01", "2024-06-30", 0.8, seed=1)  # about one survey a day, many days without any
    assert bulk_start(small) <= pd.Timestamp("2022-01-05")
    quiet = days("2022-01-01", "2024-06-30", 40)
    quiet[:14] = 2  # the first two weeks of January: a twentieth of the usual volume
    assert bulk_start(quiet) == pd.Timestamp("2022-01-01")


def test_a_table_that_ramps_up_starts_once_it_carries_a_quarter_of_its_usual_volume():
    ramp = pd.Series(np.r_[np.full(60, 2), np.full(600, 40)], index=pd.date_range("2023-01-01", periods=660))
    # usual volume 40 a day: the start is the first day whose next 28 days hold a quarter of 28 x 40 = 280 rows
    assert bulk_start(ramp) == pd.Timestamp("2023-02-08")  # 22 days x 2 + 6 days x 40 = 284


def test_a_table_too_bursty_to_date_and_an_empty_one_give_no_start():
    assert bulk_start(pd.Series([500], index=pd.to_datetime(["2024-05-01"]))) is None
    assert bulk_start(pd.Series([], dtype="int64", index=pd.DatetimeIndex([]))) is None


@pytest.mark.parametrize(
    ("start", "first"),
    [
        ("2024-04-01", "2024-08-05"),  # the demo: 2024-07-30 is a Tuesday, the next Monday
        ("2022-01-01", "2022-05-02"),  # 2022-05-01 is a Sunday
        ("2024-04-03", "2024-08-05"),  # 2024-08-01 is a Thursday
    ],
)
def test_the_first_snapshot_is_the_first_monday_a_full_look_back_into_the_history(start, first):
    assert LONGEST_WINDOW_DAYS == 120
    day = first_snapshot_after(pd.Timestamp(start), LONGEST_WINDOW_DAYS, weekday=0)
    assert day == pd.Timestamp(first) and day.day_of_week == 0
    assert (day - pd.Timestamp(start)).days >= LONGEST_WINDOW_DAYS


def test_history_starts_when_the_last_event_table_starts_and_old_contracts_do_not_count():
    export = random_export(n_accounts=30, seed=4, start="2024-01-01", days=400, usage_per_day=20.0)
    emails = export["emails"]
    late = emails["sent_at"] >= pd.Timestamp("2024-03-01", tz="UTC")
    export["emails"] = emails[late].reset_index(drop=True)  # e-mails captured two months later than the rest
    old = contracts({"account_id": "a00000", "start_date": "2016-05-01", "end_date": "2017-04-30"})
    export["contracts"] = pd.concat([old, export["contracts"]], ignore_index=True)
    start = history_start(export)
    assert start.source == "emails"
    assert pd.Timestamp("2024-03-01") <= start.day <= pd.Timestamp("2024-03-08")
    assert set(start.by_table) == set(EVENT_TIME)
    assert all(pd.Timestamp(day) <= start.day for day in start.by_table.values())


def test_without_event_tables_the_contract_starts_date_the_history():
    export = random_export(n_accounts=30, seed=4, start="2024-01-01", days=400)
    start = history_start({"accounts": export["accounts"], "contracts": export["contracts"]})
    assert start.source == "contracts" and start.by_table == {}
    assert pd.Timestamp("2024-01-01") <= start.day <= pd.Timestamp("2024-02-15")


@pytest.mark.parametrize("days_of_history", [300, 301, 304])
def test_features_with_auto_start_on_the_scoring_days_weekday_and_the_catalogue_says_why(days_of_history):
    """Snapshots fall on the weekday the list is scored (the day after the export date), whatever it is."""
    export = random_export(n_accounts=5, seed=3, start="2024-01-03", days=days_of_history)
    frame, doc = build_features(export, None, feature_params(first_snapshot="auto"))
    start = history_start(export).day
    scoring_day = export_last_date(export) + pd.Timedelta(days=1)
    first = frame["snapshot_date"].min()
    assert first == first_snapshot_after(start, 120, scoring_day.day_of_week)
    assert (frame["snapshot_date"].dt.day_of_week == scoring_day.day_of_week).all()
    assert (first - start).days >= 120 and (first - start).days < 127
    assert doc["snapshots"]["first_snapshot_choice"]["weekday"] == scoring_day.day_name()
    choice = doc["snapshots"]["first_snapshot_choice"]
    assert choice["rule"] == "auto" and choice["lookback_days"] == 120
    assert choice["history"]["start"] == start.date().isoformat()
    assert doc["snapshots"]["first_snapshot"] == first.date().isoformat()


def test_an_export_shorter_than_the_look_back_is_one_clear_error():
    export = random_export(n_accounts=5, seed=3, start="2024-01-03", days=60)
    shorter = r"^features\.first_snapshot [-0-9]+ is after the export's last date [-0-9]+: the history is shorter"
    with pytest.raises(InputError, match=shorter):
        build_features(export, None, feature_params(first_snapshot="auto"))
