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
