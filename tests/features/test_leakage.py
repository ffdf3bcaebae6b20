"""Point-in-time guarantees on random exports: who is in the grid and what its features are never
depend on the future (the export truncated at the snapshot gives the same rows and values); labels
match a brute force."""

import pandas as pd
from canonical_frames import feature_params, random_export, truncate, truncate_contracts
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from features.build import build_features
from features.export_date import export_last_date
from features.snapshots import LABEL_COLUMNS, build_grid, snapshot_dates

PARAMS = feature_params(first_snapshot="2024-02-05")
KEY = ["account_id", "snapshot_date"]
NO_FEATURE = list(LABEL_COLUMNS)


def features_at(tables: dict[str, pd.DataFrame], s: pd.Timestamp, like: pd.DataFrame | None = None) -> pd.DataFrame:
    """Features at ``s``; with ``like``, on its vocabulary of event types (as scoring uses the model's).

    Which event types get their own columns is read from the whole export: the truncated export
    is built on the full one's vocabulary, as a model scores with the vocabulary it learned.
    """
    vocabulary = like.attrs["vocabulary"] if like is not None else None
    frame, doc = build_features(tables, [s], PARAMS, vocabulary=vocabulary)
    out = frame.drop(columns=NO_FEATURE).set_index(KEY).sort_index()
    out.attrs["vocabulary"] = doc["vocabulary"]
    return out


def assert_same_features(full: pd.DataFrame, past: pd.DataFrame) -> None:
    """The same (account, snapshot) rows, and the same values in the columns both have (a table
    still empty at ``s`` drops its family)."""
    assert list(full.index) == list(past.index), (
        f"the grid depends on the future: only with the full export {sorted(set(full.index) - set(past.index))}, "
        f"only with the truncated one {sorted(set(past.index) - set(full.index))}"
    )
    columns = [c for c in full.columns if c in past.columns]
    assert len(full) > 0 and len(columns) >= len(past.columns)
    pd.testing.assert_frame_equal(full[columns], past[columns], check_exact=False, rtol=1e-9)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    week=st.integers(0, 60),
    after_an_end=st.one_of(st.none(), st.integers(-1, 12), st.integers(-1, 40)),
)
def test_features_ignore_everything_at_or_after_the_snapshot(seed, week, after_an_end):
    """Same accounts and same features on the export truncated at ``s``; ``s`` is a weekly snapshot, or
    a few days around a contract's end (where renewals booked later used to decide who was active)."""
    tables = random_export(n_accounts=6, seed=seed, days=480, usage_per_day=3)
    s = pd.Timestamp(PARAMS.first_snapshot) + pd.Timedelta(weeks=week)
    if after_an_end is not None:  # preferably the end of a term that was renewed (later, or after a gap)
        k = tables["contracts"].sort_values(["account_id", "start_date"])
        renewed = k["account_id"].eq(k["account_id"].shift(-1))
        ends = (k.loc[renewed, "end_date"] if renewed.any() else k["end_date"]).sort_values()
        s = ends.iloc[week % len(ends)] + pd.Timedelta(days=after_an_end)
    full = features_at(tables, s)
    assume(not full.empty)  # no account active at s: nothing to compare, so draw another example
    assert_same_features(full, features_at(truncate(tables, s), s, like=full))


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000), week=st.integers(0, 60), shift=st.integers(0, 400))
def test_no_feature_depends_on_contracts_starting_later(seed, week, shift):
    tables = random_export(n_accounts=6, seed=seed, days=480, usage_per_day=1)
    s = pd.Timestamp(PARAMS.first_snapshot) + pd.Timedelta(weeks=week)
    full = features_at(tables, s)
    assume(not full.empty)  # no account active at s: nothing to compare, so draw another example
    future = tables["contracts"].copy()
    future["contract_id"] = (future["contract_id"] + "-future").astype("string")
    future["start_date"] = s + pd.Timedelta(days=shift)
    future["end_date"] = future["start_date"] + pd.Timedelta(days=365)
    future["arr"] = 123.0
    future["seats"] = pd.array([1] * len(future), dtype="Int64")
    more = dict(tables, contracts=pd.concat([tables["contracts"], future], ignore_index=True))
    assert_same_features(full, features_at(more, s, like=full))


