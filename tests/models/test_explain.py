"""SHAP contributions, reasons grouped by signal family, and what changed in a week."""

import numpy as np
import pandas as pd
import pytest

from features.catalogue import catalogue_from_json
from models import explain


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
