"""This week's list: scoring date, model loading, drift check, tiers and the at-risk table.

The at-risk table is built end to end from canonical tables (``canonical_frames.random_export``)
with a small model trained on features of the same export, so its rows can be checked against
features and probabilities computed independently.
"""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.catalogue import SIGNALS, Catalogue, catalogue_from_json, catalogue_hash, catalogue_to_json
from features.errors import InputError
from features.export_date import export_last_date
from features.snapshots import LABEL_COLUMNS
from models import evaluate, explain, scoring, tracking
from models.params import ScoreParams
from models.tracking import CHALLENGER, CHAMPION, TrainingRun
from models.train import EVALUATION_FILE, ChurnModel, Windows, train_model
from tests.features.canonical_frames import accounts, contracts, emails, feature_params, random_export, table, truncate
from tests.models.conftest import SPECS, with_tuning

PARAMS = feature_params(usage={"max_event_types": 3})  # a 60-account book: a few learned columns, not 84 of noise
AS_OF = dt.date(2025, 2, 5)
BEFORE = AS_OF - dt.timedelta(days=7)
TIERS = {"high": 0.5, "medium": 0.25, "low": 0.0}
SCORE_PARAMS = ScoreParams(as_of=None, rank_by="horizon", top_reasons=3, tiers=TIERS)
PLAYBOOK = {signal: f"play for {signal}" for signal in SIGNALS}  # the play names its signal
VERSION = "churn-lgbm/7"
CSV_COLUMNS = [
    "as_of",
    "rank",
    "account_id",
    "account_name",
    "owner",
    "segment",
    "region",
    "arr",
    "renewal_date",
    "days_to_renewal",
    "renewal_risk",
    "churn_probability",
    "change_7d",
    "what_changed",
    "risk_tier",
    "arr_at_risk_at_renewal",
    "expected_arr_at_risk",
    "reason_1",
    "reason_2",
    "reason_3",
    "play_1",
    "play_2",
    "play_3",
    "model_version",
    "renewal_model_version",
    "challenger_risk",
    "challenger_version",
    "data_note",
]


# ---------------------------------------------------------------- risk tiers


@pytest.mark.parametrize(
    "probability, tier",
    [(1.0, "high"), (0.5, "high"), (0.4999, "medium"), (0.25, "medium"), (0.2499, "low"), (0.0, "low")],
)
def test_risk_tier_thresholds_are_inclusive(probability, tier):
    assert scoring.risk_tier(pd.Series([probability]), TIERS).tolist() == [tier]


def test_risk_tier_does_not_depend_on_the_order_tiers_are_listed():
    p = pd.Series([0.1, 0.3, 0.7], index=["a", "b", "c"])
    shuffled = {"medium": 0.25, "low": 0.0, "high": 0.5}
    out = scoring.risk_tier(p, shuffled)
    assert out.tolist() == ["low", "medium", "high"] and list(out.index) == ["a", "b", "c"]


def test_risk_tier_below_the_lowest_threshold_is_the_lowest_tier():
    assert scoring.risk_tier(pd.Series([0.05]), {"high": 0.5, "watch": 0.1}).tolist() == ["watch"]


# ---------------------------------------------------------------- the scoring date


def as_of_of(tables: dict[str, pd.DataFrame]) -> dt.date:
    """The default scoring date of tables held in memory: the day after their export date."""
    return scoring.default_as_of(export_last_date(tables).date())


def test_default_as_of_is_the_day_after_the_last_event_not_a_contract_date():
    tables = {
        "accounts": accounts({"account_id": "a1"}),
        # contract dates are not events: a start after the last e-mail and an end years ahead
        "contracts": contracts(
            {"account_id": "a1", "start_date": "2025-01-01", "end_date": "2030-01-01"},
            {"account_id": "a1", "start_date": "2025-07-01", "end_date": "2031-01-01"},
        ),
        "emails": emails(
            ("a1", "t1", "2025-06-10 23:30", "inbound"),  # the last event, late in the UTC day
            ("a1", "t1", "2025-03-01 10:00", "outbound"),
        ),
        "tickets": table("tickets", []),  # an empty table has no dates: ignored
    }
    assert as_of_of(tables) == dt.date(2025, 6, 11)