def brute_force_labels(contracts: pd.DataFrame, dates, horizon: int, grace: int, last: pd.Timestamp) -> dict:
    """The grid and its labels straight from the definitions, one contract and one snapshot at a time.

    Membership from what is known at ``s``: contracts started before ``s``, cancellations dated
    before ``s``; in the grid when a known term covers ``s``, or when ``s`` is within ``grace``
    after the latest known end and that end was not a cancellation. Labels from the spells: the
    row's churn date is the first churn ``d`` with ``s <= d + grace`` (before ``s`` when an
    overdue account did not renew). The current term ends at the latest effective end of the
    contracts started before ``s``; it renews (0) when the row's spell goes on past it.
    """
    out = {}
    g, h = pd.Timedelta(days=grace), pd.Timedelta(days=horizon)
    for account, rows in contracts.groupby("account_id"):
        contracts_of = [(r.start_date, r.end_date, r.cancel_date) for r in rows.itertuples()]
        terms = []
        for start, end_date, cancel in contracts_of:
            end = cancel if pd.notna(cancel) and cancel < end_date else end_date
            if end > start:
                terms.append((start, end))
        # a churn date: an effective end that no contract covers or follows within the grace period
        churns = sorted({e for _, e in terms if not any(s2 <= e + g and e2 > e for s2, e2 in terms)})
        for s in dates:
            known = []  # (start, end as known at s, ended by a cancellation known at s)
            for start, end_date, cancel in contracts_of:
                if not start < s:
                    continue
                cancelled = pd.notna(cancel) and cancel < s and cancel < end_date
                end = cancel if cancelled else end_date
                if end > start:
                    known.append((start, end, cancelled))
            if not known:
                continue
            covered = any(s1 < s <= e1 for s1, e1, _ in known)
            last_end = max(e1 for _, e1, _ in known)
            last_cancelled = any(c for _, e1, c in known if e1 == last_end)
            in_grace = last_end < s <= last_end + g and not last_cancelled
            if not (covered or in_grace):
                continue
            ahead = [d for d in churns if s <= d + g]
            term_end = max(e1 for s1, e1 in terms if s1 < s)
            spell_end = ahead[0]  # the last contract's end is always a churn date
            renewal = 0 if spell_end > term_end else 1 if spell_end + g <= last else None
            if spell_end < s + h and spell_end + g <= last:
                out[account, s] = (1, spell_end, term_end, renewal)
            elif s + h + g <= last:
                out[account, s] = (0, None, term_end, renewal)
            else:
                out[account, s] = (None, None, term_end, renewal)
    return out


def grid_rows(grid: pd.DataFrame) -> dict:
    return {
        (r.account_id, r.snapshot_date): (
            None if pd.isna(r.label) else int(r.label),
            None if pd.isna(r.churn_date) else r.churn_date,
            r.term_end,
            None if pd.isna(r.renewal_label) else int(r.renewal_label),
        )
        for r in grid.itertuples()
    }


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 100_000), grace=st.sampled_from([0, 15, 30, 60]), horizon=st.sampled_from([30, 90]))
def test_labels_match_a_brute_force_reference(seed, grace, horizon):
    tables = random_export(n_accounts=10, seed=seed, days=700, usage_per_day=0.1)
    last = export_last_date(tables)
    dates = snapshot_dates("2024-01-01", last, 7)
    grid = build_grid(tables["contracts"], dates, horizon, grace, last)
    assert grid_rows(grid) == brute_force_labels(tables["contracts"], dates, horizon, grace, last)


DAY0 = pd.Timestamp("2024-01-01")


