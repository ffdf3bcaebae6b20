import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from models.params import WINDOW_DATES
from pipelines.config import ConfigError, load_settings

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def test_params_yaml_derives_the_windows_and_the_first_snapshot_from_the_export():
    """Nothing in params.yaml is fitted to the demo's calendar: the demo runs with auto for both."""
    s = load_settings(PARAMS)
    assert s.features.first_snapshot == "auto"
    assert s.train.windows == "auto"
    assert s.train.window_weeks.test > 0 and s.train.window_weeks.valid > 0 and s.train.window_weeks.min_train > 0
    assert all(getattr(s.train, key) is None for key in WINDOW_DATES)
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", yaml_sections(PARAMS, "features", "train"))


def yaml_sections(path: Path, *names: str) -> str:
    """The values (comments left out) of some sections of a params file, as YAML text."""
    raw = yaml.safe_load(path.read_text())
    return yaml.safe_dump({name: raw[name] for name in names})


DATES = {
    "train_end": "2025-06-30",
    "valid_start": "2025-09-29",
    "valid_end": "2025-12-29",
    "test_start": "2026-03-30",
    "test_end": None,
}


def with_train(tmp_path: Path, edit) -> Path:
    """params.yaml with its train section edited by ``edit(section)``, written to tmp_path."""
    raw = yaml.safe_load(PARAMS.read_text())
    edit(raw["train"])
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def explicit(section: dict, **dates) -> None:
    section["windows"] = "dates"
    del section["window_weeks"]
    section.update({**DATES, **dates})


def test_explicit_dates_load_with_gaps_of_at_least_the_horizon(tmp_path):
    s = load_settings(with_train(tmp_path, explicit))
    horizon = s.features.horizon_days
    assert s.train.windows == "dates" and s.train.train_end == dt.date(2025, 6, 30) and s.train.test_end is None
    assert (s.train.valid_start - s.train.train_end).days >= horizon
    assert (s.train.test_start - s.train.valid_end).days >= horizon


def test_explicit_dates_with_a_gap_shorter_than_the_horizon_are_refused(tmp_path):
    bad = with_train(tmp_path, lambda t: explicit(t, valid_start="2025-07-15"))
    with pytest.raises(ConfigError, match=r"train\.valid_start must be at least 90 days after train\.train_end$"):
        load_settings(bad)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.update(train_end="2025-06-30"), r"train\.train_end: only read with train\.windows: dates"),
        (lambda t: t.pop("window_weeks"), r"train\.window_weeks: missing"),
        (lambda t: t["window_weeks"].pop("test"), r"train\.window_weeks\.test: missing"),
        (lambda t: t["window_weeks"].update(valid=0), r"train\.window_weeks\.valid: .*greater than or equal to 1"),
        (lambda t: t.update(windows="fixed"), r"train\.windows: Input should be 'auto' or 'dates'"),
        (lambda t: (explicit(t), t.pop("test_end")), r"train\.test_end: missing"),
        (
            lambda t: (
                explicit(t),
                t.update(window_weeks={"test": 13, "valid": 13, "min_train": 26, "min_outcomes": 0}),
            ),
            r"train\.window_weeks: only read with",
        ),
        (lambda t: explicit(t, valid_end="2025-09-01"), r"train\.valid_end must not be before train\.valid_start"),
    ],
)
def test_each_window_mode_takes_its_own_keys_and_refuses_the_other_s(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_settings(with_train(tmp_path, edit))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("value", ["auto", "2024-10-07"])
def test_first_snapshot_is_auto_or_a_date(tmp_path, value):
    raw = yaml.safe_load(PARAMS.read_text())
    raw["features"]["first_snapshot"] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    expected = value if value == "auto" else dt.date.fromisoformat(value)
    assert load_settings(path).features.first_snapshot == expected
    raw["features"]["first_snapshot"] = "soon"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"features\.first_snapshot: a date \(YYYY-MM-DD\) or auto, got 'soon'$"):
        load_settings(path)


def test_a_misspelt_key_fails_with_its_name(tmp_path):
    text = PARAMS.read_text().replace("horizon_days:", "horizon_dayz:")
    bad = tmp_path / "params.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match="horizon_dayz"):
        load_settings(bad)


@pytest.mark.parametrize(
    "key",
    [
        "train.tuning",
        "train.windows",
        "train.window_weeks",
        "features.horizon_days",
        "features.first_snapshot",
        "score.tiers",
        "demo.seed",
        "data.export_date",
        "data.max_rejected_share",
    ],
)
def test_a_missing_key_is_a_one_line_error_naming_it(tmp_path, key):
    """params.yaml is the one place a value is set: deleting a key must not fall back to a code default."""
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


def with_data(tmp_path: Path, **changes) -> Path:
    """params.yaml with keys of its data section changed, written to tmp_path."""
    raw = yaml.safe_load(PARAMS.read_text())
    raw["data"].update(changes)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "changes, source",
    [
        ({}, "demo"),  # the project's params.yaml: auto on the demo export
        ({"export_dir": "./data/raw/demo/"}, "demo"),  # the same folder, spelt otherwise
        ({"export_dir": "/exports/Acme CRM_2026-11-30"}, "acme-crm-2026-11-30"),
        ({"export_dir": "/exports/2026-11-30", "source": "acme"}, "acme"),  # a fixed name for dated folders
        ({"source": "acme"}, "acme"),
    ],
)
def test_registered_names_carry_the_data_source(tmp_path, changes, source):
    s = load_settings(with_data(tmp_path, **changes))
    assert s.source == source
    assert s.registered_names() == {"horizon": f"churn-lgbm-{source}", "renewal": f"churn-renewal-{source}"}


@pytest.mark.parametrize("bad", ["acme/eu", "acme@champion", "", "-acme"])
def test_a_source_that_cannot_be_part_of_a_registered_name_is_refused(tmp_path, bad):
    with pytest.raises(ConfigError, match="data.source"):
        load_settings(with_data(tmp_path, source=bad))


def test_the_data_source_has_no_default(tmp_path):
    raw = yaml.safe_load(PARAMS.read_text())
    del raw["data"]["source"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="data.source"):
        load_settings(path)
