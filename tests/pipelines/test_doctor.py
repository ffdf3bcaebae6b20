"""`churn doctor` as a library: column sources, guesses by name and shape, the sample ingest, the starter mapping."""

from pathlib import Path

import pandas as pd
import pytest

from features.errors import InputError
from features.schemas import TABLES
from pipelines.ingestion import doctor
from pipelines.ingestion.presets import load_mapping

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _write(folder: Path, name: str, frame: pd.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / f"{name}.csv", index=False)


@pytest.fixture
def inhouse(tmp_path) -> Path:
    """A tiny in-house export: canonical file names, home-grown column names, one bad contract row."""
    export = tmp_path / "2025-06-30"
    _write(
        export,
        "accounts",
        pd.DataFrame(
            {
                "Company ID": ["A1", "A2", "A3"],
                "acct_name": ["Jane Doe Ltd", "Acme", "Initech"],
                "Customer Since": ["2024-01-05", "2024-02-01", "2024-03-09"],
                "Tier": ["SMB", "Enterprise", "SMB"],
            }
        ),
    )
    _write(
        export,
        "contracts",
        pd.DataFrame(
            {
                "Contract No": ["C1", "C2", "C3", "C4"],
                "Company ID": ["A1", "A2", "A3", "A9"],
                "ContractStart": ["2024-01-05", "2024-02-01", "2024-03-09", "2024-03-09"],
                "ContractEnd": ["2025-01-04", "2025-01-31", "2025-03-08", "2025-03-08"],
                "Annual Amount": ["1000", "52000.5", "800", "10"],
                "Contract Status": ["Ended", "Active", "Cancelled", "Active"],
            }
        ),
    )
    return export


def _column(diagnosis, table: str, column: str):
    verdict = next(t for t in diagnosis.tables if t.table.name == table)
    return next(c for c in verdict.columns if c.column.name == column)


def test_normalise_strips_crm_decorations():
    assert doctor.normalise("Customer_Segment__c") == "customer segment"
    assert doctor.normalise("hs_object_id") == "object id"
    assert doctor.normalise("ContractStart") == "contract start"
    assert doctor.tokens("Company ID") == {"account", "id"}


def test_shape_rules_out_a_column_whose_values_cannot_fit():
    dates = TABLES["contracts"].column("start_date")
    assert doctor.score_candidate(pd.Series(["2024-01-05"] * 3), "ContractStart", dates, "contracts").score > 0.9
    assert doctor.score_candidate(pd.Series(["gold", "x", "y"]), "ContractStart", dates, "contracts").score == 0
    cancel = TABLES["contracts"].column("cancel_date")
    assert doctor.score_candidate(pd.Series(["2024-01-05"]), "createdate", cancel, "contracts").score == 0


def test_renamed_columns_are_guessed_and_block_the_canonical_preset(inhouse):
    diagnosis = doctor.diagnose(inhouse, "canonical")
    assert not diagnosis.would_run
    assert _column(diagnosis, "accounts", "account_id").source == "Company ID"
    assert _column(diagnosis, "accounts", "created_date").source == "Customer Since"
    assert _column(diagnosis, "contracts", "start_date").source == "ContractStart"
    assert _column(diagnosis, "contracts", "end_date").source == "ContractEnd"
    assert _column(diagnosis, "contracts", "arr").source == "Annual Amount"
    status = _column(diagnosis, "contracts", "status")
    assert status.source == "Contract Status" and status.vocabulary == ["Active", "Cancelled", "Ended"]
    text = doctor.render(diagnosis)
    assert "verdict: ingest would NOT run" in text
    assert "Jane Doe" not in text and "Acme" not in text  # no personal or company data printed


def test_starter_mapping_makes_ingest_run_and_counts_rejects(inhouse, tmp_path):
    mapping = tmp_path / "mapping.yaml"
    doctor.write_starter_mapping(doctor.diagnose(inhouse, "canonical"), "canonical", mapping)
    assert "# guess: score" in mapping.read_text()
    load_mapping(mapping)  # a valid mapping file
    diagnosis = doctor.diagnose(inhouse, mapping)
    assert diagnosis.would_run, diagnosis.problems
    contracts = next(t for t in diagnosis.tables if t.table.name == "contracts")
    assert contracts.sample == 4 and contracts.sample_kept == 3
    assert sum(contracts.sample_rejected.values()) == 1  # the unknown account A9, by the real row rules
    assert contracts.date_range == ("2024-01-05", "2024-03-09")
    assert doctor.render(diagnosis).splitlines()[-1] == "verdict: ingest would run"


@pytest.mark.parametrize(("folder", "preset"), [("salesforce_standard", "salesforce"), ("hubspot_portal", "hubspot")])
def test_vendor_fixtures_ingest_with_their_preset(folder, preset):
    diagnosis = doctor.diagnose(FIXTURES / folder, preset)
    assert diagnosis.would_run, diagnosis.problems
    accounts = diagnosis.tables[0]
    assert accounts.rows == 30 and accounts.sample_kept == 30
    arr = _column(diagnosis, "contracts", "arr")
    assert arr.status in ("mapped", "lookup")


def test_missing_required_table_is_a_problem_not_a_traceback(tmp_path):
    _write(tmp_path / "x", "notes", pd.DataFrame({"a": [1]}))
    diagnosis = doctor.diagnose(tmp_path / "x", "canonical")
    assert "required table accounts: no file found" in diagnosis.problems
    with pytest.raises(InputError):
        doctor.diagnose(tmp_path / "missing", "canonical")


def test_row_count_of_csv_and_parquet(tmp_path):
    frame = pd.DataFrame({"a": range(5)})
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_parquet(tmp_path / "a.parquet")
    assert doctor.count_rows(tmp_path / "a.csv") == (5, False)
    assert doctor.count_rows(tmp_path / "a.parquet") == (5, True)


def test_cli_exit_codes(inhouse, tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    runner = CliRunner()
    missing = runner.invoke(app, ["doctor", "--export", str(tmp_path / "nope"), "--preset", "canonical"])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    blocked = runner.invoke(app, ["doctor", "--export", str(inhouse), "--preset", "canonical"])
    assert blocked.exit_code == 1 and "verdict: ingest would NOT run" in blocked.output
