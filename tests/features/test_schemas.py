import pandas as pd
import pandera.errors
import pytest

from features.schemas import REQUIRED_TABLES, SCHEMAS, TABLES, contract_markdown, empty_table


def test_required_tables_are_accounts_and_contracts():
    assert set(REQUIRED_TABLES) == {"accounts", "contracts"}


@pytest.mark.parametrize("name", list(TABLES))
def test_empty_tables_validate_against_their_schema(name):
    SCHEMAS[name].validate(empty_table(name))


def test_contract_schema_rejects_negative_arr_and_unknown_status():
    frame = pd.DataFrame(
        {
            "contract_id": ["c1", "c2"],
            "account_id": ["a1", "a1"],
            "start_date": ["2025-01-01", "2026-01-01"],
            "end_date": ["2025-12-31", "2026-12-31"],
            "arr": [-5.0, 100.0],
            "seats": [10, 10],
            "status": ["ended", "paused"],
            "cancel_date": [None, None],
        }
    )
    with pytest.raises(pandera.errors.SchemaErrors) as err:
        SCHEMAS["contracts"].validate(frame, lazy=True)
    failed = set(err.value.failure_cases["column"])
    assert {"arr", "status"} <= failed


def test_the_readme_contract_names_every_column():
    text = contract_markdown()
    for table in TABLES.values():
        for column in table.columns:
            assert f"`{column.name}`" in text