def test_without_event_tables_contract_dates_count_but_future_end_dates_do_not():
    tables = {
        "accounts": accounts({"account_id": "a1"}),
        "contracts": contracts(
            {"account_id": "a1", "start_date": "2024-03-01", "end_date": "2025-02-28"},
            {
                "account_id": "a1",
                "start_date": "2025-03-01",
                "end_date": "2030-01-01",  # planned, in the future
                "cancel_date": "2025-04-15",
                "status": "cancelled",
            },
        ),
    }
    assert export_last_date(tables).date() == dt.date(2025, 4, 15)
    assert as_of_of(tables) == dt.date(2025, 4, 16)


def test_an_empty_optional_table_does_not_change_the_scoring_date():
    tables = {
        "accounts": accounts({"account_id": "a1"}),
        "contracts": contracts({"account_id": "a1", "start_date": "2024-03-01", "end_date": "2025-02-28"}),
    }
    expected = as_of_of(tables)
    assert as_of_of({**tables, "surveys": table("surveys", [])}) == expected


# ---------------------------------------------------------------- a real book, a small real model


def with_late_accounts(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Names and owners for every account, plus one account new this week and one gone since last week."""
    acc = tables["accounts"].copy()
    acc["account_name"] = ("Name " + acc["account_id"]).astype("string")
    acc["owner"] = ("owner-" + acc["account_id"].str[-1]).astype("string")
    extra = accounts(
        {"account_id": "new01", "account_name": "New", "owner": "o", "region": "NA", "segment": "SMB"},
        {"account_id": "gone1", "account_name": "Gone", "owner": "o", "region": "NA", "segment": "SMB"},
    )
    con = contracts(
        {"contract_id": "new01-k", "account_id": "new01", "start_date": "2025-02-02", "end_date": "2026-02-02"},
        # cancelled last week: no grace period after a cancellation (an expired term would be overdue, still listed)
        {
            "contract_id": "gone1-k",
            "account_id": "gone1",
            "start_date": "2024-02-01",
            "end_date": "2025-06-01",
            "cancel_date": "2025-02-01",
            "status": "cancelled",
        },
    )
    return {
        **tables,
        "accounts": pd.concat([acc, extra], ignore_index=True),
        "contracts": pd.concat([tables["contracts"], con], ignore_index=True),
    }


@pytest.fixture(scope="module")
def book():
    return with_late_accounts(random_export(n_accounts=60, seed=1, days=540, usage_per_day=1))


@pytest.fixture(scope="module")
def model(book, train_params) -> ChurnModel:
    """LightGBM with the project's settings, made small: trained on every labelled snapshot of the book."""
    frame, catalog = build_features(book, None, PARAMS)
    labelled = frame[frame["label"].notna()]
    in_valid = labelled["account_id"].str[-1].isin(["0", "3", "6"])  # a third of the accounts
    parts = {"train": labelled[~in_valid], "valid": labelled[in_valid]}
    params = with_tuning(train_params, num_boost_round=100, early_stopping_rounds=20)
    windows = Windows(AS_OF, AS_OF, AS_OF, AS_OF)  # recorded in the metadata only
    return train_model(parts, catalog, catalogue_hash(catalog), params, windows)


@pytest.fixture(scope="module")
def result(book, model) -> scoring.ScoreResult:
    return scoring.build_scores(book, AS_OF, model, VERSION, PARAMS, SCORE_PARAMS, PLAYBOOK)


@pytest.fixture(scope="module")
def independent(book, model) -> dict[str, pd.Series]:
    """Probabilities at as-of and a week before, from features built one date at a time."""
    out = {}
    for name, day in (("now", AS_OF), ("before", BEFORE)):
        frame, _ = build_features(book, [day], PARAMS)
        out[name] = pd.Series(model.predict_proba(frame), index=frame["account_id"].astype(str).to_numpy())
    return out


@pytest.fixture(scope="module")
def renewal_model(book, train_params) -> ChurnModel:
    """The same machinery on the renewal label (every labelled term of the book, a third of accounts for validation)."""
    frame, catalog = build_features(book, None, PARAMS)
    labelled = frame[frame["renewal_label"].notna()].assign(label=lambda f: f["renewal_label"])
    in_valid = labelled["account_id"].str[-1].isin(["0", "3", "6"])
    parts = {"train": labelled[~in_valid], "valid": labelled[in_valid]}
    params = with_tuning(train_params, num_boost_round=100, early_stopping_rounds=20)
    return train_model(parts, catalog, catalogue_hash(catalog), params, Windows(AS_OF, AS_OF, AS_OF, AS_OF))


@pytest.fixture(scope="module")
def by_renewal(book, model, renewal_model) -> scoring.ScoreResult:
    params = SCORE_PARAMS.model_copy(update={"rank_by": "renewal"})
    renewal = scoring.Scorer(renewal_model, "churn-renewal/2")
    return scoring.build_scores(book, AS_OF, model, VERSION, PARAMS, params, PLAYBOOK, renewal=renewal)


def test_ranked_by_renewal_risk_both_risks_come_from_their_own_model(by_renewal, result, book, renewal_model):
    at_risk = by_renewal.at_risk.set_index("account_id")
    frame, _ = build_features(book, [AS_OF], PARAMS)
    expected = pd.Series(renewal_model.predict_proba(frame), index=frame["account_id"].astype(str).to_numpy())
    np.testing.assert_allclose(at_risk["renewal_risk"], expected.loc[at_risk.index].round(4), atol=1e-4)
    # the 90-day forecast is the one the horizon-ranked list gives, unchanged
    horizon = result.at_risk.set_index("account_id")["churn_probability"]
    pd.testing.assert_series_equal(at_risk["churn_probability"], horizon.loc[at_risk.index])
    np.testing.assert_allclose(
        at_risk["arr_at_risk_at_renewal"], (expected.loc[at_risk.index] * at_risk["arr"]).round(2), atol=0.02
    )
    assert (at_risk["renewal_model_version"] == "churn-renewal/2").all()


def test_ranked_by_renewal_the_rank_tier_and_change_follow_the_renewal_risk(by_renewal):
    at_risk = by_renewal.at_risk
    assert list(at_risk["rank"]) == list(range(1, len(at_risk) + 1))
    order = at_risk[["arr_at_risk_at_renewal", "renewal_risk"]].to_numpy()
    assert all(tuple(a) >= tuple(b) for a, b in zip(order[:-1], order[1:]))
    assert (
        at_risk["risk_tier"] == scoring.risk_tier(by_renewal.probability.loc[at_risk["account_id"]], TIERS).to_numpy()
    ).all()
    np.testing.assert_allclose(
        at_risk["renewal_risk"], by_renewal.probability.loc[at_risk["account_id"]].round(4).to_numpy(), atol=1e-4
    )


def test_ranked_by_renewal_without_a_renewal_model_is_one_clear_error(book, model):
    params = SCORE_PARAMS.model_copy(update={"rank_by": "renewal"})
    with pytest.raises(InputError, match="score.rank_by is renewal but there is no renewal model"):
        scoring.build_scores(book, AS_OF, model, VERSION, PARAMS, params, PLAYBOOK)


def test_at_risk_columns_are_exactly_the_csv_contract(result):
    assert list(result.at_risk.columns) == CSV_COLUMNS == scoring.CSV_COLUMNS


def test_one_row_per_account_active_at_as_of(result, book, independent):
    at_risk = result.at_risk
    assert at_risk["account_id"].is_unique
    assert set(at_risk["account_id"]) == set(independent["now"].index)
    con = book["contracts"]
    end = con["cancel_date"].where(con["cancel_date"] < con["end_date"], con["end_date"])
    day = pd.Timestamp(AS_OF)
    covering = set(con.loc[(con["start_date"] < day) & (end >= day), "account_id"])
    started = set(con.loc[con["start_date"] < day, "account_id"])
    assert covering <= set(at_risk["account_id"]) <= started
    assert "new01" in set(at_risk["account_id"]) and "gone1" not in set(at_risk["account_id"])
    assert (at_risk["as_of"] == "2025-02-05").all() and (at_risk["model_version"] == VERSION).all()


def test_ranks_follow_expected_arr_at_risk(result):
    at_risk = result.at_risk
    assert at_risk["rank"].tolist() == list(range(1, len(at_risk) + 1))
    expected = at_risk["expected_arr_at_risk"].to_numpy(dtype=float)
    assert (np.diff(expected) <= 0).all()


def test_probability_is_the_models_and_expected_arr_is_probability_times_arr(result, independent):
    at_risk = result.at_risk.set_index("account_id")
    p = result.probability.reindex(at_risk.index)
    p_model = independent["now"].reindex(at_risk.index)
    assert np.allclose(p, p_model, atol=1e-9)  # calibrated SHAP sum == the model's own probability
    assert np.all(np.abs(at_risk["churn_probability"] - p_model) <= 5e-5 + 1e-9)  # rounded to 4 places
    assert np.all(np.abs(at_risk["expected_arr_at_risk"] - p * at_risk["arr"]) <= 0.005 + 1e-6)
    assert (at_risk["risk_tier"] == scoring.risk_tier(p, TIERS)).all()


def test_change_7d_is_now_minus_a_week_before_and_new_accounts_have_none(result, independent):
    at_risk = result.at_risk.set_index("account_id")
    both = at_risk.index.intersection(independent["before"].index)
    assert len(both) >= 30
    delta = independent["now"][both] - independent["before"][both]
    assert np.all(np.abs(at_risk.loc[both, "change_7d"].astype(float) - delta) <= 5e-5 + 1e-9)
    new = at_risk.index.difference(independent["before"].index)
    assert list(new) == ["new01"]
    assert pd.isna(at_risk.loc["new01", "change_7d"]) and at_risk.loc["new01", "what_changed"] == "new this week"
    assert (at_risk.loc[both, "what_changed"] != "new this week").all()


def test_reasons_and_plays_come_from_actionable_signals_only(result, book, model):
    phrases = {signal: [] for signal in SIGNALS}
    _, catalog = build_features(book, [AS_OF], PARAMS, vocabulary=model.vocabulary)
    for spec in catalogue_from_json(catalog):  # the fixed families and the learned usage metrics
        phrases[spec.signal].append(spec.phrase.split("{value}")[0])
    at_risk = result.at_risk
    assert at_risk["reason_1"].notna().all()
    # the random book's labels barely follow its features, so how many accounts show a warning sign
    # depends on the setting the search picks; enough must, for the checks below to check something
    assert (at_risk["reason_1"] != explain.NO_WARNING_SIGN).sum() >= 15
    for _, row in at_risk.iterrows():
        signals = []
        if row["reason_1"] == explain.NO_WARNING_SIGN:  # said plainly, no play, no other reason
            assert pd.isna(row["play_1"]) and pd.isna(row["reason_2"]) and pd.isna(row["reason_3"])
            continue
        for r in (1, 2, 3):
            reason, play = row[f"reason_{r}"], row[f"play_{r}"]
            assert pd.isna(reason) == pd.isna(play)
            if pd.isna(reason):
                continue
            signal = play.removeprefix("play for ")
            # behavioural only: renewal timing, ARR and the account's profile are never reasons
            assert signal in SIGNALS and signal not in ("context", "renewal"), (reason, signal)
            assert not reason.startswith("Current contract is worth"), reason
            assert any(reason.startswith(prefix) for prefix in phrases[signal]), (reason, signal)
            signals.append(signal)
        reasons = [row[f"reason_{r}"] for r in (1, 2, 3) if pd.notna(row[f"reason_{r}"])]
        assert len(reasons) == len(set(reasons)) <= 3


def test_account_attributes_and_renewal_come_from_the_accounts_and_features(result, book):
    at_risk = result.at_risk.set_index("account_id")
    acc = book["accounts"].set_index("account_id")
    for column in ("account_name", "owner", "segment", "region"):
        assert (at_risk[column] == acc.loc[at_risk.index, column]).all(), column
    days = at_risk["days_to_renewal"].dropna()
    assert len(days) == len(at_risk)
    renewal = [(AS_OF + dt.timedelta(days=int(d))).isoformat() for d in days]
    assert at_risk.loc[days.index, "renewal_date"].tolist() == renewal
    assert at_risk.loc["new01", "renewal_date"] == "2026-02-02"


def test_explanations_and_shap_inputs_cover_the_scored_accounts(result, model):
    ids = set(result.at_risk["account_id"])
    assert set(result.explanations["account_id"]) == ids
    assert len(result.explanations) == len(ids) * len(model.features)
    assert set(result.X.index) == ids and list(result.X.columns) == model.features
    assert list(result.contrib.values.columns) == model.features


def test_no_account_active_at_as_of_is_an_input_error(book, model):
    frame, catalog = build_features(book, [BEFORE], PARAMS)
    with pytest.raises(InputError, match="no account is active on 2025-02-05"):
        scoring.score_accounts(frame, catalog, AS_OF, book["accounts"], model, VERSION, SCORE_PARAMS, PLAYBOOK)


# ---------------------------------------------------------------- feature drift


def test_drift_names_a_missing_feature_and_the_dropped_family(book, model):
    without_emails = {k: v for k, v in book.items() if k != "emails"}
    frame, catalog = build_features(without_emails, [AS_OF], PARAMS)
    with pytest.raises(InputError) as err:
        scoring.check_feature_drift(model, catalog, frame)
    message = str(err.value)
    missing = [f for f in model.features if f.startswith("reply_")]
    assert missing and missing[0] in message
    assert "responsiveness: emails table absent" in message
    with pytest.raises(InputError, match="feature drift"):
        scoring.score_accounts(frame, catalog, AS_OF, book["accounts"], model, VERSION, SCORE_PARAMS, PLAYBOOK)


def test_drift_check_passes_when_every_model_feature_is_produced(model, book):
    catalog = build_features(book, [AS_OF], PARAMS, vocabulary=model.vocabulary)[1]
    scoring.check_feature_drift(model, catalog, pd.DataFrame())  # extra features are fine
    catalog["features"] = [f for f in catalog["features"] if f["name"] != model.features[-1]]
    with pytest.raises(InputError, match=model.features[-1]) as err:
        scoring.check_feature_drift(model, catalog, pd.DataFrame())
    assert "families dropped" not in str(err.value)


# ---------------------------------------------------------------- loading a model from a folder


@pytest.fixture(scope="module")
def small_model(synthetic_parts, synthetic, train_params) -> ChurnModel:
    _, catalog = synthetic
    params = with_tuning(train_params, num_boost_round=5)
    parts = {k: v.head(3000) for k, v in synthetic_parts.items()}
    return train_model(parts, catalog, catalogue_hash(catalog), params, Windows(AS_OF, AS_OF, AS_OF, AS_OF))


def test_load_model_from_a_folder_is_labelled_by_folder_and_catalogue_hash(small_model, tmp_path):
    folder = tmp_path / "candidate"
    small_model.save(folder)
    loaded, label = scoring.load_model(None, folder, "sqlite:///unused.db")
    assert label == f"candidate:{catalogue_hash(catalogue_to_json(SPECS, {}))}"
    assert loaded.features == small_model.features
    # a path given as the spec wins over the default folder
    _, label = scoring.load_model(str(folder), tmp_path / "elsewhere", "sqlite:///unused.db")
    assert label.startswith("candidate:")


def test_load_model_from_a_trained_folder_is_labelled_by_its_registry_version(small_model, tmp_path):
    small_model.save(tmp_path)
    run = {"run_id": "r", "registered_model": "churn-lgbm", "version": "3", "alias": "champion"}
    (tmp_path / "mlflow_run.json").write_text(json.dumps(run))
    _, label = scoring.load_model(None, tmp_path, "sqlite:///unused.db")
    assert label == "churn-lgbm/3"


def test_load_model_from_an_empty_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no model.txt"):
        scoring.load_model(None, tmp_path, "sqlite:///unused.db")


# ---------------------------------------------------------------- the list from the past only

TRUNCATION_PARAMS = feature_params(first_snapshot="2024-02-05")


def weekly_features(tables: dict, as_of: dt.date, vocabulary: dict | None = None) -> tuple[pd.DataFrame, dict]:
    dates = [as_of - dt.timedelta(days=7), as_of]
    frame, catalog = scoring.point_in_time_features(tables, dates, TRUNCATION_PARAMS, vocabulary=vocabulary)
    return frame.drop(columns=list(LABEL_COLUMNS)).set_index(["account_id", "snapshot_date"]), catalog


def assert_same_list(tables: dict, as_of: dt.date) -> pd.DataFrame:
    """The truncated export is scored on the full one's event vocabulary, as a model keeps the one it learned."""
    full, catalog = weekly_features(tables, as_of)
    past, _ = weekly_features(truncate(tables, pd.Timestamp(as_of)), as_of, catalog["vocabulary"])
    assert list(full.index) == list(past.index)  # the same accounts, at as-of and a week before
    pd.testing.assert_frame_equal(full, past[full.columns], check_exact=False, rtol=1e-9)  # so the same scores
    return full


@pytest.mark.parametrize("seed", [1, 4])
def test_the_export_truncated_at_as_of_gives_the_same_accounts_and_features(seed):
    tables = random_export(n_accounts=8, seed=seed, days=480, usage_per_day=1)
    k = tables["contracts"]
    # the as-of dates where a renewal booked later used to matter: a few days after each renewed term's end
    renewed = k.sort_values(["account_id", "start_date"])
    ends = renewed.loc[renewed["account_id"].eq(renewed["account_id"].shift(-1)), "end_date"]
    for end in ends.sort_values().iloc[:4]:
        assert_same_list(tables, (end + pd.Timedelta(days=5)).date())


def test_an_account_whose_renewal_is_not_booked_yet_is_on_the_list():
    tables = {
        "accounts": accounts({"account_id": "O"}, {"account_id": "R"}, {"account_id": "C"}),
        "contracts": contracts(
            {"account_id": "O", "start_date": "2025-01-01", "end_date": "2025-06-30"},
            {"account_id": "R", "start_date": "2025-01-01", "end_date": "2025-06-30"},
            {"account_id": "R", "start_date": "2025-07-10", "end_date": "2026-07-10"},
            {"account_id": "C", "start_date": "2025-01-01", "end_date": "2025-12-31"},
        ),
    }
    full = assert_same_list(tables, dt.date(2025, 7, 5))
    now = full.xs(pd.Timestamp("2025-07-05"), level="snapshot_date")
    assert sorted(now.index) == ["C", "O", "R"]
    assert now["renewal_overdue_days"].to_dict() == {"C": 0.0, "O": 5.0, "R": 5.0}


# ---------------------------------------------------------------- the champion scores; a challenger comes alongside

NAME = "churn-lgbm-test"
CHALLENGER_COLUMNS = ["challenger_risk", "challenger_version"]


@pytest.fixture(scope="module")
def labelled(book) -> tuple[pd.DataFrame, Catalogue]:
    """Every labelled snapshot of the book: the window the gate compares models on in these tests."""
    frame, catalog = build_features(book, None, PARAMS)
    return frame[frame["label"].notna()], Catalogue.from_json(catalog)


@pytest.fixture(scope="module")
def worse_model(book, train_params) -> ChurnModel:
    """The ``model`` fixture's machinery on shuffled labels: a model that must lose the gate."""
    frame, catalog = build_features(book, None, PARAMS)
    labelled = frame[frame["label"].notna()].copy()
    labelled["label"] = np.random.default_rng(0).permutation(labelled["label"].to_numpy())
    in_valid = labelled["account_id"].str[-1].isin(["0", "3", "6"])
    parts = {"train": labelled[~in_valid], "valid": labelled[in_valid]}
    params = with_tuning(train_params, num_boost_round=100, early_stopping_rounds=20)
    return train_model(parts, catalog, catalogue_hash(catalog), params, Windows(AS_OF, AS_OF, AS_OF, AS_OF))


def train_into(folder, model: ChurnModel, fingerprint: str, uri: str, labelled) -> dict:
    """What ``churn train`` does after fitting: the model folder, the run and the gate, the run file."""
    test, catalogue = labelled
    model.save(folder)
    arr = evaluate.arr_values(test, catalogue)
    metrics = evaluate.classification_metrics(test["label"].astype(int).to_numpy(), model.predict_proba(test), arr)
    evaluation = {"test": {"model": metrics}}
    (folder / EVALUATION_FILE).write_text(json.dumps(evaluation))
    run = TrainingRun(uri, "churn", NAME, {"train.seed": 42}, {}, fingerprint, "all labelled weeks")
    logged = tracking.log_training_run(run, model, test, evaluation, folder, arr)
    (folder / tracking.RUN_FILE).write_text(json.dumps(logged))
    return logged


def churn_at_as_of(book, model: ChurnModel) -> pd.Series:
    """A model's churn probability at as-of, from features built with its own vocabulary."""
    frame, _ = build_features(book, [AS_OF], PARAMS, vocabulary=model.vocabulary)
    return pd.Series(model.predict_proba(frame), index=frame["account_id"].astype(str).to_numpy())


def test_a_challenger_never_ships_the_champion_scores_and_the_challenger_comes_alongside(
    store, book, model, worse_model, labelled, tmp_path, caplog
):
    first = train_into(tmp_path / "first", model, "fp-good", store, labelled)
    folder = tmp_path / "models"  # what train wrote last: the worse model, which lost the gate
    second = train_into(folder, worse_model, "fp-worse", store, labelled)
    assert (first["version"], first["alias"], second["version"], second["alias"]) == ("1", CHAMPION, "2", CHALLENGER)

    with caplog.at_level("INFO", logger="churn.score"):
        horizon, renewal = scoring.load_scorers(None, None, folder, tmp_path / "no-renewal", store, "horizon")
    assert renewal is None and horizon.version == f"{NAME}/1" and horizon.challenger.version == f"{NAME}/2"
    assert f"champion {NAME}/1 scored the list; challenger {NAME}/2" in caplog.text
    challenger = scoring.ranking_scorer(horizon, renewal, "horizon").challenger
    scored = scoring.build_scores(
        book, AS_OF, horizon.model, horizon.version, PARAMS, SCORE_PARAMS, PLAYBOOK, challenger=challenger
    )
    at_risk = scored.at_risk.set_index("account_id")
    assert (at_risk["model_version"] == f"{NAME}/1").all() and (at_risk["challenger_version"] == f"{NAME}/2").all()
    champion_p = churn_at_as_of(book, model).loc[at_risk.index]
    challenger_p = churn_at_as_of(book, worse_model).loc[at_risk.index]
    np.testing.assert_allclose(at_risk["churn_probability"], champion_p.round(4), atol=1e-4)
    np.testing.assert_allclose(at_risk["challenger_risk"], challenger_p.round(4), atol=1e-4)
    assert (at_risk["challenger_risk"] - at_risk["churn_probability"]).abs().max() > 0.01
    # the list is the champion's own: rank, tiers and reasons as if no challenger were there
    alone = scoring.build_scores(book, AS_OF, model, f"{NAME}/1", PARAMS, SCORE_PARAMS, PLAYBOOK).at_risk
    pd.testing.assert_frame_equal(
        scored.at_risk.drop(columns=CHALLENGER_COLUMNS), alone.drop(columns=CHALLENGER_COLUMNS)
    )

    # a model given on the command line is used as given, challenger or not
    given = scoring.load_scorer(str(folder), tmp_path / "unused", store)
    assert (given.version, given.challenger) == (f"{NAME}/2", None)
    np.testing.assert_allclose(given.model.predict_proba(labelled[0]), worse_model.predict_proba(labelled[0]))


def test_when_the_newest_is_the_champion_it_scores_and_the_challenger_columns_are_empty(
    store, book, model, worse_model, labelled, tmp_path
):
    train_into(tmp_path / "first", worse_model, "fp-worse", store, labelled)  # the first is champion
    folder = tmp_path / "models"
    newest = train_into(folder, model, "fp-good", store, labelled)  # better: the champion moves
    assert (newest["version"], newest["alias"]) == ("2", CHAMPION)
    horizon, _ = scoring.load_scorers(None, None, folder, tmp_path / "no-renewal", store, "horizon")
    assert (horizon.version, horizon.challenger) == (f"{NAME}/2", None)
    at_risk = scoring.build_scores(book, AS_OF, horizon.model, horizon.version, PARAMS, SCORE_PARAMS, PLAYBOOK).at_risk
    assert (at_risk["model_version"] == f"{NAME}/2").all()
    assert at_risk["challenger_risk"].isna().all() and at_risk["challenger_version"].isna().all()
    np.testing.assert_allclose(
        at_risk.set_index("account_id")["churn_probability"],
        churn_at_as_of(book, model).loc[at_risk["account_id"]].round(4),
        atol=1e-4,
    )


def test_without_a_store_the_folders_model_scores_as_trained(small_model, tmp_path, caplog):
    small_model.save(tmp_path)
    run = {"run_id": "r", "registered_model": NAME, "version": "3", "alias": CHALLENGER}
    (tmp_path / tracking.RUN_FILE).write_text(json.dumps(run))
    missing = tmp_path / "no-store" / "mlflow.db"
    scorer = scoring.load_scorer(None, tmp_path, f"sqlite:///{missing}")
    assert (scorer.version, scorer.challenger) == (f"{NAME}/3", None)
    assert not missing.exists()  # looking for the registry did not create an empty one
    assert "no MLflow store" in caplog.text and "challenger" in caplog.text


def test_a_challenger_on_another_event_vocabulary_is_scored_on_features_of_its_own(book, model, train_params):
    fewer = feature_params(usage={"max_event_types": 1})
    frame, catalog = build_features(book, None, fewer)
    labelled = frame[frame["label"].notna()]
    in_valid = labelled["account_id"].str[-1].isin(["0", "3", "6"])
    parts = {"train": labelled[~in_valid], "valid": labelled[in_valid]}
    params = with_tuning(train_params, num_boost_round=60, early_stopping_rounds=20)
    other = train_model(parts, catalog, catalogue_hash(catalog), params, Windows(AS_OF, AS_OF, AS_OF, AS_OF))
    assert other.vocabulary != model.vocabulary
    challenger = scoring.Scorer(other, f"{NAME}/9")
    at_risk = scoring.build_scores(book, AS_OF, model, VERSION, PARAMS, SCORE_PARAMS, PLAYBOOK, challenger=challenger)
    at_risk = at_risk.at_risk.set_index("account_id")
    expected = churn_at_as_of(book, other).loc[at_risk.index]
    np.testing.assert_allclose(at_risk["challenger_risk"], expected.round(4), atol=1e-4)
    np.testing.assert_allclose(
        at_risk["churn_probability"], churn_at_as_of(book, model).loc[at_risk.index].round(4), atol=1e-4
    )
