"""Personal data injected into a Salesforce-shaped export never leaves ingest.

A 300-account demo in Salesforce shape gets contact names, e-mail addresses and message
bodies in the columns a real export carries them in (EmailMessage FromAddress, ToAddress,
Subject, TextBody; Case Subject and Description; Event Subject; contact columns on Account;
Segment user ids that are e-mail addresses). The whole pipeline runs on it, then every
output, the MLflow store (SQLite rows and artifact files) and every log line are searched
for each injected value.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT, run

pytestmark = pytest.mark.slow

NAMES = ("Zebulon Quackenbush", "Philippa Ostrowska-Lindqvist")
ADDRESSES = ("zebulon.quackenbush@canary-pii.example", "p.ostrowska@canary-pii.example")
BODIES = ("CANARY-BODY-7f3a our CFO wants a discount before renewal", "CANARY-BODY-91c2 please call me on my mobile")
# each value, and distinctive pieces of it, must appear nowhere downstream
NEEDLES = (*NAMES, *ADDRESSES, *BODIES, "Quackenbush", "Ostrowska", "canary-pii", "CANARY-BODY")
STAGES = (["ingest"], ["features"], ["train"], ["train", "--target", "renewal"], ["evaluate"], ["score"])


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str, keep_default_na=False)


def _write(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False)
    else:
        frame.to_csv(path, index=False)


def _pick(n: int, values: tuple[str, ...]) -> list[str]:
    return [values[i % len(values)] for i in range(n)]


def inject_personal_data(export: Path) -> None:
    """Put names, addresses and bodies where Salesforce and Segment exports carry them."""

    def edit(stem: str, change) -> None:
        path = next(p for p in export.iterdir() if p.name.split(".")[0] == stem)
        frame = _read(path)
        change(frame, len(frame))
        _write(frame, path)

    def emails(f, n):
        f["FromAddress"] = _pick(n, ADDRESSES)
        f["ToAddress"] = _pick(n, ADDRESSES[::-1])
        f["FromName"] = _pick(n, NAMES)
        f["Subject"] = [f"Re: renewal - {name}" for name in _pick(n, NAMES)]
        f["TextBody"] = _pick(n, BODIES)

    def accounts(f, n):
        f["Contact_Name__c"] = _pick(n, NAMES)
        f["Contact_Email__c"] = _pick(n, ADDRESSES)

    def cases(f, n):
        f["Subject"] = [f"Outage reported by {name}" for name in _pick(n, NAMES)]
        f["Description"] = _pick(n, BODIES)
        f["SuppliedEmail"] = _pick(n, ADDRESSES)

    def events(f, n):
        f["Subject"] = f["Subject"].astype(str) + " with " + pd.Series(_pick(n, NAMES), index=f.index)
        f["Description"] = _pick(n, BODIES)

    def tracks(f, n):
        f["userId"] = f["userId"].astype(str) + "." + pd.Series(_pick(n, ADDRESSES), index=f.index)

    edit("EmailMessage", emails)
    edit("Account", accounts)
    edit("Case", cases)
    edit("Event", events)
    edit("segment_tracks", tracks)


def _params(tmp: Path, export: Path) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["paths"]["playbook"] = str(ROOT / params["paths"]["playbook"])
    params["data"].update(export_dir=str(export), preset="salesforce")
    params["train"]["tuning"]["num_boost_round"] = 150  # the scan needs a model, not a good one
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _text_of(path: Path) -> str:
    """What a reader of this file could see: decoded tables for Parquet, raw bytes otherwise."""
    raw = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix == ".parquet":
        raw += pd.read_parquet(path).to_csv(index=False)
    return raw


def _mlflow_rows(db: Path) -> str:
    """Every text value of every table of the MLflow store (params, tags, metric keys, registry)."""
    lines = []
    with sqlite3.connect(db) as con:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in con.execute(f'SELECT * FROM "{table}"'):
                lines.append(f"{table}: " + " | ".join(str(v) for v in row))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def pipeline_on_personal_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("privacy")
    export = tmp / "export"
    params = _params(tmp, export)
    env = {"CHURN_PARAMS": str(params)}
    logs = [
        run(
            [
                "churn",
                "demo-data",
                "--accounts",
                "300",
                "--format",
                "salesforce",
                "--out",
                str(export),
                "--truth",
                str(tmp / "truth"),
            ],
            cwd=tmp,
            env=env,
        )
    ]
    inject_personal_data(export)
    for stage in STAGES:
        logs.append(run(["churn", *stage, "--verbose"], cwd=tmp, env=env))
    return tmp, "\n".join(r.stdout + r.stderr for r in logs[1:])


def test_the_export_really_carries_the_personal_data(pipeline_on_personal_data):
    tmp, _ = pipeline_on_personal_data
    export_text = "".join(_read(p).to_csv(index=False) for p in (tmp / "export").iterdir())
    for needle in NEEDLES:
        assert needle in export_text, needle


def test_no_personal_data_in_outputs_mlflow_or_logs(pipeline_on_personal_data):
    tmp, logs = pipeline_on_personal_data
    outputs = [p for folder in ("data", "reports", "mlartifacts") for p in (tmp / folder).rglob("*") if p.is_file()]
    outputs.append(tmp / "mlflow.db")
    assert any(p.name == "at_risk.csv" for p in outputs) and any(p.name == "model.txt" for p in outputs)
    assert any("mlartifacts" in p.parts for p in outputs), "the MLflow artifacts were not where we looked"
    found = {}
    for path in outputs:
        text = _text_of(path)
        found.update({(str(path.relative_to(tmp)), n): True for n in NEEDLES if n in text})
    mlflow_text = _mlflow_rows(tmp / "mlflow.db")
    found.update({("mlflow.db rows", n): True for n in NEEDLES if n in mlflow_text})
    found.update({("logs", n): True for n in NEEDLES if n in logs})
    assert not found, sorted(found)


def test_ingest_report_names_the_unread_columns_but_never_their_values(pipeline_on_personal_data):
    tmp, _ = pipeline_on_personal_data
    report = json.loads((tmp / "reports" / "ingest.json").read_text())
    notes = " ".join(report["tables"]["emails"]["notes"])
    assert "FromAddress" in notes and "TextBody" in notes
