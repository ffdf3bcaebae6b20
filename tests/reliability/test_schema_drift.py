"""Next week's export changed shape: new columns are noted, dropped or renamed ones are refused in one
line, and a model whose features are no longer produced refuses to score."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.errors import InputError
from models.scoring import check_feature_drift
from pipelines.cli import app


def _ingest(in_tmp, export):
    return CliRunner().invoke(app, ["ingest", "--export", str(export), "--out", str(in_tmp / "interim")])


def _rewrite(path, change):
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    change(frame).to_csv(path, index=False)


def test_an_added_column_is_ignored_and_noted(in_tmp, export_copy):
    _rewrite(export_copy / "contracts.csv", lambda f: f.assign(discount_pct="10"))
    assert _ingest(in_tmp, export_copy).exit_code == 0
    report = json.loads((in_tmp / "reports" / "ingest.json").read_text())["tables"]["contracts"]
    assert report["notes"] == ["columns ignored (not in the mapping): discount_pct"]
    assert "discount_pct" not in pd.read_parquet(in_tmp / "interim" / "contracts.parquet")


def test_a_dropped_required_column_names_file_and_column(in_tmp, export_copy):
    _rewrite(export_copy / "contracts.csv", lambda f: f.drop(columns="arr"))
    result = _ingest(in_tmp, export_copy)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (
        f"error: {export_copy}/contracts.csv: missing required column 'arr' (columns found: contract_id, "
        "account_id, start_date, end_date, seats, status, cancel_date)"
    ) in result.output


def test_a_renamed_column_suggests_the_mapping(in_tmp, export_copy):
    _rewrite(export_copy / "contracts.csv", lambda f: f.rename(columns={"end_date": "contract_end_date"}))
    result = _ingest(in_tmp, export_copy)
    assert result.exit_code == 2
    line = next(x for x in result.output.splitlines() if x.startswith("error:"))
    assert line.startswith(f"error: {export_copy}/contracts.csv: missing required column 'end_date'")
    assert line.endswith(
        "; 'contract_end_date' looks like a renamed 'end_date': rename it back, or pass --preset "
        "with a mapping file that maps contracts.end_date to 'contract_end_date' "
        "(start from pipelines/ingestion/presets/examples/mapping_example.yaml)"
    )


def test_score_refuses_when_a_dropped_family_removed_model_features():
    model = SimpleNamespace(features=["ticket_opened_count_90d", "tenure_length_days"])
    catalog = {"features": [{"name": "tenure_length_days"}], "dropped_families": {"support": "tickets absent"}}
    with pytest.raises(
        InputError,
        match="feature drift: the model needs 1 feature\\(s\\) this export does not "
        "produce, e.g. ticket_opened_count_90d \\(families dropped for this export: "
        "support: tickets absent\\)",
    ):
        check_feature_drift(model, catalog, pd.DataFrame())
