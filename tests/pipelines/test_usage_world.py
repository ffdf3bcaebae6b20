"""The usage world: a product-led book, usage events only, churn caused by per-user usage levels.

As for the CRM world, the mechanism tests read only the export and the ground truth, the way
the model will: a driver whose signal is not in the files fails them.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.duck import connect, query
from features.errors import InputError
from features.schemas import SCHEMAS, TABLES
from features.snapshots import spells_sql
from pipelines import demo_data
from pipelines.cli import app
from pipelines.demo import usage_world as uw
from tests.pipelines.test_simulate import load_export

START, END = dt.date(2024, 4, 1), dt.date(2026, 11, 20)
GRACE_DAYS = 30
DRIVING_EVENTS = ("report_viewed", "invite_sent")


def load_truth(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    accounts = pd.read_csv(
        folder / "accounts_truth.csv",
        parse_dates=["churn_date"],
        keep_default_na=False,
        na_values={"churn_date": [""]},
    )
    terms = pd.read_csv(
        folder / "terms_truth.csv",
        parse_dates=["start_date", "end_date"],
        keep_default_na=False,
        na_values={"churned_at_end": [""]},
    )
    return accounts, terms


def weekly_usage(usage: pd.DataFrame) -> tuple[pd.Index, dict[str, np.ndarray]]:
    """Per account (rows) and week since START (columns): events of each type, and active human users."""
    week = (usage.event_at - pd.Timestamp(START, tz="UTC")).dt.days // 7
    accounts = pd.Index(sorted(usage.account_id.unique()))
    row = accounts.get_indexer(usage.account_id)
    weeks = int(week.max()) + 1
    out = {}
    for name in uw.EVENT_NAMES:
        mask = (usage.feature == name).to_numpy()
        grid = np.zeros((len(accounts), weeks))
        np.add.at(grid, (row[mask], week[mask]), usage.event_count[mask])
        out[name] = grid
    humans = usage.assign(row=row, week=week)[~usage.user_id.str.endswith("-000")]
    pairs = humans.drop_duplicates(["row", "week", "user_id"])
    users = np.zeros((len(accounts), weeks))
    np.add.at(users, (pairs.row.to_numpy(), pairs.week.to_numpy()), 1)
    out["users"] = users
    return accounts, out


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """150 accounts in three chunks: enough for contract and reproducibility checks."""
    root = tmp_path_factory.mktemp("small")
    uw.simulate(150, 11, START, END, root / "out", root / "truth", chunk_size=60)
    return root


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> dict:
    """500 accounts: about 150 churners, enough for the rate and mechanism tests (about a second)."""
    root = tmp_path_factory.mktemp("book")
    summary = uw.simulate(500, 3, START, END, root / "out", root / "truth", chunk_size=200)
    accounts_truth, terms_truth = load_truth(root / "truth")
    return {
        "export": load_export(root / "out", uw.EXPORT_FILES),
        "truth": accounts_truth,
        "terms": terms_truth,
        "summary": summary,
    }


# ---------------------------------------------------------------- files and contract


def test_same_seed_gives_byte_identical_files(small, tmp_path):
    uw.simulate(150, 11, START, END, tmp_path / "out", tmp_path / "truth", chunk_size=60)
    files = [f"out/{f}" for f in uw.EXPORT_FILES.values()] + [f"truth/{f}" for f in uw.TRUTH_FILES.values()]
    for rel in files + ["truth/simulation.json"]:
        assert (small / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_a_different_seed_gives_different_data(small, tmp_path):
    uw.simulate(150, 12, START, END, tmp_path / "out", tmp_path / "truth", chunk_size=60)
    for file in uw.EXPORT_FILES.values():
        assert (small / "out" / file).read_bytes() != (tmp_path / "out" / file).read_bytes(), file


def test_only_accounts_contracts_and_usage_are_written(small):
    assert sorted(p.name for p in (small / "out").iterdir()) == [
        "accounts.csv",
        "contracts.csv",
        "usage_events.parquet",
    ]
    assert sorted(p.name for p in (small / "truth").iterdir()) == [
        "accounts_truth.csv",
        "simulation.json",
        "terms_truth.csv",
    ]


def test_every_table_validates_against_the_canonical_contract(small):
    export = load_export(small / "out", uw.EXPORT_FILES)
    for name, frame in export.items():
        assert list(frame.columns) == TABLES[name].column_names, name
        assert len(frame) > 0, name
        SCHEMAS[name].validate(frame)
    known = set(export["accounts"].account_id)
    assert len(known) == 150
    assert set(export["contracts"].account_id) == known and set(export["usage_events"].account_id) <= known
    events = export["usage_events"]
    lo, hi = pd.Timestamp(START, tz="UTC"), pd.Timestamp(END, tz="UTC") + pd.Timedelta(days=1)
    assert events.event_at.min() >= lo and events.event_at.max() < hi


def test_simulation_json_names_the_world_and_counts_rows(small):
    summary = json.loads((small / "truth" / "simulation.json").read_text())
    assert summary["world"] == "usage" and summary["seed"] == 11 and summary["accounts"] == 150
    export = load_export(small / "out", uw.EXPORT_FILES)
    assert summary["rows"] == {name: len(frame) for name, frame in export.items()}


def test_eight_event_types_with_different_volumes_and_users_within_seats(book):
    usage, contracts = book["export"]["usage_events"], book["export"]["contracts"]
    volume = usage.groupby("feature").event_count.sum()
    assert set(volume.index) == set(uw.EVENT_NAMES) and len(uw.EVENT_NAMES) == 8
    assert volume.max() > 20 * volume.min(), volume
    humans = usage[~usage.user_id.str.endswith("-000")]
    users = humans.groupby("account_id").user_id.nunique()
    seats = contracts.groupby("account_id").seats.max()
    assert (users <= seats.reindex(users.index)).all()
    # integration syncs come from a service user, never from a person
    assert (usage[usage.user_id.str.endswith("-000")].feature == uw.INTEGRATION).all()


# ---------------------------------------------------------------- subscriptions and churn


def test_monthly_and_annual_terms_renew_back_to_back(book):
    contracts = book["export"]["contracts"].sort_values(["account_id", "start_date"])
    end_next = contracts.end_date + pd.Timedelta(days=1)
    months = (end_next.dt.year - contracts.start_date.dt.year) * 12 + end_next.dt.month - contracts.start_date.dt.month
    assert set(months) == {1, 12}
    per_account = months.groupby(contracts.account_id).agg(["min", "max"])
    assert (per_account["min"] == per_account["max"]).all(), "an account keeps its plan"
    assert 0.6 <= (per_account["min"] == 1).mean() <= 0.8
    nxt = contracts.groupby("account_id").start_date.shift(-1)
    has_next = nxt.notna()
    assert (nxt[has_next] == end_next[has_next]).all()
    assert contracts.cancel_date.isna().all()
    plan = book["terms"].set_index("contract_id").plan
    assert (plan.reindex(contracts.contract_id).to_numpy() == np.where(months == 1, "monthly", "annual")).all()


def test_churned_accounts_are_exactly_the_spells_that_end_in_the_export(book):
    """The pipeline's own spell rule (features.snapshots) finds the truth's churns, on the same dates."""
    contracts = book["export"]["contracts"]
    con = connect({"contracts": contracts[["account_id", "start_date", "end_date", "cancel_date"]]})
    spells = query(con, spells_sql(GRACE_DAYS))
    con.close()
    assert spells.account_id.is_unique, "one spell per account: every renewal starts the day after"
    ended = spells[pd.to_datetime(spells.spell_end) < pd.Timestamp(END)].set_index("account_id").spell_end
    truth = book["truth"]
    churned = truth[truth.churned == 1].set_index("account_id").churn_date
    assert set(ended.index) == set(churned.index)
    assert (pd.to_datetime(ended).reindex(churned.index) == churned).all()
    assert truth.churn_date.isna().eq(truth.churned == 0).all()


def test_annual_churn_rate_is_realistic_and_the_drivers_named(book):
    summary = book["summary"]
    assert 0.10 <= summary["annual_churn_rate"] <= 0.25, summary
    truth = book["truth"]
    churned = truth[truth.churned == 1]
    assert set(churned.dominant_driver) <= set(uw.DRIVERS) | {uw.BASELINE}
    with_driver = churned[churned.dominant_driver != uw.BASELINE]
    assert all(d in a.split(";") for d, a in zip(with_driver.dominant_driver, with_driver.active_drivers, strict=True))
    mix = churned.dominant_driver.value_counts(normalize=True)
    assert mix[list(DRIVING_EVENTS) + [uw.INTEGRATION]].sum() > 0.7, mix
    # a 13-week window at 2,000 accounts holds several dozen churns
    assert 30 <= summary["churns_per_13_weeks"] * 2000 / 500 <= 120


def test_annual_plans_churn_only_at_term_end_and_both_plans_churn(book):
    terms = book["terms"].dropna(subset=["churned_at_end"])
    churned_terms = terms[terms.churned_at_end == 1]
    assert set(churned_terms.plan) == {"monthly", "annual"}
    last = terms.groupby("account_id").end_date.max()
    assert (churned_terms.end_date.to_numpy() == last.reindex(churned_terms.account_id).to_numpy()).all()


def test_usage_stops_when_the_subscription_ends(book):
    truth = book["truth"].dropna(subset=["churn_date"])
    usage = book["export"]["usage_events"].merge(truth[["account_id", "churn_date"]], on="account_id")
    assert (usage.event_at.dt.tz_convert(None) < usage.churn_date + pd.Timedelta(days=1)).all()


def test_churners_use_the_driving_events_less_in_the_90_days_before_churn(book):
    """Per active user, churners' driving events sit below the retained accounts' median of the same
    weeks; a noise event does not; and fewer churners have an integration syncing."""
    accounts, weekly = weekly_usage(book["export"]["usage_events"])
    truth = book["truth"].set_index("account_id").reindex(accounts)
    retained = (truth.churned == 0).to_numpy()
    cum = {
        name: np.concatenate([np.zeros((len(accounts), 1)), grid.cumsum(axis=1)], axis=1)
        for name, grid in weekly.items()
    }
    churners = truth[(truth.churned == 1) & (truth.churn_date >= pd.Timestamp(START) + pd.Timedelta(days=180))]
    assert len(churners) >= 80
    below = {name: [] for name in (*DRIVING_EVENTS, "login")}
    synced = {"churned": [], "retained": []}
    for account, date in churners.churn_date.items():
        hi = (date - pd.Timestamp(START)).days // 7
        window = {name: c[:, hi] - c[:, hi - 13] for name, c in cum.items()}
        i = accounts.get_loc(account)
        peers = retained & (window["users"] > 0)
        for name in below:
            level = window[name] / np.maximum(window["users"], 1)
            below[name].append(level[i] < np.median(level[peers]))
        synced["churned"].append(window[uw.INTEGRATION][i] > 0)
        synced["retained"].append((window[uw.INTEGRATION][peers] > 0).mean())
    share = {name: np.mean(flags) for name, flags in below.items()}
    assert share["report_viewed"] > 0.7 and share["invite_sent"] > 0.65, share
    assert 0.35 < share["login"] < 0.65, share
    assert np.mean(synced["churned"]) < 0.7 * np.mean(synced["retained"]), synced


def test_the_signal_leads_the_churn_by_more_than_a_quarter(book):
    """Reports viewed per active user are already low 90 to 180 days before the churn."""
    accounts, weekly = weekly_usage(book["export"]["usage_events"])
    truth = book["truth"].set_index("account_id").reindex(accounts)
    retained = (truth.churned == 0).to_numpy()
    churners = truth[(truth.churned == 1) & (truth.churn_date >= pd.Timestamp(START) + pd.Timedelta(days=270))]
    below = []
    for account, date in churners.churn_date.items():
        hi = (date - pd.Timestamp(START)).days // 7 - 13
        views = weekly["report_viewed"][:, hi - 13 : hi].sum(axis=1)
        users = weekly["users"][:, hi - 13 : hi].sum(axis=1)
        level = views / np.maximum(users, 1)
        peers = retained & (users > 0)
        below.append(level[accounts.get_loc(account)] < np.median(level[peers]))
    assert np.mean(below) > 0.65, np.mean(below)


# ---------------------------------------------------------------- the stage and the command


def test_stage_writes_the_usage_world_on_request(tmp_path):
    demo_data.main(accounts=40, seed=5, out=tmp_path / "out", truth=tmp_path / "truth", world="usage")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(uw.EXPORT_FILES.values())
    assert json.loads((tmp_path / "truth" / "simulation.json").read_text())["world"] == "usage"


def test_stage_refuses_an_unknown_world_or_a_crm_file_shape_for_it(tmp_path):
    with pytest.raises(InputError, match="--world"):
        demo_data.main(accounts=10, seed=1, out=tmp_path / "o", truth=tmp_path / "t", world="retail")
    with pytest.raises(InputError, match="canonical files only"):
        demo_data.main(accounts=10, seed=1, out=tmp_path / "o", truth=tmp_path / "t", fmt="hubspot", world="usage")


def test_command_passes_the_world_through(tmp_path):
    args = ["demo-data", "--world", "usage", "--accounts", "30", "--seed", "2"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out"), "--truth", str(tmp_path / "truth")])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "out" / "emails.csv.gz").exists()
    refused = CliRunner().invoke(app, [*args, "--format", "salesforce", "--out", str(tmp_path / "sf")])
    assert refused.exit_code == 2 and "canonical files only" in refused.output
