"""The pipeline off its home demo: the second simulated world (product-led, churn driven by event-type levels).

All tests read one `dvc repro evaluate` on `churn demo-data --world usage` (the ``usage_world_run``
fixture), with the project's params unchanged but for the export folder.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from features.catalogue import catalogue_from_json
from models import explain
from models.train import ChurnModel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(usage_world_run):
    root = usage_world_run
    return {
        "root": root,
        "metrics": json.loads((root / "reports/metrics.json").read_text()),
        "catalog": json.loads((root / "data/processed/feature_catalog.json").read_text()),
        "model": ChurnModel.load(root / "data/models"),
        "features": pd.read_parquet(root / "data/processed/features.parquet"),
        "truth": pd.read_csv(root / "data/ground_truth/usage/accounts_truth.csv", dtype={"account_id": "string"}),
    }


def test_model_beats_both_baselines_on_the_usage_world(world):
    metrics = world["metrics"]
    for target, section in (("90 days", metrics), ("renewal", metrics["renewal"])):
        line = ", ".join(
            f"{name} ROC AUC {section[name]['roc_auc']:.4f} Brier {section[name]['brier']:.4f}"
            for name in ("model", "logistic", "health", "calendar")
        )
        print(f"\nusage world test window ({target}): {line}")
    print(f"chosen setting: {world['model'].metadata.get('tuning', {}).get('chosen')}")
    assert metrics["model"]["roc_auc"] > metrics["logistic"]["roc_auc"]
    assert metrics["model"]["roc_auc"] > metrics["health"]["roc_auc"]
    assert metrics["model"]["brier"] < min(metrics["logistic"]["brier"], metrics["health"]["brier"])


def test_the_catalogue_learned_the_worlds_event_types_and_dropped_what_it_lacks(world):
    catalog = world["catalog"]
    assert set(catalog["dropped_families"]) == {"responsiveness", "qbr", "support", "voice"}
    learned = [f for f in catalog["features"] if f.get("learned")]
    event_types = catalog["vocabulary"]["usage_events"]["event_types"]
    assert len(event_types) == 8 and len(learned) == 4 * 8  # eight types, no pool of the rest
    assert {"report_viewed", "invite_sent", "integration_synced"} <= set(event_types)
    directions = world["model"].metadata["learned_directions"]
    assert directions["events_report_viewed_per_user_30d"] == -1  # fewer reports per user: more risk


def test_reasons_name_the_event_type_that_drove_the_churn(world):
    """Churned accounts explained 2-8 weeks before churn: the driving event type among the top three reasons."""
    model, features = world["model"], world["features"]
    windows = model.metadata["windows"]
    test = features[features["snapshot_date"].between(pd.Timestamp(windows["test_start"]), pd.Timestamp(windows["test_end"]))]
    churned = test[test["label"] == 1]
    lead = (churned["churn_date"] - churned["snapshot_date"]).dt.days
    last = churned[(lead >= 14) & (lead <= 56)].sort_values("snapshot_date").groupby("account_id").tail(1)
    truth = world["truth"].set_index("account_id")["dominant_driver"]
    event_types = set(world["catalog"]["vocabulary"]["usage_events"]["event_types"])
    last = last[last["account_id"].map(truth).isin(event_types).to_numpy()]
    specs = model.reason_specs({s.name: s for s in catalogue_from_json(world["catalog"])})
    contrib = explain.shap_contributions(model, last)
    reasons = explain.top_reasons(model.matrix(last), contrib, specs, model.metadata["retained_reference"], top=3)
    said = reasons[["reason_1", "reason_2", "reason_3"]].fillna("")
    hit = [
        any(text.startswith(f"{truth[a]} ") for text in said.loc[i]) for i, a in zip(last.index, last["account_id"])
    ]
    share = sum(hit) / max(len(hit), 1)
    print(f"\nusage world fidelity: {share:.1%} of {len(hit)} churned accounts have their driving event type in the top 3")
    assert len(hit) >= 20
    assert share >= 0.5
