"""`score` stage and weekly scoring: at-risk CSV, SHAP explanations, figures, `churn explain`.

Scoring computes point-in-time features at the as-of date (and at as-of minus 7 days for
``change_7d``) straight from the canonical tables, so it runs on any week's export without
retraining and without last week's file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import yaml

from features.catalogue import FeatureSpec, catalogue_from_json
from features.duck import Table, column_max
from features.errors import InputError
from features.schemas import TABLES
from models import explain, plays, tracking
from models.train import ChurnModel
from pipelines.config import Settings, settings
from pipelines.io import write_atomic, write_parquet
from pipelines.logs import timed

LOG = logging.getLogger("churn.score")
CSV_COLUMNS = [
    "as_of",
    "rank",
    "account_id",
    "account_name",
    "owner",
    "segment",
    "region",
    "arr",
    "renewal_date",
    "days_to_renewal",
    "churn_probability",
    "change_7d",
    "what_changed",
    "risk_tier",
    "expected_arr_at_risk",
    "reason_1",
    "reason_2",
    "reason_3",
    "play_1",
    "play_2",
    "play_3",
    "model_version",
]
TOP_WATERFALLS = 10


# ---------------------------------------------------------------- inputs


def read_canonical_tables(folder: Path) -> dict[str, Table]:
    """The canonical tables present in ``folder`` as the features stage reads them (event tables left on disk)."""
    from pipelines.features import read_tables

    tables = read_tables(folder)
    missing = [name for name, t in TABLES.items() if t.required and name not in tables]
    if missing:
        raise InputError(f"{folder}: canonical table(s) {', '.join(missing)} not found; run `dvc repro ingest` first")
    return tables


def tables_from_export(export: Path, preset: str) -> dict[str, pd.DataFrame]:
    """Ingest a raw export in memory, with the same rules as the pipeline's ingest stage."""
    from pipelines.ingestion import ingest_export

    result = ingest_export(Path(export), preset)
    for table in result.report.tables.values():
        LOG.info(table.summary_line())
    return dict(result.tables)


def export_last_date(tables: dict[str, Table]) -> dt.date:
    """The last day with any dated row in the export."""
    latest: list[pd.Timestamp] = []
    for name, frame in tables.items():
        for column in TABLES[name].columns:
            value = (
                column_max(frame, column.name)
                if column.dtype in ("timestamp", "date") and column.name in frame.columns
                else None
            )
            if pd.notna(value):
                latest.append(
                    pd.Timestamp(value).tz_localize(None) if getattr(value, "tzinfo", None) else pd.Timestamp(value)
                )
    # Contract end dates lie in the future by design; they are not "data seen so far".
    events = [v for v in latest if v <= pd.Timestamp.now() + pd.Timedelta(days=1)] or latest
    return max(events).date()


def default_as_of(tables: dict[str, Table]) -> dt.date:
    """This week's scoring date: the day after the export's last event, so the whole export is seen."""
    frames = {k: v for k, v in tables.items() if k not in ("accounts", "contracts")} or tables
    return export_last_date(frames) + dt.timedelta(days=1)


def load_model(spec: str | None, s: Settings) -> tuple[ChurnModel, str]:
    """A model from a folder (default data/models/) or the registry (models:/name@alias); and its version label."""
    if spec and spec.startswith(("models:/", "runs:/")):
        client = tracking.connect(tracking.resolve_tracking_uri(s.paths.mlflow_db))
        model = ChurnModel.load(tracking.load_registered_files(spec))
        return model, tracking.version_label(client, spec)
    folder = Path(spec) if spec else s.paths.models
    model = ChurnModel.load(folder)
    run_file = folder / "mlflow_run.json"
    if run_file.exists():
        run = json.loads(run_file.read_text())
        return model, f"{run['registered_model']}/{run['version']}"
    return model, f"{folder.name}:{model.catalog_hash}"


def load_playbook(path: Path) -> dict[str, str]:
    try:
        return plays.validate_playbook(yaml.safe_load(path.read_text()), str(path))
    except FileNotFoundError:
        raise InputError(f"{path}: playbook not found (params.yaml paths.playbook)") from None


# ---------------------------------------------------------------- scoring


def check_feature_drift(model: ChurnModel, catalog: dict, frame: pd.DataFrame) -> None:
    """Refuse to score when this export's features are not the ones the model was trained on."""
    produced = {f["name"] for f in catalog["features"]}
    missing = [f for f in model.features if f not in produced]
    if missing:
        dropped = catalog.get("dropped_families", {})
        hint = (
            f" (families dropped for this export: {', '.join(f'{k}: {v}' for k, v in dropped.items())})"
            if dropped
            else ""
        )
        raise InputError(
            f"feature drift: the model needs {len(missing)} feature(s) this export does not produce, e.g. "
            f"{', '.join(missing[:5])}{hint}; retrain on this export's shape (`dvc repro`) or fix the export"
        )


def feature_by(specs: dict[str, FeatureSpec], signal: str, unit: str) -> str | None:
    """The first catalogue feature of a signal with a given unit (e.g. the renewal countdown in days)."""
    return next((n for n, s in specs.items() if s.signal == signal and s.unit == unit), None)


