"""The export date from the bulk of the data: weekends, holidays, quiet last days and stray future rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from canonical_frames import accounts, contracts, emails, feature_params, random_export

from features.build import build_features
from features.export_date import export_last_date, infer, infer_from_tables
from models.scoring import default_as_of

END = dt.date(2025, 6, 27)  # a Friday


def book(end: dt.date = END, days: int = 730, weekday: int = 100, weekend: int = 8, **by_day: int) -> pd.Series:
    """Rows per day of a business book: busy weekdays, quiet weekends; ``by_day`` overrides single days."""
    index = pd.date_range(end=pd.Timestamp(end), periods=days, freq="D")
    rows = np.where(index.day_of_week < 5, weekday, weekend)
    counts = pd.Series(rows, index=index, dtype="int64")
    for day, n in by_day.items():
        counts[pd.Timestamp(day.removeprefix("d"))] = n
    return counts[counts > 0]


def strays(*days: str, rows: int = 1) -> pd.Series:
    return pd.Series(rows, index=pd.DatetimeIndex(days), dtype="int64")


def with_rows(counts: pd.Series, more: pd.Series) -> pd.Series:
    return pd.concat([counts, more]).groupby(level=0).sum()


def test_an_export_ends_on_its_last_day():
    decided = infer({"emails": book(), "usage_events": book(weekday=900, weekend=300)})
    assert decided.date == END
    assert decided.reason.endswith("no row dated later")


def test_rows_typed_into_next_year_do_not_move_it():
    typos = strays(*pd.date_range("2026-01-05", periods=19, freq="9D").strftime("%Y-%m-%d"))
    decided = infer({"emails": with_rows(book(), typos), "usage_events": book(weekday=900)})
    assert decided.date == END
    assert "19 later row(s), from 2026-01-05 to 2026-06-16 on 19 days, too few to be data" in decided.reason
    assert decided.details["latest_row_by_table"] == {"emails": "2026-06-16", "usage_events": str(END)}


def test_a_small_book_with_a_handful_of_typos_spread_over_a_year():
    typos = strays(*pd.date_range("2026-01-03", periods=19, freq="13D").strftime("%Y-%m-%d"))
    assert infer({"emails": with_rows(book(weekday=6, weekend=0), typos)}).date == END


def test_a_stray_row_days_after_the_end_and_one_in_1970_do_not_count():
    counts = with_rows(book(), strays("1970-01-01", "2025-07-09", "2025-07-10"))
    assert infer({"emails": counts}).date == END


@pytest.mark.parametrize("weekend", [8, 0])
def test_an_export_taken_on_a_sunday_or_on_a_quiet_monday_morning(weekend):
    sunday = END + dt.timedelta(days=2)
    assert infer({"emails": book(sunday, weekend=weekend or 1)}).date == sunday
    monday = END + dt.timedelta(days=3)  # weekends without a row, and 3 e-mails before the export on Monday
    assert infer({"emails": book(monday, weekend=weekend, **{f"d{monday}": 3})}).date == monday


def test_a_quiet_partial_last_day_stays_in_the_export():
    assert infer({"emails": book(**{f"d{END}": 2})}).date == END


def test_an_export_ending_in_the_christmas_holidays():
    end = dt.date(2024, 12, 31)
    quiet = {f"d{d.date()}": 5 for d in pd.date_range("2024-12-20", end)}
    assert infer({"emails": book(end, **quiet)}).date == end


def test_data_that_resumes_after_an_outage_is_data():
    gap = {f"d{d.date()}": 0 for d in pd.date_range(END - dt.timedelta(days=30), END - dt.timedelta(days=20))}
    assert infer({"emails": book(**gap)}).date == END


def test_an_export_ending_today_ends_today():
    today = dt.datetime.now(dt.UTC).date()
    assert infer({"emails": book(today), "meetings": book(today, weekday=3, weekend=0)}).date == today


def test_without_event_rows_signups_and_contract_starts_stand_in():
    assert infer({"emails": pd.Series(dtype="int64")}, {"contracts": strays("2025-01-01", "2025-02-03")}).date == (
        dt.date(2025, 2, 3)
    )
    with pytest.raises(ValueError, match="no dated rows"):
        infer({}, {})


def test_planned_contract_ends_never_count():
    tables = {
        "accounts": accounts({"account_id": "A"}),
        "contracts": contracts({"account_id": "A", "start_date": "2025-01-01", "end_date": "2027-12-31"}),
        "emails": emails(("A", "t", "2025-08-14 23:59", "inbound")),
    }
    assert export_last_date(tables) == pd.Timestamp("2025-08-14")


def _plant(tables: dict[str, pd.DataFrame], days_later: int) -> dict[str, pd.DataFrame]:
    """A few recent e-mails and usage events typed a year too late (existing accounts, threads and users)."""
    planted = dict(tables)
    for name, column, n in (("emails", "sent_at", 5), ("usage_events", "event_at", 12)):
        frame = tables[name]
        recent = frame[frame[column] > frame[column].max() - pd.Timedelta(days=60)]
        extra = recent.sample(n, random_state=1).copy()
        extra[column] = extra[column] + pd.Timedelta(days=days_later)
        if name == "emails":
            extra["email_id"] = ("late-" + extra["email_id"]).astype("string")
        planted[name] = pd.concat([frame, extra], ignore_index=True)
    return planted


def test_rows_planted_a_year_in_the_future_change_no_feature_label_or_as_of():
    params = feature_params(first_snapshot="2024-03-04")
    clean = random_export(n_accounts=30, seed=3, days=500, usage_per_day=3.0)
    planted = _plant(clean, 365)
    assert max(planted["emails"]["sent_at"]) > max(clean["emails"]["sent_at"]) + pd.Timedelta(days=300)

    before, planted_after = infer_from_tables(clean), infer_from_tables(planted)
    assert planted_after.date == before.date and planted_after.details["rows_after"] == 17
    assert default_as_of(planted_after.date) == default_as_of(before.date) == before.date + dt.timedelta(days=1)

    frame, catalog = build_features(clean, None, params)
    frame_planted, catalog_planted = build_features(planted, None, params)
    assert catalog_planted["snapshots"] == catalog["snapshots"]
    assert catalog["snapshots"]["last_snapshot"] <= before.date.isoformat()
    pd.testing.assert_frame_equal(frame_planted, frame)
    assert frame["label"].notna().any() and (frame["label"] == 1).any()
