"""`churn bench` on a tiny book: the report has every stage, positive figures and the floor.

Only the first three stages run (demo_data, ingest, features), on 100 accounts, so the test
stays fast; train/evaluate/score go through the same measured-subprocess path.
No timing is asserted: only that the figures exist and are positive.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipelines.devtools import bench

STAGES = ("demo_data", "ingest", "features")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    scratch = tmp_path_factory.mktemp("scratch")
    doc = bench.main(sizes=[100], out=out, scratch=scratch, stages=STAGES)
    return doc, out


@pytest.mark.slow
def test_report_is_written_and_matches_what_main_returns(report) -> None:
    doc, out = report
    assert json.loads(out.read_text()) == json.loads(json.dumps(doc))
    assert doc["machine"]["cpus"] >= 1


@pytest.mark.slow
def test_every_stage_is_measured_with_positive_figures(report) -> None:
    size = report[0]["sizes"][0]
    assert size["accounts"] == 100
    assert [s["stage"] for s in size["stages"]] == list(STAGES)
    for stage in size["stages"]:
        assert stage["seconds"] > 0 and stage["peak_rss_mb"] > 10, stage
        assert stage["rows_out"] > 0 and stage["rows_per_s"] > 0, stage
    ingest = size["stages"][1]
    features = size["stages"][2]
    assert size["stages"][0]["rows_out"] == ingest["rows_in"] >= ingest["rows_out"]
    assert features["rows_in"] == ingest["rows_out"]
    assert any(name.startswith("adoption") for name in features["notes"])


@pytest.mark.slow
def test_floor_reads_every_row_once_and_features_are_compared_to_it(report) -> None:
    size = report[0]["sizes"][0]
    assert size["floor"]["seconds"] > 0
    assert size["floor"]["rows_in"] == size["stages"][1]["rows_out"]  # every kept canonical row, once
    assert 0 < size["floor"]["rows_out"] <= size["floor"]["rows_in"]
    assert size["features_over_floor"] > 0
    assert size["peak_rss_mb"] == max(s["peak_rss_mb"] for s in size["stages"])


def test_scratch_params_keep_every_path_inside_the_scratch_folder(tmp_path) -> None:
    params = bench.scratch_params(tmp_path, 321)
    import yaml

    doc = yaml.safe_load(params.read_text())
    assert doc["demo"]["accounts"] == 321
    for key, value in doc["paths"].items():
        if key != "playbook":
            assert Path(value).is_relative_to(tmp_path), key
    assert Path(doc["paths"]["playbook"]).is_absolute()
    assert Path(doc["data"]["export_dir"]).is_relative_to(tmp_path)


@pytest.mark.slow
def test_failed_stage_raises_with_its_log(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="exit code 3"):
        bench.run_measured(["sh", "-c", "echo boom; exit 3"], dict(os.environ), tmp_path / "x.log")


def test_growth_is_the_log_log_slope_of_each_stage_over_the_sizes() -> None:
    def size(accounts: int, features: float, ingest_peak: float) -> dict:
        return {
            "accounts": accounts,
            "stages": [
                {"stage": "features", "seconds": features, "peak_rss_mb": 500.0},
                {"stage": "ingest", "seconds": 3.0, "peak_rss_mb": ingest_peak},
            ],
        }

    sizes = [size(1_000, 2.0, 100.0), size(10_000, 20.0, 1_000.0), size(100_000, 200.0, 10_000.0)]
    got = bench.growth(sizes)
    assert got["features"]["time_slope"] == 1.0 and got["features"]["memory_slope"] == 0.0  # linear; flat
    assert got["ingest"]["time_slope"] == 0.0 and got["ingest"]["memory_slope"] == 1.0
    assert got["features"]["seconds"] == [2.0, 20.0, 200.0]
    assert "1.00" in bench.format_growth({"growth": got}) and bench.growth(sizes[:1]) == {}
