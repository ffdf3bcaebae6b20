"""Point-in-time guarantees on random exports: features never see the future, labels match a brute force."""

import pandas as pd
from canonical_frames import feature_params, random_export
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from features.build import build_features
from features.export_date import export_last_date
from features.snapshots import build_grid, snapshot_dates

PARAMS = feature_params(first_snapshot="2024-02-05")
KEY = ["account_id", "snapshot_date"]
NO_FEATURE = ["label", "churn_date"]


def truncate(tables: dict[str, pd.DataFrame], s: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The export as it looked at ``s`` 00:00 UTC: later rows gone, later updates undone."""
    su = s.tz_localize("UTC")
    t = {k: v.copy() for k, v in tables.items()}
    t["emails"] = t["emails"][t["emails"]["sent_at"] < su]
    t["meetings"] = t["meetings"][t["meetings"]["start_at"] < su]
    t["usage_events"] = t["usage_events"][t["usage_events"]["event_at"] < su]
    tk = t["tickets"][t["tickets"]["created_at"] < su].copy()
    tk["first_response_at"] = tk["first_response_at"].where(tk["first_response_at"] < su)
    tk["closed_at"] = tk["closed_at"].where(tk["closed_at"] < su)
    tk["csat"] = tk["csat"].where(tk["closed_at"].notna())
    t["tickets"] = tk
    sv = t["surveys"][t["surveys"]["sent_at"] < su].copy()
    answered = sv["responded_at"] < su
    sv["responded_at"] = sv["responded_at"].where(answered)
    sv["score"] = sv["score"].where(answered)
    t["surveys"] = sv
    k = t["contracts"][t["contracts"]["start_date"] < s].copy()
    later_cancel = k["cancel_date"] >= s
    k["cancel_date"] = k["cancel_date"].where(~later_cancel)
    k.loc[later_cancel, "status"] = "active"
    t["contracts"] = k
    return t


def features_at(tables: dict[str, pd.DataFrame], s: pd.Timestamp) -> pd.DataFrame:
    frame, _ = build_features(tables, [s], PARAMS)
    return frame.drop(columns=NO_FEATURE).set_index(KEY).sort_index()


def assert_same_features(full: pd.DataFrame, past: pd.DataFrame) -> None:
    """Same values on the rows and columns both have (a table still empty at ``s`` drops its family)."""
    common = full.index.intersection(past.index)
    columns = [c for c in full.columns if c in past.columns]
    assert len(common) > 0 and len(columns) >= len(past.columns)
    pd.testing.assert_frame_equal(full.loc[common, columns], past.loc[common, columns], check_exact=False, rtol=1e-9)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), week=st.integers(0, 60))
def test_features_ignore_everything_at_or_after_the_snapshot(seed, week):
    tables = random_export(n_accounts=6, seed=seed, days=480, usage_per_day=3)
    s = pd.Timestamp(PARAMS.first_snapshot) + pd.Timedelta(weeks=week)
    full = features_at(tables, s)
    assume(not full.empty)  # no account active at s: nothing to compare, so draw another example
    assert_same_features(full, features_at(truncate(tables, s), s))


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
    assert_same_features(full, features_at(more, s))


def brute_force_labels(contracts: pd.DataFrame, dates, horizon: int, grace: int, last: pd.Timestamp) -> dict:
    """Labels straight from the definition, one contract and one snapshot at a time."""
    out = {}
    g, h = pd.Timedelta(days=grace), pd.Timedelta(days=horizon)
    for account, rows in contracts.groupby("account_id"):
        terms = []
        for r in rows.itertuples():
            end = r.cancel_date if pd.notna(r.cancel_date) and r.cancel_date < r.end_date else r.end_date
            if end > r.start_date:
                terms.append((r.start_date, end))
        # a churn date: an effective end that no contract covers or follows within the grace period
        churns = sorted({e for _, e in terms if not any(s2 <= e + g and e2 > e for s2, e2 in terms)})
        for s in dates:
            covered = any(s1 < s <= e1 for s1, e1 in terms)
            in_grace = any(e1 < s <= s2 <= e1 + g for _, e1 in terms for s2, _ in terms)
            if not (covered or in_grace):
                continue
            hit = [d for d in churns if s <= d < s + h and d + g <= last]
            if hit:
                out[account, s] = (1, hit[0])
            elif s + h + g <= last:
                out[account, s] = (0, None)
            else:
                out[account, s] = (None, None)
    return out


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 100_000), grace=st.sampled_from([0, 15, 30, 60]), horizon=st.sampled_from([30, 90]))
def test_labels_match_a_brute_force_reference(seed, grace, horizon):
    tables = random_export(n_accounts=10, seed=seed, days=700, usage_per_day=0.1)
    last = export_last_date(tables)
    dates = snapshot_dates("2024-01-01", last, 7)
    grid = build_grid(tables["contracts"], dates, horizon, grace, last)
    got = {
        (r.account_id, r.snapshot_date): (
            None if pd.isna(r.label) else int(r.label),
            None if pd.isna(r.churn_date) else r.churn_date,
        )
        for r in grid.itertuples()
    }
    assert got == brute_force_labels(tables["contracts"], dates, horizon, grace, last)
