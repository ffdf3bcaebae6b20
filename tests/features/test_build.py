import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from canonical_frames import feature_params, random_export

from features.build import all_specs, build_features
from features.catalogue import catalogue_from_json
from features.errors import InputError
from features.snapshots import LABEL_COLUMNS
from features.usage import Vocabulary, vocabulary_specs

PARAMS = feature_params(first_snapshot="2024-03-04")


@pytest.fixture(scope="module")
def export():
    return random_export(n_accounts=5, seed=3, days=300)


def test_columns_dtypes_and_catalogue_agree(export):
    frame, doc = build_features(export, None, PARAMS)
    specs = catalogue_from_json(json.loads(json.dumps(doc)))
    assert list(frame.columns) == ["account_id", "snapshot_date", *LABEL_COLUMNS] + [s.name for s in specs]
    assert [s.name for s in specs if not s.learned] == [s.name for s in all_specs()]
    vocabulary = Vocabulary.from_dict(doc["vocabulary"]["usage_events"])
    assert [s.name for s in specs if s.learned] == [s.name for s in vocabulary_specs(vocabulary) if s.learned]
    for spec in specs:
        expected = "category" if spec.dtype == "category" else "float64"
        assert str(frame[spec.name].dtype) == expected, spec.name
    assert not frame.duplicated(["account_id", "snapshot_date"]).any()
    assert doc["dropped_families"] == {} and doc["snapshots"]["horizon_days"] == 90
    assert frame["snapshot_date"].min() == pd.Timestamp("2024-03-04")


def test_names_follow_the_style_and_are_unique():
    names = [s.name for s in all_specs()]
    assert len(names) == len(set(names))
    assert all(n == n.lower() and " " not in n for n in names)


def test_absent_optional_tables_drop_their_families(export):
    tables = {k: v for k, v in export.items() if k not in ("emails", "usage_events")}
    frame, doc = build_features(tables, ["2024-09-02"], PARAMS)
    assert set(doc["dropped_families"]) == {"responsiveness", "adoption", "usage"}
    assert "proactive_touch_count_90d" in doc["dropped_features"]  # support keeps its ticket features
    assert not any(c.startswith(("reply_", "usage_", "events_")) for c in frame.columns)
    assert doc["vocabulary"] == {}
    assert "ticket_open_count" in frame.columns


def test_explicit_snapshot_dates(export):
    frame, doc = build_features(export, ["2024-09-09", "2024-09-02"], PARAMS)
    assert sorted(frame["snapshot_date"].dt.strftime("%Y-%m-%d").unique()) == ["2024-09-02", "2024-09-09"]
    assert doc["snapshots"]["explicit_dates"] is True


def test_context_is_categorical(export):
    frame, _ = build_features(export, ["2024-09-02"], PARAMS)
    regions = export["accounts"].set_index("account_id")["region"]
    assert list(frame["account_region_category"].cat.categories) == sorted(regions.unique())
    for row in frame.itertuples():
        assert row.account_region_category == regions[row.account_id]


def test_missing_required_table_or_column_is_an_input_error(export):
    with pytest.raises(InputError, match="contracts"):
        build_features({"accounts": export["accounts"]}, None, PARAMS)
    broken = dict(export, emails=export["emails"].drop(columns=["thread_id"]))
    with pytest.raises(InputError, match="emails: missing column"):
        build_features(broken, None, PARAMS)


def test_parquet_tables_and_account_batches_give_the_same_features(tmp_path):
    """The stage's path (event tables scanned in place, per-account families in batches of accounts)
    computes exactly what the in-memory path does."""
    from features.build import account_batches
    from pipelines.canonical import read_tables

    export = random_export(n_accounts=12, seed=5, days=300)
    for name, frame in export.items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    expected, expected_doc = build_features(export, None, PARAMS)
    batch_rows = max(len(export["emails"]) // 4, 1)
    assert len(account_batches(expected, len(export["emails"]), batch_rows)) >= 4
    one_date = expected[expected["snapshot_date"] == expected["snapshot_date"].max()]
    assert len(account_batches(one_date, len(export["emails"]), batch_rows)) == 1  # one date: ~1/13 of the rows held
    got, doc = build_features(read_tables(tmp_path), None, PARAMS, batch_rows=batch_rows)
    pd.testing.assert_frame_equal(got, expected)
    assert doc == expected_doc


def test_the_stage_writes_the_same_table_batch_by_batch_in_account_order(tmp_path):
    """``write_features`` (the stage: one row group per batch of accounts, never the whole table in
    memory) reads back as ``build_features``' frame: same rows, order, dtypes and values."""
    from features.build import plan_features, write_features
    from pipelines.canonical import read_tables

    export = random_export(n_accounts=12, seed=5, days=300)
    for name, frame in export.items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    expected, expected_doc = build_features(export, None, PARAMS)
    plan = plan_features(read_tables(tmp_path), None, PARAMS)
    rows = write_features(plan, tmp_path / "features.parquet", batch_rows=max(len(export["usage_events"]) // 4, 1))
    written = pq.ParquetFile(tmp_path / "features.parquet")
    assert rows == len(expected) and written.metadata.num_row_groups >= 4
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "features.parquet"), expected)
    assert plan.doc == expected_doc
    keys = list(zip(expected["account_id"], expected["snapshot_date"]))
    assert keys == sorted(keys)  # ordered by account, then snapshot: a batch of accounts is a run of rows


def test_an_overdue_renewal_is_in_the_grid_with_its_overdue_days_and_label():
    from canonical_frames import accounts, contracts

    tables = {
        "accounts": accounts({"account_id": "O"}, {"account_id": "R"}),
        "contracts": contracts(
            {"account_id": "O", "start_date": "2025-01-01", "end_date": "2025-06-30"},  # never renewed
            {"account_id": "R", "start_date": "2025-01-01", "end_date": "2025-06-30"},
            {"account_id": "R", "start_date": "2025-07-10", "end_date": "2026-07-10"},  # renewed 10 days late
        ),
    }
    days = ["2025-06-30", "2025-07-01", "2025-07-10", "2025-07-11", "2025-07-30", "2025-07-31"]
    frame, _ = build_features(tables, days, PARAMS, export_end=pd.Timestamp("2026-12-31"))
    rows = {(r.account_id, r.snapshot_date.strftime("%Y-%m-%d")): r for r in frame.itertuples()}
    o = [rows[("O", d)] for d in days[:5]]
    assert ("O", "2025-07-31") not in rows  # the grace period is over
    assert [r.renewal_overdue_days for r in o] == [0, 1, 10, 11, 30]
    assert o[0].renewal_countdown_days == 0 and all(pd.isna(r.renewal_countdown_days) for r in o[1:])
    assert [r.label for r in o] == [1] * 5 and {r.churn_date for r in o} == {pd.Timestamp("2025-06-30")}
    r = [rows[("R", d)] for d in days]
    assert [x.renewal_overdue_days for x in r] == [0, 1, 10, 0, 0, 0]
    assert [x.label for x in r] == [0] * 6
