"""Freshness and weekly volume of the event tables: what stops the weekly list, and what only warns."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.export_date import infer_from_tables
from features.freshness import (
    InputHealth,
    check_week,
    input_health,
    last_complete_week,
    table_freshness,
    volume_checks,
    weekly_volumes,
)
from tests.features.canonical_frames import feature_params, random_export

LAGS = {name: 7 for name in ("emails", "meetings", "tickets", "usage_events", "surveys")}


@pytest.fixture(scope="module")
def export() -> dict[str, pd.DataFrame]:
    return random_export(n_accounts=40, seed=11, start="2024-01-01", days=420, usage_per_day=30.0)


def cut(table: pd.DataFrame, column: str, before: dt.date) -> pd.DataFrame:
    return table[table[column] < pd.Timestamp(before, tz="UTC")].reset_index(drop=True)


def test_a_table_cut_21_days_early_lags_by_21_days_and_is_the_only_stale_one(export):
    end = infer_from_tables(export).date
    tables = {**export, "usage_events": cut(export["usage_events"], "event_at", end - dt.timedelta(days=20))}
    freshness = table_freshness(tables, infer_from_tables(tables).date)
    assert infer_from_tables(tables).date == end  # the other tables still say where the export ends
    assert freshness["usage_events"].lag_days == 21
    assert freshness["usage_events"].last_date == end - dt.timedelta(days=21)
    health = InputHealth(end, freshness, [], LAGS, ())
    assert set(health.stale) == {"usage_events"}
    line = health.blocking()["usage_events"]
    assert str(end - dt.timedelta(days=21)) in line and "21 days before" in line


def test_a_table_quiet_between_campaigns_is_not_stale_for_a_usual_silence():
    days = pd.date_range("2024-01-01", "2025-06-30", freq="D")
    campaign = days[(days.day <= 3) & (days.month % 3 == 1)]  # three days a quarter
    counts = {"surveys": pd.Series(40, index=campaign), "emails": pd.Series(50, index=days)}
    tables = {
        name: pd.DataFrame(
            {
                "account_id": pd.Series(["a"] * int(c.sum()), dtype="string"),
                {"surveys": "sent_at", "emails": "sent_at"}[name]: pd.Series(
                    np.repeat(c.index.to_numpy(), c.to_numpy())
                ).dt.tz_localize("UTC"),
            }
        )
        for name, c in counts.items()
    }
    freshness = table_freshness(tables, dt.date(2025, 6, 30))
    assert freshness["surveys"].lag_days > 80  # the last campaign was in April
    assert freshness["surveys"].usual_silence_days >= freshness["surveys"].lag_days
    assert InputHealth(dt.date(2025, 6, 30), freshness, [], LAGS, ()).stale == {}


@pytest.mark.parametrize(
    ("export_date", "monday"),
    [
        ("2026-11-20", "2026-11-09"),
        ("2026-11-15", "2026-11-09"),
        ("2026-11-16", "2026-11-09"),
        ("2026-11-22", "2026-11-16"),
    ],
)
def test_the_last_complete_week_ends_on_the_last_sunday_on_or_before_the_export_date(export_date, monday):
    assert last_complete_week(dt.date.fromisoformat(export_date)) == dt.date.fromisoformat(monday)


def weeks(values: list[int], last: str = "2026-11-09") -> pd.Series:
    return pd.Series(values, index=pd.date_range(end=last, periods=len(values), freq="7D"))


@pytest.mark.parametrize(("last", "status"), [(100, "ok"), (60, "ok"), (40, "low"), (0, "empty")])
def test_the_last_week_is_judged_against_the_trailing_median(last, status):
    series = weeks([100, 90, 110, 100, 95, 105, 100, 100, last])
    expected, median, factor, got = check_week(series, dt.date(2026, 11, 9), 8, 0.5, 10)
    assert got == status and median == 100 and factor is None and expected == 100


def test_a_small_table_is_never_judged_an_empty_week_is_not_an_alarm():
    series = weeks([3, 0, 5, 2, 4, 1, 3, 2, 0])
    assert check_week(series, dt.date(2026, 11, 9), 8, 0.5, 10)[3] == "quiet"


def test_a_holiday_week_as_low_as_last_years_is_no_alarm_without_that_history_it_is():
    usual, holiday = [100] * 60, 20
    series = weeks([*usual[:8], holiday, *usual[:51], holiday])  # the same week 52 weeks earlier was as low
    assert check_week(series, dt.date(2026, 11, 9), 8, 0.5, 10)[2:] == (pytest.approx(0.2), "ok")
    short = weeks([*usual[:8], holiday])
    assert check_week(short, dt.date(2026, 11, 9), 8, 0.5, 10)[3] == "low"


def test_weeks_without_rows_count_as_zero_in_the_level():
    series = weeks([100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 0]).iloc[:-1]  # no row in the last week
    series = series[series.index != pd.Timestamp("2026-10-26")]  # and one empty week in the trailing ones
    expected, median, _, status = check_week(series, dt.date(2026, 11, 9), 8, 0.5, 10)
    assert status == "empty" and median == 100


def test_weekly_volumes_count_rows_per_table_segment_and_monday(export):
    end = infer_from_tables(export).date
    volumes = weekly_volumes(export, end)
    assert set(volumes["table"]) == {"emails", "meetings", "tickets", "usage_events", "surveys"}
    assert (volumes["week"].dt.day_of_week == 0).all()
    assert volumes["week"].max().date() == last_complete_week(end)
    emails = export["emails"]
    monday = pd.Timestamp(last_complete_week(end), tz="UTC")
    in_week = emails[(emails["sent_at"] >= monday) & (emails["sent_at"] < monday + pd.Timedelta(days=7))]
    got = volumes[(volumes["table"] == "emails") & (volumes["week"] == monday.tz_localize(None))]["rows"].sum()
    assert got == len(in_week) > 0
    segments = export["accounts"].set_index("account_id")["segment"]
    smb = in_week["account_id"].map(segments).eq("SMB").sum()
    row = volumes[
        (volumes["table"] == "emails") & (volumes["segment"] == "SMB") & (volumes["week"] == monday.tz_localize(None))
    ]
    assert int(row["rows"].sum()) == smb


def test_one_segment_losing_its_rows_is_a_warning_not_a_stop(export):
    end = infer_from_tables(export).date
    monday = pd.Timestamp(last_complete_week(end), tz="UTC")
    usage = export["usage_events"]
    enterprise = usage["account_id"].map(export["accounts"].set_index("account_id")["segment"]).eq("Enterprise")
    in_week = (usage["event_at"] >= monday) & (usage["event_at"] < monday + pd.Timedelta(days=7))
    tables = {**export, "usage_events": usage[~(enterprise & in_week)].reset_index(drop=True)}
    health = input_health(tables, end, LAGS, (), 8, 0.5, 10)
    assert health.blocking() == {}
    assert any("usage_events (segment Enterprise)" in w and "no row at all" in w for w in health.warnings())
    assert not any("segment SMB" in w for w in health.warnings())


def test_a_table_without_rows_in_the_last_week_stops_unless_allowed(export):
    end = infer_from_tables(export).date
    monday = pd.Timestamp(last_complete_week(end), tz="UTC")
    emails = export["emails"]
    gap = (emails["sent_at"] >= monday) & (emails["sent_at"] < monday + pd.Timedelta(days=7))
    tables = {**export, "emails": emails[~gap].reset_index(drop=True)}
    health = input_health(tables, end, LAGS, (), 8, 0.5, 10)
    assert health.freshness["emails"].lag_days <= 7  # rows after the gap: fresh, yet the week is empty
    assert set(health.blocking()) == {"emails"} and "no row at all" in health.blocking()["emails"]
    allowed = input_health(tables, end, LAGS, ("emails",), 8, 0.5, 10)
    assert allowed.blocking() == {} and allowed.shift_days() == {}
    assert "read the missing rows as no activity" in allowed.notes()[0]
    assert not any(w.startswith("emails") for w in allowed.warnings())


def test_a_stale_table_allowed_is_read_as_of_its_last_row_never_as_customers_going_quiet(export):
    end = infer_from_tables(export).date
    stop = end - dt.timedelta(days=20)
    tables = {**export, "usage_events": cut(export["usage_events"], "event_at", stop)}
    health = input_health(tables, end, LAGS, ("usage_events",), 8, 0.5, 10)
    assert health.shift_days() == {"usage_events": 21}
    assert "its features as of" in health.notes()[0]
    as_of, last_row = end + dt.timedelta(days=1), stop
    p = feature_params()
    shifted, _ = build_features(tables, [as_of], p, export_end=end, shift_days=health.shift_days())
    at_last_row, _ = build_features(tables, [last_row], p, export_end=end)
    unshifted, doc = build_features(tables, [as_of], p, export_end=end)
    usage_columns = [f["name"] for f in doc["features"] if f["family"] in ("adoption", "usage")]
    other = [f["name"] for f in doc["features"] if f["family"] in ("responsiveness", "support", "voice")]
    both = shifted.merge(at_last_row, on="account_id", suffixes=("", "_then"))
    assert len(both) > 0
    for column in usage_columns:
        pd.testing.assert_series_equal(both[column], both[f"{column}_then"], check_names=False)
    for column in other:  # the fresh tables are read up to the as-of date
        pd.testing.assert_series_equal(shifted[column], unshifted[column])
    # unguarded, 21 of the last 30 days read as no use at all
    active = unshifted["usage_active_days_30d"].fillna(0).mean(), shifted["usage_active_days_30d"].fillna(0).mean()
    assert active[0] < 0.5 * active[1]


def test_volume_checks_judge_the_table_and_each_segment():
    rows = []
    for segment, level in (("SMB", 100), ("Enterprise", 50)):
        for i, week in enumerate(pd.date_range(end="2026-11-09", periods=9, freq="7D")):
            rows.append(
                {
                    "table": "emails",
                    "segment": segment,
                    "week": week,
                    "rows": 5 if i == 8 and segment == "SMB" else level,
                }
            )
    checks = volume_checks(pd.DataFrame(rows), dt.date(2026, 11, 9), 8, 0.5, 10)
    by = {(c.table, c.segment): c for c in checks}
    assert by[("emails", None)].rows == 55 and by[("emails", None)].status == "low"
    assert by[("emails", "SMB")].status == "low" and by[("emails", "Enterprise")].status == "ok"
