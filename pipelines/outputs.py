"""Read the pipeline's outputs from disk for analysis (the notebooks), with paths from params.yaml.

Notebooks run from any folder with a ``PROJECT`` parameter; every function here takes that
project root, reads ``<root>/params.yaml`` and resolves the configured paths under it, so no
notebook spells ``data/...`` and a run on another checkout (e.g. the tests' clone) just works.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pandas as pd

# Imported here, not lazily: the score module pins matplotlib's backend to Agg on import, so it must
# happen before a notebook's `%matplotlib inline`, not in the middle of a cell that plots.
from pipelines import score as score_stage
from pipelines.config import PARAMS_FILE, Settings, load_settings

AT_RISK_FILE = "at_risk.csv"


def project_settings(root: Path | str = ".") -> Settings:
    """The project's settings with every path made absolute under ``root``."""
    root = Path(root).resolve()
    s = load_settings(root / PARAMS_FILE)
    paths = {name: root / value for name, value in s.paths.model_dump().items()}
    data = s.data.model_copy(update={"export_dir": root / s.data.export_dir})
    return s.model_copy(update={"paths": s.paths.model_copy(update=paths), "data": data})


def read_at_risk(path: Path | str) -> pd.DataFrame:
    """An at-risk CSV with its types; the region code ``NA`` (North America) stays a string, not missing."""
    frame = pd.read_csv(
        path,
        keep_default_na=False,
        na_values=[""],
        dtype={
            "account_id": "string",
            "account_name": "string",
            "owner": "string",
            "segment": "string",
            "region": "string",
            "risk_tier": "string",
        },
    )
    frame["days_to_renewal"] = frame["days_to_renewal"].astype("Int64")
    return frame


def load_tables(root: Path | str = ".", names: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """The canonical tables written by ``ingest`` (all present ones, or just ``names``)."""
    folder = project_settings(root).paths.interim
    files = sorted(folder.glob("*.parquet")) if names is None else [folder / f"{n}.parquet" for n in names]
    missing = [f.name for f in files if not f.exists()]
    if missing or not files:
        raise FileNotFoundError(f"{folder}: {', '.join(missing) or 'no tables'}; run `dvc repro ingest` first")
    return {f.stem: pd.read_parquet(f) for f in files}


def load_rejected(root: Path | str = ".") -> dict[str, pd.DataFrame]:
    """The rows ``ingest`` rejected, per table, each with its source row number and reason."""
    folder = project_settings(root).paths.rejected
    return {f.stem: pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))}


def load_ingest_report(root: Path | str = ".") -> dict:
    """``reports/ingest.json``: rows read, kept, repaired, rejected and filtered per table."""
    return json.loads(project_settings(root).paths.ingest_report.read_text())


def load_features(root: Path | str = ".", columns: list[str] | None = None) -> pd.DataFrame:
    """The feature table (one row per account and weekly snapshot, label <NA> when unobserved)."""
    return pd.read_parquet(project_settings(root).paths.features, columns=columns)


def load_catalog(root: Path | str = ".") -> dict:
    """The feature catalogue written next to the feature table."""
    return json.loads(project_settings(root).paths.feature_catalog.read_text())


def load_outputs(root: Path | str = ".") -> dict:
    """The small outputs people read: metrics, test predictions, curves, at-risk list (absent ones skipped).

    Returns:
        A dict with any of ``metrics``, ``test_predictions``, ``at_risk``, ``evaluation`` and
        ``plots`` (name -> frame from ``reports/plots/*.csv``).
    """
    s = project_settings(root)
    out: dict = {}
    files = {
        "metrics": (s.paths.reports / "metrics.json", lambda p: json.loads(p.read_text())),
        "evaluation": (s.paths.models / "evaluation.json", lambda p: json.loads(p.read_text())),
        "test_predictions": (s.paths.models / "test_predictions.parquet", pd.read_parquet),
        "at_risk": (s.paths.reports / AT_RISK_FILE, read_at_risk),
    }
    for name, (path, reader) in files.items():
        if path.exists():
            out[name] = reader(path)
    plots = s.paths.reports / "plots"
    out["plots"] = {p.stem: pd.read_csv(p) for p in sorted(plots.glob("*.csv"))} if plots.exists() else {}
    return out


def load_model(root: Path | str = ".", spec: str | None = None):
    """The model as a user loads it: a folder (default ``data/models``) or ``models:/churn-lgbm@champion``.

    Returns:
        ``(ChurnModel, version label)``, as ``churn score --model`` uses them.
    """
    s = project_settings(root)
    if spec and not spec.startswith(("models:/", "runs:/")):
        spec = str(Path(root).resolve() / spec)
    return score_stage.load_model(spec, s)


def test_window(root: Path | str = ".") -> pd.DataFrame:
    """The feature rows of the test window (the keys of ``test_predictions.parquet``), in its order."""
    s = project_settings(root)
    keys = pd.read_parquet(s.paths.models / "test_predictions.parquet", columns=["account_id", "snapshot_date"])
    features = pd.read_parquet(s.paths.features)
    return keys.merge(features, on=["account_id", "snapshot_date"], how="left", validate="one_to_one")


def load_playbook(root: Path | str = ".") -> dict[str, str]:
    """Signal family -> recommended play, as the score stage uses it."""
    return score_stage.load_playbook(project_settings(root).paths.playbook)


def score_weeks(
    root: Path | str = ".",
    as_of: str | dt.date | None = None,
    model: str | None = None,
    out_dir: Path | str | None = None,
) -> dict:
    """Score the export at ``as_of`` and a week earlier, as two ``churn score --as-of D --out`` runs would.

    The canonical tables are read once and both lists are written as CSVs to ``out_dir`` (a new temporary
    folder by default), then read back, so the comparison uses the same files a CS team would get.

    Returns:
        ``now`` and ``before`` (at-risk frames), ``as_of`` and ``before_date`` (dates), ``files`` (paths)
        and ``model_version``.
    """
    s = project_settings(root)
    tables = score_stage.read_canonical_tables(s.paths.interim)
    when = (
        dt.date.fromisoformat(as_of)
        if isinstance(as_of, str)
        else (as_of or s.score.as_of or score_stage.default_as_of(tables))
    )
    before = when - dt.timedelta(days=7)
    churn_model, version = load_model(root, model)
    folder = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="churn-weekly-"))
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for label, day in (("before", before), ("now", when)):
        files[label] = folder / f"at_risk_{day.isoformat()}.csv"
        score_stage.build_scores(tables, day, churn_model, version, s)["at_risk"].to_csv(files[label], index=False)
    return {
        "now": read_at_risk(files["now"]),
        "before": read_at_risk(files["before"]),
        "as_of": when,
        "before_date": before,
        "files": files,
        "model_version": version,
    }
