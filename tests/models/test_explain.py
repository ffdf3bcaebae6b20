"""SHAP contributions, reasons grouped by signal family, and what changed in a week."""

import numpy as np
import pandas as pd
import pytest

from features.catalogue import catalogue_from_json, catalogue_hash, catalogue_to_json
from models import explain
from models.train import split_out_of_time, train_model


@pytest.fixture(scope="module")
def trained(synthetic, synthetic_parts, synthetic_model):
    specs = {s.name: s for s in catalogue_from_json(synthetic[1])}
    return synthetic_parts, synthetic_model, specs


def test_contributions_plus_base_value_equal_the_raw_score(trained):
    parts, model, _ = trained
    rows = parts["test"].head(500)
    contrib = explain.shap_contributions(model, rows)
    assert np.allclose(contrib.values.sum(axis=1) + contrib.base_value, model.raw_score(rows), atol=1e-9)


def test_lightgbm_pred_contrib_gives_the_same_numbers_as_shap_tree_explainer(trained):
    import shap

    parts, model, _ = trained
    rows = parts["test"].head(300)
    ours = explain.shap_contributions(model, rows)
    explainer = shap.TreeExplainer(model.booster)
    theirs = np.asarray(explainer.shap_values(model.matrix(rows)))
    assert np.allclose(ours.values.to_numpy(), theirs, atol=1e-9)
    assert np.isclose(ours.base_value, float(np.ravel(explainer.expected_value)[0]))


def test_reasons_are_worded_from_the_catalogue_with_value_and_reference(trained):
    parts, model, specs = trained
    rows = parts["test"].copy()
    slow = rows[rows["reply_latency_median_hours_90d"] > 60].head(50)
    contrib = explain.shap_contributions(model, slow)
    references = explain.reference_values(parts["train"], specs)
    reasons = explain.top_reasons(model.matrix(slow), contrib, specs, references, top=3)
    signals = reasons[["signal_1", "signal_2", "signal_3"]]
    assert (signals == "responsiveness").any(axis=1).mean() > 0.9
    assert "context" not in set(signals.stack())  # region/segment are never a reason
    first = reasons.loc[(signals["signal_1"] == "responsiveness")].iloc[0]["reason_1"]
    assert first.startswith("Customer e-mails wait ") and "; retained accounts: " in first


def test_what_changed_names_the_family_whose_contribution_rose_most():
    now = pd.DataFrame(
        {"qbr": [0.5, 0.1, 0.0], "support": [0.1, 0.0, 0.2], "context": [9.0, 9.0, 9.0]}, index=["a", "b", "c"]
    )
    before = pd.DataFrame({"qbr": [0.1, 0.3], "support": [0.1, 0.1], "context": [0.0, 0.0]}, index=["a", "b"])
    changed = explain.what_changed(now, before)
    assert changed["a"] == "No recent business review"
    assert changed["b"] == "no signal worsened"
    assert changed["c"] == "new this week"


# ---------------------------------------------------------------- learned usage metrics


@pytest.fixture(scope="module")
def learned(train_params):
    """A book where few "posts" and many "errors" mean churn, and "logins" mean nothing; the model is not told which."""
    from features.usage import SPECS as ACCOUNT_SPECS
    from features.usage import Vocabulary, vocabulary_specs
    from tests.models.conftest import WINDOWS

    vocabulary = Vocabulary(("posts", "errors", "logins"), False)
    specs = vocabulary_specs(vocabulary)
    rng = np.random.default_rng(5)
    snaps = pd.date_range("2024-10-07", "2026-07-20", freq="7D")
    accounts = 300
    n = accounts * len(snaps)
    level = {
        kind: np.repeat(rng.gamma(2.0, 10.0, accounts), len(snaps)) * rng.lognormal(0, 0.2, n)
        for kind in vocabulary.event_types
    }
    logit = -4.5 + 2.5 * (level["posts"] < 8) + 2.0 * (level["errors"] > 30)
    frame = pd.DataFrame(
        {
            "account_id": pd.array(np.repeat([f"A{i:04d}" for i in range(accounts)], len(snaps)), dtype="string"),
            "snapshot_date": np.tile(snaps, accounts),
            "label": pd.array((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int), dtype="Int8"),
            "churn_date": pd.NaT,
        }
    )
    users = rng.integers(1, 6, n).astype(float)
    for spec in ACCOUNT_SPECS:
        frame[spec.name] = users
    for kind in vocabulary.event_types:
        frame[f"events_{kind}_30d"] = np.round(level[kind])
        frame[f"events_{kind}_90d"] = np.round(3 * level[kind] * rng.lognormal(0, 0.1, n))
        frame[f"events_{kind}_per_user_30d"] = np.round(level[kind]) / users
        frame[f"events_{kind}_trend_30d"] = rng.lognormal(0, 0.2, n)
    frame.loc[frame["snapshot_date"] > "2026-07-01", "label"] = pd.NA
    catalog = catalogue_to_json(specs, {})
    catalog["vocabulary"] = {"usage_events": vocabulary.as_dict()}
    parts = split_out_of_time(frame, WINDOWS)
    model = train_model(parts, catalog, catalogue_hash(catalog), train_params, WINDOWS)
    return parts, model, {s.name: s for s in specs}


def test_learned_features_are_unconstrained_and_take_the_direction_the_model_shows(learned):
    _, model, specs = learned
    constraints = dict(zip(model.features, model.metadata["lightgbm_params"]["monotone_constraints"]))
    assert all(constraints[name] == 0 for name, spec in specs.items() if spec.learned)
    assert constraints["usage_active_days_30d"] == -1  # the account-level metrics keep the playbook's direction
    directions = model.metadata["learned_directions"]
    assert directions["events_posts_30d"] == -1 and directions["events_errors_30d"] == 1
    assert model.metadata["vocabulary"] == {
        "usage_events": {"event_types": ["posts", "errors", "logins"], "other": False}
    }
    reason_specs = model.reason_specs(specs)
    assert reason_specs["events_errors_30d"].risk_direction == 1 and specs["events_errors_30d"].risk_direction == 0


def test_an_event_type_is_one_reason_and_never_more_than_three(learned):
    parts, model, specs = learned
    rows = parts["test"]
    risky = rows[(rows["events_posts_30d"] < 6) & (rows["events_errors_30d"] > 35)].head(40)
    assert len(risky) >= 10
    contrib = explain.shap_contributions(model, risky)
    references = model.metadata["retained_reference"]
    reasons = explain.top_reasons(model.matrix(risky), contrib, model.reason_specs(specs), references, top=3)
    texts = reasons[["reason_1", "reason_2", "reason_3"]]
    for _, row in texts.iterrows():
        said = [t for t in row if pd.notna(t)]
        assert len(said) <= 3
        assert sum(t.startswith("posts ") for t in said) == 1 and sum(t.startswith("errors ") for t in said) == 1
    assert texts["reason_1"].str.contains("; retained accounts: ").all()
    # without the model's directions, a learned metric has no risky side and is never a reason
    plain = explain.top_reasons(model.matrix(risky), contrib, specs, references, top=3)
    assert not plain[["reason_1", "reason_2", "reason_3"]].stack().str.startswith(("posts ", "errors ")).any()
