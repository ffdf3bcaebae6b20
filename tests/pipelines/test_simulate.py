"""The demo CRM simulator: contract-valid, reproducible, and churn caused by its mechanisms.

Mechanism tests read only the export and the ground truth, the way the model will: if a
driver's signal is not visible in the files, these tests fail.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import InputError
from features.schemas import SCHEMAS, TABLES
from pipelines import demo_data
from pipelines.demo import simulate as sim

START, END = dt.date(2024, 4, 1), dt.date(2026, 11, 20)


# ---------------------------------------------------------------- helpers


def load_export(folder: Path, files: dict[str, str] = sim.EXPORT_FILES) -> dict[str, pd.DataFrame]:
    """Every canonical table of ``files`` (name to file), parsed the way ingest would: UTC timestamps, plain dates."""
    frames = {}
    for name, file in files.items():
        path = folder / file
        frame = (
            pd.read_parquet(path)
            if file.endswith(".parquet")
            else pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        )
        for col in TABLES[name].columns:
            if col.dtype == "timestamp":
                frame[col.name] = pd.to_datetime(frame[col.name], utc=True, format="ISO8601")
            elif col.dtype == "date":
                frame[col.name] = pd.to_datetime(frame[col.name], format="%Y-%m-%d")
            elif col.dtype in ("float", "int"):
                frame[col.name] = pd.to_numeric(frame[col.name])
            elif col.dtype == "bool":
                frame[col.name] = frame[col.name].map({"true": True, "false": False})
        frames[name] = frame
    return frames


def load_truth(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    accounts = pd.read_csv(
        folder / "accounts_truth.csv", parse_dates=["churn_date"], keep_default_na=False, na_values={"churn_date": [""]}
    )
    terms = pd.read_csv(
        folder / "terms_truth.csv",
        parse_dates=["start_date", "end_date"],
        keep_default_na=False,
        na_values={"churned_at_end": [""]},
    )
    return accounts, terms


def reply_hours(emails: pd.DataFrame) -> pd.DataFrame:
    """Each inbound e-mail with the hours until our next outbound message in its thread (inf: none)."""
    emails = emails.sort_values("sent_at")
    inbound = emails[emails.direction == "inbound"]
    outbound = emails[emails.direction == "outbound"][["thread_id", "sent_at"]].rename(
        columns={"sent_at": "replied_at"}
    )
    merged = pd.merge_asof(
        inbound,
        outbound,
        left_on="sent_at",
        right_on="replied_at",
        by="thread_id",
        direction="forward",
        allow_exact_matches=False,
    )
    merged["hours"] = ((merged.replied_at - merged.sent_at).dt.total_seconds() / 3600).fillna(np.inf)
    return merged


def at_decision(accounts_truth: pd.DataFrame, terms_truth: pd.DataFrame, dominant: str | None) -> pd.DataFrame:
    """(account_id, date): churn dates of churners with this dominant driver, and renewal dates
    of driver-free terms that renewed, as the retained comparison."""
    churned = accounts_truth[(accounts_truth.churned == 1) & (accounts_truth.dominant_driver == dominant)]
    retained = terms_truth[
        (terms_truth.churned_at_end == 0)
        & (terms_truth.drivers == "")
        & (terms_truth.end_date >= pd.Timestamp(START) + pd.Timedelta(days=180))
    ]
    return pd.concat(
        [
            pd.DataFrame({"account_id": churned.account_id, "date": churned.churn_date, "churned": 1}),
            pd.DataFrame({"account_id": retained.account_id, "date": retained.end_date, "churned": 0}),
        ],
        ignore_index=True,
    )


def events_before(
    events: pd.DataFrame, time_col: str, decisions: pd.DataFrame, lo_days: int, hi_days: int = 0
) -> pd.DataFrame:
    """Events of each decision's account in [date - lo_days, date - hi_days)."""
    joined = decisions.reset_index(names="decision").merge(events, on="account_id")
    ts = joined[time_col].dt.tz_convert(None) if joined[time_col].dt.tz is not None else joined[time_col]
    inside = (ts >= joined.date - pd.Timedelta(days=lo_days)) & (ts < joined.date - pd.Timedelta(days=hi_days))
    return joined[inside]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """150 accounts in three chunks: enough for contract and reproducibility checks."""
    root = tmp_path_factory.mktemp("small")
    sim.simulate(150, 11, START, END, root / "out", root / "truth", chunk_size=60)
    return root


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> dict:
    """1,500 accounts: enough churners per driver for the mechanism tests (about 3 s)."""
    root = tmp_path_factory.mktemp("book")
    summary = sim.simulate(1500, 3, START, END, root / "out", root / "truth")
    accounts_truth, terms_truth = load_truth(root / "truth")
    return {"export": load_export(root / "out"), "truth": accounts_truth, "terms": terms_truth, "summary": summary}


