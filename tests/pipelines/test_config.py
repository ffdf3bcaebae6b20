from pathlib import Path

import pytest

from pipelines.config import ConfigError, load_settings

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def test_params_yaml_loads_with_gaps_of_at_least_the_horizon():
    s = load_settings(PARAMS)
    horizon = s.features.horizon_days
    assert (s.train.valid_start - s.train.train_end).days >= horizon
    assert (s.train.test_start - s.train.valid_end).days >= horizon


def test_a_misspelt_key_fails_with_its_name(tmp_path):
    text = PARAMS.read_text().replace("horizon_days:", "horizon_dayz:")
    bad = tmp_path / "params.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match="horizon_dayz"):
        load_settings(bad)


def test_a_gap_shorter_than_the_horizon_is_refused(tmp_path):
    text = PARAMS.read_text().replace('valid_start: "2025-09-29"', 'valid_start: "2025-07-15"')
    bad = tmp_path / "params.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match="valid_start"):
        load_settings(bad)


@pytest.mark.parametrize(
    "key",
    [
        "train.num_leaves",
        "features.horizon_days",
        "score.tiers",
        "demo.seed",
        "data.export_date",
        "data.max_rejected_share",
    ],
)
def test_a_missing_key_is_a_one_line_error_naming_it(tmp_path, key):
    """params.yaml is the one place a value is set: deleting a key must not fall back to a code default."""
    import yaml

    section, name = key.split(".")
    raw = yaml.safe_load(PARAMS.read_text())
    del raw[section][name]
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=rf"{key}: missing") as error:
        load_settings(bad)
    assert "\n" not in str(error.value)


def test_runtime_settings_are_apart_from_those_that_change_results():
    s = load_settings(PARAMS)
    assert s.runtime.ingest.chunk_rows > 0 and s.runtime.features.batch_rows > 0
    assert "chunk_rows" not in s.data.model_fields and "batch_rows" not in s.features.model_fields


def test_rejection_limits_default_with_a_tables_own_and_misspelt_tables_refused(tmp_path):
    import yaml

    from features.schemas import TABLES

    s = load_settings(PARAMS)
    assert s.data.export_date is None  # inferred from the export's bulk
    assert s.data.max_rejected_share.per_table() == dict.fromkeys(TABLES, 0.05)
    raw = yaml.safe_load(PARAMS.read_text())
    raw["data"]["max_rejected_share"] = {"default": 0.05, "usage_events": 0.2}
    raw["data"]["export_date"] = "2025-06-30"
    good = tmp_path / "params.yaml"
    good.write_text(yaml.safe_dump(raw))
    s = load_settings(good)
    assert s.data.max_rejected_share.per_table()["usage_events"] == 0.2
    assert s.data.max_rejected_share.per_table()["emails"] == 0.05
    assert str(s.data.export_date) == "2025-06-30"
    for bad_limits, message in (({"default": 0.05, "usage_event": 0.2}, "usage_event: unknown key"), ({}, "default")):
        raw["data"]["max_rejected_share"] = bad_limits
        good.write_text(yaml.safe_dump(raw))
        with pytest.raises(ConfigError, match=f"data.max_rejected_share.{message}"):
            load_settings(good)
