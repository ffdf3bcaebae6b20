"""The registry gate, on a real MLflow store in the test's temporary folder (the mlflow_store fixture)."""

import pytest

from features.errors import InputError
from models import tracking
from models.tracking import CHALLENGER, CHAMPION, decide_alias


def test_first_model_becomes_champion():
    assert decide_alias({"roc_auc": 0.8, "brier": 0.1}, None).alias == CHAMPION


@pytest.mark.parametrize(
    "new, alias",
    [
        ({"roc_auc": 0.85, "brier": 0.09}, CHAMPION),  # better on both
        ({"roc_auc": 0.80, "brier": 0.10}, CHAMPION),  # equal is no worse
        ({"roc_auc": 0.90, "brier": 0.11}, CHALLENGER),  # worse Brier
        ({"roc_auc": 0.79, "brier": 0.05}, CHALLENGER),  # worse AUC
    ],
)
def test_champion_moves_only_when_no_worse_on_both(new, alias):
    decision = decide_alias(new, {"roc_auc": 0.80, "brier": 0.10})
    assert decision.alias == alias
    assert decision.champion == {"roc_auc": 0.80, "brier": 0.10}


def test_unreachable_tracking_server_is_one_line_naming_the_uri(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(InputError) as err:
        tracking.connect("http://127.0.0.1:9")
    message = str(err.value)
    assert "http://127.0.0.1:9" in message and "\n" not in message


def test_sqlite_store_and_experiment_artifacts_live_beside_the_database(tmp_path, mlflow_store):
    uri = tracking.resolve_tracking_uri(tmp_path / "unused.db")  # MLFLOW_TRACKING_URI: the test's own store
    assert uri == mlflow_store
    client = tracking.connect(uri)
    experiment_id = tracking.ensure_experiment(client, "churn", uri)
    assert tracking.ensure_experiment(client, "churn", uri) == experiment_id
    location = client.get_experiment(experiment_id).artifact_location
    assert location.endswith("mlartifacts") and str(tmp_path) in location
    assert tracking.champion_version(client, "churn-lgbm") is None