def risk_tier(probability: pd.Series, tiers: dict[str, float]) -> pd.Series:
    """Tier by thresholds from params.yaml, highest threshold first."""
    ordered = sorted(tiers.items(), key=lambda kv: -kv[1])
    out = pd.Series(ordered[-1][0], index=probability.index, dtype="string")
    for name, threshold in reversed(ordered):
        out = out.mask(probability >= threshold, name)
    return out


def build_scores(tables: dict[str, Table], as_of: dt.date, model: ChurnModel, model_version: str, s: Settings) -> dict:
    """Features at as-of and as-of − 7 days, probabilities, SHAP, reasons, plays: the at-risk table."""
    from features.build import build_features
    from features.engine import use_engine

    before = as_of - dt.timedelta(days=7)
    with timed("score: features at as-of and as-of - 7 days") as t:
        with use_engine("duckdb", s.features.duckdb_memory_limit):
            frame, catalog = build_features(tables, [before, as_of], s.features)
        t["rows"] = len(frame)
    check_feature_drift(model, catalog, frame)
    specs = {spec.name: spec for spec in catalogue_from_json(catalog)}
    specs = {name: specs[name] for name in model.features}
    frame = frame.sort_values(["snapshot_date", "account_id"], kind="stable").reset_index(drop=True)
    now = frame[frame["snapshot_date"].dt.date == as_of].set_index("account_id", drop=False)
    prev = frame[frame["snapshot_date"].dt.date == before].set_index("account_id", drop=False)
    if now.empty:
        raise InputError(f"no account is active on {as_of}; check --as-of against the export's contract dates")

    with timed("score: probabilities + TreeSHAP", rows_in=len(now)) as t:
        contrib_now = explain.shap_contributions(model, now)
        contrib_prev = explain.shap_contributions(model, prev) if len(prev) else None
        p_now = pd.Series(
            model.calibrator.transform(contrib_now.values.sum(axis=1).to_numpy() + contrib_now.base_value),
            index=now.index,
        )
        p_prev = (
            pd.Series(
                model.calibrator.transform(contrib_prev.values.sum(axis=1).to_numpy() + contrib_prev.base_value),
                index=prev.index,
            )
            if contrib_prev is not None
            else pd.Series(dtype=float)
        )
        t["rows"] = len(now) + len(prev)

    X_now = model.matrix(now)
    references = model.metadata.get("retained_reference", {})
    reasons = explain.top_reasons(X_now, contrib_now, specs, references, top=s.score.top_reasons)
    playbook = load_playbook(s.paths.playbook)
    changed = explain.what_changed(
        explain.signal_contributions(contrib_now, specs),
        explain.signal_contributions(contrib_prev, specs)
        if contrib_prev is not None
        else pd.DataFrame(index=pd.Index([], name="account_id")),
    )

    accounts = tables["accounts"].drop_duplicates("account_id").set_index("account_id")
    arr_feature = feature_by(specs, "commercial", "currency")
    renewal_feature = feature_by(specs, "renewal", "days")
    out = pd.DataFrame(index=now.index.rename(None))
    out["as_of"] = as_of.isoformat()
    out["account_id"] = now["account_id"].astype("string")
    out["account_name"] = accounts["account_name"].reindex(now.index) if "account_name" in accounts else pd.NA
    out["owner"] = accounts["owner"].reindex(now.index) if "owner" in accounts else pd.NA
    for attribute in ("segment", "region"):  # account attributes, straight from the accounts table
        out[attribute] = accounts[attribute].reindex(now.index).astype("string") if attribute in accounts else pd.NA
    out["arr"] = now[arr_feature].astype(float).round(2) if arr_feature else np.nan
    days = now[renewal_feature].astype(float) if renewal_feature else pd.Series(np.nan, index=now.index)
    out["days_to_renewal"] = days.round(0).astype("Int64")
    out["renewal_date"] = [(as_of + dt.timedelta(days=int(d))).isoformat() if pd.notna(d) else pd.NA for d in days]
    out["churn_probability"] = p_now.round(4)
    out["change_7d"] = (p_now - p_prev.reindex(now.index)).round(4)
    out["what_changed"] = changed.astype("string")
    out["risk_tier"] = risk_tier(p_now, s.score.tiers)
    out["expected_arr_at_risk"] = (p_now * out["arr"]).round(2)
    for r in range(1, 4):
        out[f"reason_{r}"] = reasons[f"reason_{r}"] if f"reason_{r}" in reasons else pd.NA
        out[f"play_{r}"] = plays.plays_for(reasons[f"signal_{r}"], playbook) if f"signal_{r}" in reasons else pd.NA
    out["model_version"] = model_version
    out = out.sort_values(
        ["expected_arr_at_risk", "churn_probability", "account_id"], ascending=[False, False, True], kind="stable"
    )
    out["rank"] = np.arange(1, len(out) + 1)
    explanations = explain.explanations_long(now[["account_id", "snapshot_date"]], X_now, contrib_now)
    return {
        "at_risk": out[CSV_COLUMNS].reset_index(drop=True),
        "explanations": explanations,
        "contrib": contrib_now,
        "X": X_now,
        "probability": p_now,
    }