@st.composite
def contract_books(draw) -> pd.DataFrame:
    """Contracts with what real books have and random_export lacks: overlaps and add-ons, renewals
    booked early or late, cancellations before the start, mid-term or after the end, ties."""
    rows = []
    for a in range(draw(st.integers(1, 4))):
        begin = draw(st.integers(0, 60))
        for k in range(draw(st.integers(1, 4))):
            length = draw(st.sampled_from([1, 30, 90, 180, 365]))
            cancel = draw(st.one_of(st.none(), st.integers(-10, length + 10)))
            rows.append(
                {
                    "contract_id": f"a{a}-k{k}",
                    "account_id": f"a{a}",
                    "start_date": DAY0 + pd.Timedelta(days=begin),
                    "end_date": DAY0 + pd.Timedelta(days=begin + length),
                    "status": "ended" if cancel is None else "cancelled",
                    "cancel_date": pd.NaT if cancel is None else DAY0 + pd.Timedelta(days=begin + cancel),
                }
            )
            begin += length + draw(st.sampled_from([-200, -30, -1, 0, 1, 10, 29, 30, 31, 45, 90]))
    frame = pd.DataFrame(rows)
    return pd.DataFrame(
        {
            "contract_id": frame["contract_id"].astype("string"),
            "account_id": frame["account_id"].astype("string"),
            "start_date": frame["start_date"].astype("datetime64[ns]"),
            "end_date": frame["end_date"].astype("datetime64[ns]"),
            "arr": pd.Series(1000.0, index=frame.index),
            "seats": pd.array([10] * len(frame), dtype="Int64"),
            "status": frame["status"].astype("string"),
            "cancel_date": frame["cancel_date"].astype("datetime64[ns]"),
        }
    )


def turning_points(contracts: pd.DataFrame, grace: int) -> list[pd.Timestamp]:
    """The days around which membership can change: starts, ends, cancellations and grace ends, and the day after."""
    days = set()
    for column in ("start_date", "end_date", "cancel_date"):
        for day in contracts[column].dropna():
            for shift in (0, 1, grace, grace + 1):
                days.add(day + pd.Timedelta(days=shift))
    return sorted(days)


def members(rows: dict) -> set:
    return set(rows)


@settings(max_examples=40, deadline=None)
@given(contracts=contract_books(), grace=st.sampled_from([0, 10, 30]), data=st.data())
def test_the_reference_grid_at_s_is_the_same_on_the_contracts_truncated_at_s(contracts, grace, data):
    """The brute-force membership reads the past only (and build_grid matches it, below) at turning points."""
    last = pd.Timestamp("2026-06-01")
    points = turning_points(contracts, grace)
    for s in data.draw(st.lists(st.sampled_from(points), min_size=1, max_size=12, unique=True)):
        full = brute_force_labels(contracts, [s], 90, grace, last)
        assert members(full) == members(brute_force_labels(truncate_contracts(contracts, s), [s], 90, grace, last))


@settings(max_examples=10, deadline=None)
@given(contracts=contract_books(), grace=st.sampled_from([0, 10, 30]), data=st.data())
def test_the_grid_at_s_is_the_same_on_the_contracts_truncated_at_s(contracts, grace, data):
    last = pd.Timestamp("2026-06-01")
    s = data.draw(st.sampled_from(turning_points(contracts, grace)))
    full = build_grid(contracts, pd.DatetimeIndex([s]), 90, grace, last)
    past = build_grid(truncate_contracts(contracts, s), pd.DatetimeIndex([s]), 90, grace, last)
    assert sorted(full["account_id"]) == sorted(past["account_id"])


@settings(max_examples=40, deadline=None)
@given(contracts=contract_books(), grace=st.sampled_from([0, 10, 30]), horizon=st.sampled_from([30, 90]))
def test_labels_of_overlapping_and_cancelled_contracts_match_the_brute_force(contracts, grace, horizon):
    last = pd.Timestamp("2025-06-01")
    dates = snapshot_dates(DAY0, "2025-12-31", 3)
    grid = build_grid(contracts, dates, horizon, grace, last)
    assert grid_rows(grid) == brute_force_labels(contracts, dates, horizon, grace, last)
