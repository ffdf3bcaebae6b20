"""Read the pipeline's outputs from disk for analysis (the notebooks), with paths from params.yaml.

Every function takes the project root; by default (``root=None``) it is found by walking up from
the working directory to the folder holding ``dvc.yaml``, so a notebook runs the same from
Jupyter started anywhere inside the project, from VS Code, or from the tests. No notebook spells
``data/...``, and a run on another checkout (e.g. the tests' clone) just works.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pandas as pd

from features.engine import use_engine
from features.export_date import ExportDate
from models import plays, scoring
from pipelines.canonical import read_canonical_tables, read_export_date
from pipelines.config import PARAMS_FILE, Settings, load_settings

AT_RISK_FILE = "at_risk.csv"


PROJECT_MARKER = "dvc.yaml"


def project_root(start: Path | str | None = None) -> Path:
    """The project folder: ``start`` (default: the working directory) or the nearest parent holding dvc.yaml."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_MARKER).is_file() and (folder / PARAMS_FILE).is_file():
            return folder
    raise FileNotFoundError(f"{here}: not inside the project (no {PROJECT_MARKER} here or in any parent folder)")


def project_settings(root: Path | str | None = None) -> Settings:
    """The project's settings with every path made absolute under the project root."""
    root = project_root(root)
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


def load_tables(root: Path | str | None = None, names: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """The canonical tables written by ``ingest`` (all present ones, or just ``names``)."""
    folder = project_settings(root).paths.interim
    files = sorted(folder.glob("*.parquet")) if names is None else [folder / f"{n}.parquet" for n in names]
    missing = [f.name for f in files if not f.exists()]
    if missing or not files:
        raise FileNotFoundError(f"{folder}: {', '.join(missing) or 'no tables'}; run `dvc repro ingest` first")
    return {f.stem: pd.read_parquet(f) for f in files}


def load_rejected(root: Path | str | None = None) -> dict[str, pd.DataFrame]:
    """The rows ``ingest`` rejected, per table, each with its source row number and reason."""
    folder = project_settings(root).paths.rejected
    return {f.stem: pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))}


def load_export_date(root: Path | str | None = None) -> ExportDate:
    """The export date ``ingest`` decided (given in params.yaml or inferred), with how and why."""
    return read_export_date(project_settings(root).paths.interim)


def load_ingest_report(root: Path | str | None = None) -> dict:
    """``reports/ingest.json``: rows read, kept, repaired, rejected and filtered per table."""
    return json.loads(project_settings(root).paths.ingest_report.read_text())