# ---------------------------------------------------------------- pictures


def draw_summary(contrib: explain.Contributions, X: pd.DataFrame, path: Path) -> None:
    """SHAP beeswarm of the scored accounts."""
    import shap

    numeric = X.apply(lambda c: c.cat.codes.astype(float) if c.dtype.name == "category" else c.astype(float))
    shap.summary_plot(contrib.values.to_numpy(), numeric, show=False, max_display=15, plot_size=(8, 7))
    fig = plt.gcf()
    fig.suptitle("What drives churn risk this week (SHAP, log-odds)")
    write_atomic(
        path, lambda tmp: fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    )
    plt.close(fig)


def draw_waterfall(
    contrib: explain.Contributions, X: pd.DataFrame, account_id: str, probability: float, path: Path
) -> None:
    """One account's SHAP waterfall: from the average account to this account's score."""
    import shap

    i = X.index.get_loc(account_id)
    values = X.iloc[i]
    data = np.array([v if not isinstance(v, str) else np.nan for v in values.astype(object)], dtype=float)
    exp = shap.Explanation(
        values=contrib.values.iloc[i].to_numpy(),
        base_values=contrib.base_value,
        data=data,
        feature_names=list(X.columns),
    )
    shap.plots.waterfall(exp, max_display=12, show=False)
    fig = plt.gcf()
    fig.set_size_inches(11, 7)
    fig.suptitle(f"Account {account_id}: churn probability {probability:.0%} (SHAP, log-odds)")
    # "tight" keeps the long feature names and the f(x) label inside the picture
    write_atomic(
        path, lambda tmp: fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    )
    plt.close(fig)


def write_figures(result: dict, folder: Path) -> None:
    """Summary plot plus a waterfall for each of the top accounts; the folder is replaced whole."""
    staging = Path(tempfile.mkdtemp(prefix=".figures-", dir=folder.parent))
    try:
        draw_summary(result["contrib"], result["X"], staging / "shap_summary.png")
        for account_id in result["at_risk"]["account_id"].head(TOP_WATERFALLS):
            draw_waterfall(
                result["contrib"],
                result["X"],
                account_id,
                float(result["probability"][account_id]),
                staging / f"waterfall_{account_id}.png",
            )
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------- entry points


def _as_date(text: str | dt.date | None) -> dt.date | None:
    if text is None or isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--as-of {text!r}: not a date (use YYYY-MM-DD)") from None


def main(
    export: Path | None = None,
    preset: str | None = None,
    as_of: str | None = None,
    model: str | None = None,
    out: Path | None = None,
) -> None:
    s = settings()
    tables = tables_from_export(export, preset or s.data.preset) if export else read_canonical_tables(s.paths.interim)
    when = _as_date(as_of) or s.score.as_of or default_as_of(tables)
    churn_model, version = load_model(model, s)
    LOG.info("scoring as of %s with model %s", when, version)
    result = build_scores(tables, when, churn_model, version, s)
    csv_path = out or s.paths.reports / "at_risk.csv"
    write_atomic(csv_path, lambda tmp: result["at_risk"].to_csv(tmp, index=False))
    if out is None:  # the pipeline's own run also writes explanations and figures
        write_parquet(result["explanations"], s.paths.reports / "explanations.parquet")
        with timed("score: figures"):
            write_figures(result, s.paths.reports / "figures")
    at_risk = result["at_risk"]
    LOG.info(
        "%s accounts scored; %s high-risk; expected ARR at risk %s; wrote %s",
        f"{len(at_risk):,}",
        int((at_risk["risk_tier"] == "high").sum()),
        f"{at_risk['expected_arr_at_risk'].sum():,.0f}",
        csv_path,
    )


def explain_account(account_id: str) -> None:
    """Print one account's probability, reasons and plays; write its waterfall."""
    s = settings()
    tables = read_canonical_tables(s.paths.interim)
    when = s.score.as_of or default_as_of(tables)
    churn_model, version = load_model(None, s)
    result = build_scores(tables, when, churn_model, version, s)
    rows = result["at_risk"].set_index("account_id")
    if account_id not in rows.index:
        raise InputError(f"account {account_id!r} is not active on {when} (or not in the export)")
    row = rows.loc[account_id]
    path = s.paths.reports / "figures" / f"waterfall_{account_id}.png"
    draw_waterfall(result["contrib"], result["X"], account_id, float(result["probability"][account_id]), path)
    lines = [
        f"{account_id} — {row['account_name']} (owner {row['owner']}), as of {when}",
        f"churn probability {row['churn_probability']:.1%} ({row['risk_tier']}), rank {row['rank']}, "
        f"ARR {row['arr']:,.0f}, expected ARR at risk {row['expected_arr_at_risk']:,.0f}",
    ]
    for r in range(1, 4):
        if pd.notna(row[f"reason_{r}"]):
            lines += [f"  {r}. {row[f'reason_{r}']}", f"     play: {row[f'play_{r}']}"]
    lines.append(f"waterfall: {path}")
    print("\n".join(lines))
