"""The analysis notebooks: committed without outputs, and they run cleanly on a real pipeline run."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

from pipelines.devtools.notebooks import execute, notebook_paths

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = notebook_paths(ROOT / "notebooks")
EXPECTED = ["01_crm_export.ipynb", "02_model.ipynb", "03_weekly_at_risk.ipynb"]
MIN_FIGURES = {"01_crm_export.ipynb": 6, "02_model.ipynb": 5, "03_weekly_at_risk.ipynb": 5}


def test_the_three_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; run nbstripout"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_title_and_parameters_cell(path: Path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "PROJECT = None" in tagged[0].source  # the root is found from where it runs


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_define_no_functions(path: Path):
    """Notebooks import, never define: helpers belong in models/analysis.py or pipelines/outputs.py."""
    nb = nbformat.read(path, as_version=4)
    defining = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and any(line.lstrip().startswith(("def ", "class ")) for line in c.source.splitlines())
    ]
    assert not defining, f"{path.name}: cells {defining} define functions or classes"


def _outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def _text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for o in _outputs(nb):
        parts.append(o.get("text", ""))
        parts.extend(str(v) for k, v in o.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


@pytest.mark.slow
def test_notebooks_run_on_the_demo(demo_run: Path, tmp_path: Path, monkeypatch):
    """All three execute top to bottom on the demo run's outputs, draw their figures and find what they look for."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the champion lives in the run's own store
    runs = {
        "01_crm_export.ipynb": {},
        "02_model.ipynb": {"MODEL": "models:/churn-lgbm-demo@champion", "SAMPLE": 4000},
        "03_weekly_at_risk.ipynb": {"OUT_DIR": str(tmp_path / "weekly")},
    }
    started = time.perf_counter()
    # as Jupyter runs them: each from its own folder, finding the project root (dvc.yaml) above it
    folder = demo_run / "notebooks"
    executed = {name: execute(folder / name, cwd=folder, parameters=params) for name, params in runs.items()}
    elapsed = time.perf_counter() - started

    for name, nb in executed.items():
        errors = [o for o in _outputs(nb) if o.output_type == "error"]
        assert not errors, f"{name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
        images = sum("image/png" in o.get("data", {}) for o in _outputs(nb))
        assert images >= MIN_FIGURES[name], f"{name}: only {images} figures rendered (is matplotlib inline?)"

    export = _text(executed["01_crm_export.ipynb"])
    assert "over_threshold_share" in export and "retention_at_end" in export
    assert "model churn-lgbm-demo/" in _text(executed["02_model.ipynb"])  # the champion, resolved to its version
    weekly = _text(executed["03_weekly_at_risk.ipynb"])
    for column in ("status", "p_before", "p_now", "p_change", "rank_before", "rank_now"):
        assert column in weekly, f"03: the week-on-week comparison has no {column!r} column"
    assert "churned_arr_alerted_90d" in weekly and "lead_renewal" in weekly, "03: the backtest section"
    csvs = sorted((tmp_path / "weekly").glob("at_risk_*.csv"))
    assert len(csvs) == 2, "03 writes last week's and this week's at-risk CSVs"
    assert elapsed < 240, f"the three notebooks took {elapsed:.0f}s"