def load_features(root: Path | str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    """The feature table (one row per account and weekly snapshot, label <NA> when unobserved)."""
    return pd.read_parquet(project_settings(root).paths.features, columns=columns)


def load_catalog(root: Path | str | None = None) -> dict:
    """The feature catalogue written next to the feature table."""
    return json.loads(project_settings(root).paths.feature_catalog.read_text())


def load_outputs(root: Path | str | None = None) -> dict:
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


def load_model(root: Path | str | None = None, spec: str | None = None):
    """The model as a user loads it: a folder (default ``data/models``) or ``models:/churn-lgbm-demo@champion``.

    Returns:
        ``(ChurnModel, version label)``, as ``churn score --model`` uses them.
    """
    s = project_settings(root)
    return scoring.load_model(project_spec(root, spec), s.paths.models, tracking_uri(s))


def project_spec(root: Path | str | None, spec: str | None) -> str | None:
    """A model folder relative to the project root (notebooks run from notebooks/); a registry URI as it is."""
    if spec and not spec.startswith(("models:/", "runs:/")):
        return str(project_root(root) / spec)
    return spec


def tracking_uri(s) -> str:
    """The project's MLflow store, as the stages resolve it."""
    from models import tracking

    return tracking.resolve_tracking_uri(s.paths.mlflow_db)


def test_window(root: Path | str | None = None) -> pd.DataFrame:
    """The feature rows of the test window (the keys of ``test_predictions.parquet``), in its order."""
    s = project_settings(root)
    keys = pd.read_parquet(s.paths.models / "test_predictions.parquet", columns=["account_id", "snapshot_date"])
    features = pd.read_parquet(s.paths.features)
    return keys.merge(features, on=["account_id", "snapshot_date"], how="left", validate="one_to_one")


def compare_runs(roots: dict[str, Path | str]) -> pd.DataFrame:
    """The test-window figures of several project runs side by side (e.g. the CRM demo and the usage world).

    One row per (run, target, model): ROC AUC, PR AUC and Brier of the model and each baseline,
    from each run's ``reports/metrics.json``; the export each ran on; and, for the model rows,
    the LightGBM setting its training chose and how many features it had.
    """
    rows = []
    for name, root in roots.items():
        s = project_settings(root)
        metrics = json.loads((s.paths.reports / "metrics.json").read_text())
        for target, section, folder in (
            ("90 days", metrics, s.paths.models),
            ("renewal", metrics.get("renewal"), s.paths.renewal_model),
        ):
            if not section:
                continue
            meta_file = folder / "metadata.json"
            meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
            for model in ("model", "logistic", "health", "calendar"):
                if model not in section:
                    continue
                m = section[model]
                row = {"run": name, "export": str(s.data.export_dir), "target": target, "model": model}
                row.update({k: m.get(k) for k in ("roc_auc", "pr_auc", "brier", "positives", "rows")})
                if model == "model":
                    row["setting"] = meta.get("tuning", {}).get("chosen")
                    row["features"] = len(meta.get("retained_reference", {})) or None
                rows.append(row)
    return pd.DataFrame(rows)


def read_backtest(root: Path | str | None = None) -> dict:
    """What the backtest stage wrote: ``report`` (backtest.json), ``curve`` (lead_time.csv), ``weeks`` and ``churns``."""
    reports = project_settings(root).paths.reports
    report = reports / "backtest.json"
    if not report.exists():
        raise FileNotFoundError(f"{report}: run `dvc repro backtest` first")
    return {
        "report": json.loads(report.read_text()),
        "curve": pd.read_csv(reports / "plots" / "lead_time.csv"),
        "weeks": pd.read_parquet(reports / "backtest_weeks.parquet"),
        "churns": pd.read_parquet(reports / "backtest_churns.parquet"),
    }


def load_playbook(root: Path | str | None = None) -> dict[str, str]:
    """Signal family -> recommended play, as the score stage uses it."""
    return plays.load_playbook(project_settings(root).paths.playbook)


def score_weeks(
    root: Path | str | None = None,
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
    tables = read_canonical_tables(s.paths.interim)
    when = (
        dt.date.fromisoformat(as_of)
        if isinstance(as_of, str)
        else (as_of or s.score.as_of or scoring.default_as_of(read_export_date(s.paths.interim, tables).date))
    )
    before = when - dt.timedelta(days=7)
    horizon, renewal = scoring.load_scorers(
        project_spec(root, model), None, s.paths.models, s.paths.renewal_model, tracking_uri(s), s.score.rank_by
    )
    folder = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="churn-weekly-"))
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    playbook = plays.load_playbook(s.paths.playbook)
    runtime = s.runtime.features
    for label, day in (("before", before), ("now", when)):
        files[label] = folder / f"at_risk_{day.isoformat()}.csv"
        with use_engine("duckdb", runtime.duckdb_memory_limit):
            result = scoring.build_scores(
                tables,
                day,
                horizon.model,
                horizon.version,
                s.features,
                s.score,
                playbook,
                runtime.batch_rows,
                renewal,
                scoring.ranking_scorer(horizon, renewal, s.score.rank_by).challenger,
            )
        result.at_risk.to_csv(files[label], index=False)
    return {
        "now": read_at_risk(files["now"]),
        "before": read_at_risk(files["before"]),
        "as_of": when,
        "before_date": before,
        "files": files,
        "model_version": horizon.version,
        "renewal_model_version": renewal.version if renewal else None,
    }