# ---------------------------------------------------------------- contract and reproducibility


def test_same_seed_gives_byte_identical_files(small, tmp_path):
    sim.simulate(150, 11, START, END, tmp_path / "out", tmp_path / "truth", chunk_size=60)
    files = [f"out/{f}" for f in sim.EXPORT_FILES.values()] + [f"truth/{f}" for f in sim.TRUTH_FILES.values()]
    for rel in files + ["truth/simulation.json"]:
        assert (small / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_a_different_seed_gives_different_data(small, tmp_path):
    sim.simulate(150, 12, START, END, tmp_path / "out", tmp_path / "truth", chunk_size=60)
    for file in sim.EXPORT_FILES.values():
        assert (small / "out" / file).read_bytes() != (tmp_path / "out" / file).read_bytes(), file


def test_every_table_validates_against_the_canonical_contract(small):
    export = load_export(small / "out")
    for name, frame in export.items():
        assert list(frame.columns) == TABLES[name].column_names, name
        assert len(frame) > 0, name
        SCHEMAS[name].validate(frame)


def test_timestamps_are_utc_with_z_and_inside_the_period(small):
    export = load_export(small / "out")
    raw = pd.read_csv(small / "out" / "emails.csv.gz", dtype=str)
    assert raw.sent_at.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    lo, hi = pd.Timestamp(START, tz="UTC"), pd.Timestamp(END, tz="UTC") + pd.Timedelta(days=1)
    for name, col in [
        ("emails", "sent_at"),
        ("meetings", "start_at"),
        ("tickets", "created_at"),
        ("tickets", "closed_at"),
        ("surveys", "responded_at"),
        ("usage_events", "event_at"),
    ]:
        values = export[name][col].dropna()
        assert values.min() >= lo and values.max() < hi, (name, col)


def test_ids_stay_unique_across_chunks_and_events_belong_to_known_accounts(small):
    export = load_export(small / "out")
    known = set(export["accounts"].account_id)
    assert len(known) == 150
    for name in ("contracts", "emails", "meetings", "tickets", "surveys", "usage_events"):
        assert set(export[name].account_id) <= known, name
    # one row per (user, feature, week), weeks counted in the account's local time
    usage = export["usage_events"].merge(export["accounts"][["account_id", "timezone"]], on="account_id")
    local = pd.concat([g.event_at.dt.tz_convert(tz).dt.tz_localize(None) for tz, g in usage.groupby("timezone")])
    usage["week"] = (local.reindex(usage.index) - pd.Timestamp(START)).dt.days // 7
    assert not usage.duplicated(["user_id", "feature", "week"]).any()


def test_contracts_renew_the_day_after_the_previous_term_ends(small):
    contracts = load_export(small / "out")["contracts"].sort_values(["account_id", "start_date"])
    nxt = contracts.groupby("account_id").start_date.shift(-1)
    has_next = nxt.notna()
    assert (nxt[has_next] == contracts.end_date[has_next] + pd.Timedelta(days=1)).all()
    # end_date is the last day of a 12- or 24-month term
    term = contracts.end_date + pd.Timedelta(days=1)
    months = (term.dt.year - contracts.start_date.dt.year) * 12 + term.dt.month - contracts.start_date.dt.month
    assert set(months) <= {12, 24}
    assert (contracts.start_date < pd.Timestamp(START)).any(), "older customers bring renewal history"
    assert (
        contracts[contracts.status == "cancelled"].cancel_date < contracts[contracts.status == "cancelled"].end_date
    ).all()


def test_simulation_json_reports_sizes_and_churn(small):
    summary = json.loads((small / "truth" / "simulation.json").read_text())
    assert summary["seed"] == 11 and summary["accounts"] == 150
    export = load_export(small / "out")
    assert summary["rows"] == {name: len(frame) for name, frame in export.items()}


def test_business_hours_skip_nights_and_weekends():
    cal = sim.build_calendar(START, END)  # 2024-04-01 is a Monday
    friday_5pm = np.array([4 * sim.DAY + 17 * sim.HOUR], dtype=np.float64)
    monday_10am = 7 * sim.DAY + 10 * sim.HOUR
    assert sim._add_business_hours(friday_5pm, np.array([2.0]), cal)[0] == monday_10am
    saturday = np.array([5 * sim.DAY + 11 * sim.HOUR], dtype=np.float64)
    assert sim._next_business_moment(saturday, cal)[0] == 7 * sim.DAY + 9 * sim.HOUR
    assert (
        sim._add_business_hours(np.array([9 * sim.HOUR], dtype=np.float64), np.array([18.0]), cal)[0]
        == sim.DAY + 18 * sim.HOUR
    )


# ---------------------------------------------------------------- churn and mechanisms


def test_annual_churn_rate_is_in_the_documented_band(book):
    assert 0.12 <= book["summary"]["annual_churn_rate"] <= 0.20
    truth = book["truth"]
    churned = truth[truth.churned == 1]
    assert set(churned.dominant_driver) <= set(sim.DRIVER_NAMES) | {"renewal"}
    # the dominant driver is one of the account's active drivers; "renewal" only when none was
    with_driver = churned[churned.dominant_driver != "renewal"]
    assert all(d in a.split(";") for d, a in zip(with_driver.dominant_driver, with_driver.active_drivers, strict=True))
    assert (churned[churned.dominant_driver == "renewal"].active_drivers.fillna("") == "").all()
    mix = churned.dominant_driver.value_counts(normalize=True)
    assert mix.max() < 0.5 and mix.get("renewal", 0) < 0.3, mix


def test_drivers_raise_the_churn_rate_of_their_terms(book):
    terms = book["terms"].dropna(subset=["churned_at_end"])
    terms = terms[terms.end_date >= pd.Timestamp(START)]
    clean = terms[terms.drivers == ""].churned_at_end.mean()
    for driver in ("responsiveness", "adoption", "support", "voice", "first_year"):
        with_it = terms[terms.drivers.str.split(";").apply(lambda ds, d=driver: d in ds)].churned_at_end.mean()
        assert with_it > 3 * clean, (driver, with_it, clean)


def test_churned_accounts_go_quiet_after_churn(book):
    truth = book["truth"]
    churned = truth[(truth.churned == 1) & (truth.churn_date < pd.Timestamp(END) - pd.Timedelta(days=60))]
    decisions = pd.DataFrame({"account_id": churned.account_id, "date": churned.churn_date + pd.Timedelta(days=30)})
    for name, col in [("emails", "sent_at"), ("usage_events", "event_at"), ("meetings", "start_at")]:
        late = events_before(book["export"][name], col, decisions, lo_days=-3650)
        assert late.empty, name


def test_slow_replies_precede_responsiveness_churn(book):
    replies = reply_hours(book["export"]["emails"])
    decisions = at_decision(book["truth"], book["terms"], "responsiveness")
    window = events_before(replies, "sent_at", decisions, lo_days=120, hi_days=7)
    breach = window.assign(slow=window.hours > 48).groupby("churned").slow.mean()
    # healthy accounts breach 48 h now and then (a Friday-evening e-mail waits for Monday)
    assert breach[1] > 0.35 and breach[0] < 0.15, breach
    median = window.groupby("churned").hours.median()
    assert median[1] > 24 and median[0] < 12, median


def test_qbr_gaps_precede_qbr_churn_in_large_accounts(book):
    accounts = book["export"]["accounts"]
    large = set(accounts.account_id[accounts.segment != "SMB"])
    qbrs = book["export"]["meetings"].query("meeting_type == 'qbr'")
    decisions = at_decision(book["truth"], book["terms"], "qbr")
    decisions = decisions[decisions.account_id.isin(large) & (decisions.date >= pd.Timestamp("2025-01-01"))]
    last = events_before(qbrs, "start_at", decisions, lo_days=400).groupby("decision").start_at.max()
    gap = (decisions.date - last.reindex(decisions.index).dt.tz_convert(None)).dt.days.fillna(400)
    by = gap.groupby(decisions.churned).median()
    assert by[1] >= 150 and by[0] <= 100, by


def test_usage_falls_before_adoption_churn(book):
    usage = book["export"]["usage_events"]
    decisions = at_decision(book["truth"], book["terms"], "adoption")
    recent = events_before(usage, "event_at", decisions, lo_days=30).groupby("decision").event_count.sum()
    before = events_before(usage, "event_at", decisions, lo_days=150, hi_days=90).groupby("decision").event_count.sum()
    # events per day, last 30 days vs 90-150 days before the decision
    trend = (recent.reindex(decisions.index).fillna(0) / 30 / (before.reindex(decisions.index) / 60)).dropna()
    by = trend.groupby(decisions.churned).median()
    assert by[1] < 0.6 and by[0] > 0.8, by


def test_support_pain_and_detractors_precede_their_churn(book):
    tickets = book["export"]["tickets"]
    decisions = at_decision(book["truth"], book["terms"], "support")
    window = events_before(tickets, "created_at", decisions, lo_days=120)
    hot = window.assign(hot=window.priority.isin(["high", "urgent"])).groupby("churned").hot.mean()
    assert hot[1] > 1.8 * hot[0], hot

    surveys = book["export"]["surveys"].query("survey_type == 'nps'").dropna(subset=["score"])
    decisions = at_decision(book["truth"], book["terms"], "voice")
    window = events_before(surveys, "sent_at", decisions, lo_days=150)  # voice starts 150-300 days before
    detractors = window.assign(d=window.score <= 6).groupby("churned").d.mean()
    assert detractors[1] > 0.5 and detractors[0] < 0.25, detractors


def test_holiday_silences_do_not_cause_churn(book):
    accounts, truth = book["export"]["accounts"], book["truth"]
    emails = book["export"]["emails"].merge(accounts[["account_id", "country"]], on="account_id")
    fr = emails[emails.country == "FR"]
    by_month = fr.groupby(fr.sent_at.dt.month).size()
    assert by_month[8] < 0.6 * by_month[[6, 9, 10]].mean(), by_month  # August is quiet in France...
    usage = book["export"]["usage_events"].merge(accounts[["account_id", "country"]], on="account_id")
    south = usage[usage.country.isin(["FR", "IT", "ES"])]
    weekly = south.groupby(south.event_at.dt.month).event_count.sum()
    assert weekly[8] < 0.7 * weekly[[6, 9, 10]].mean(), weekly
    # ...yet accounts with an August shutdown churn no more than the others
    churn = truth.merge(accounts[["account_id", "country"]], on="account_id")
    shutdown = churn.country.isin(["FR", "IT", "ES"])
    assert churn.churned[shutdown].mean() <= churn.churned[~shutdown].mean() + 0.06


def test_reply_times_follow_business_hours_of_our_hub(book):
    replies = reply_hours(book["export"]["emails"])
    answered = replies[np.isfinite(replies.hours) & (replies.hours > 0.5)]
    hour_ny = answered.replied_at.dt.tz_convert("America/New_York").dt.hour
    accounts = book["export"]["accounts"].set_index("account_id")
    na = accounts.region.reindex(answered.account_id).to_numpy() == "NA"
    assert ((hour_ny[na] >= 9) & (hour_ny[na] < 18)).mean() > 0.8


# ---------------------------------------------------------------- the stage


def test_stage_writes_canonical_export_with_defaults_overridden(tmp_path):
    demo_data.main(accounts=40, seed=5, out=tmp_path / "out", truth=tmp_path / "truth")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(sim.EXPORT_FILES.values())
    assert json.loads((tmp_path / "truth" / "simulation.json").read_text())["accounts"] == 40


def test_stage_hands_other_formats_to_the_shape_writer(tmp_path, monkeypatch):
    seen = {}

    def fake_shape(canonical_dir: Path, out_dir: Path, fmt: str) -> None:
        seen["files"] = sorted(p.name for p in canonical_dir.iterdir())
        seen["fmt"] = fmt
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "Account.csv").write_text("Id\n")

    module = types.ModuleType("pipelines.demo.shapes")
    module.write_export_shape = fake_shape
    monkeypatch.setitem(sys.modules, "pipelines.demo.shapes", module)
    demo_data.main(accounts=20, seed=5, out=tmp_path / "sf", truth=tmp_path / "truth", fmt="salesforce")
    assert seen == {"files": sorted(sim.EXPORT_FILES.values()), "fmt": "salesforce"}
    assert (tmp_path / "sf" / "Account.csv").exists()


def test_stage_refuses_an_unknown_format_or_no_accounts(tmp_path):
    with pytest.raises(InputError, match="format"):
        demo_data.main(accounts=10, seed=1, out=tmp_path / "o", truth=tmp_path / "t", fmt="excel")
    with pytest.raises(InputError, match="accounts"):
        demo_data.main(accounts=0, seed=1, out=tmp_path / "o", truth=tmp_path / "t")
