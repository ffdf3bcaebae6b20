"""`score` stage and weekly scoring: the at-risk CSV, SHAP explanations and figures; `churn explain`.

Thin: read the canonical tables (or ingest a raw export in memory), pick the scoring date and
the model, call ``models.scoring``, write through ``pipelines.io``.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd

from features.engine import use_engine
from features.errors import InputError
from features.export_date import ExportDate
from features.freshness import InputHealth, input_health
from models import figures, plays, scoring, tracking
from models.monitoring import HISTORY_COLUMNS
from pipelines.canonical import read_canonical_tables, read_export_date
from pipelines.config import Settings, settings
from pipelines.io import replace_figures, write_csv, write_figure, write_json, write_parquet
from pipelines.logs import timed

LOG = logging.getLogger("churn.score")
TOP_WATERFALLS = 10


def tables_from_export(
    export: Path, preset: str, limits: dict[str, float]
) -> tuple[dict[str, pd.DataFrame], ExportDate]:
    """Ingest a raw export in memory, with the same rules as the pipeline's ingest stage; its export date is inferred."""
    from pipelines.ingestion import ingest_export

    result = ingest_export(Path(export), preset, limits=limits)
    for table in result.report.tables.values():
        LOG.info(table.summary_line())
    return dict(result.tables), result.report.export_date


def pipeline_tables(s: Settings) -> tuple[dict, ExportDate]:
    """The canonical tables ingest wrote, and the export date it recorded."""
    tables = read_canonical_tables(s.paths.interim)
    return tables, read_export_date(s.paths.interim, tables)


def parse_as_of(text: str | dt.date | None) -> dt.date | None:
    if text is None or isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--as-of {text!r}: not a date (use YYYY-MM-DD)") from None


def check_inputs(s: Settings, tables: dict, export_date: dt.date, allow_stale: list[str] | None = None) -> InputHealth:
    """Freshness and weekly volume of the event tables; stop in one line on a stale or empty table not allowed.

    Warnings (a week far below its usual level) are logged; the run goes on.
    """
    allowed = tuple(dict.fromkeys([*s.monitor.allow_stale, *(allow_stale or [])]))
    unknown = [t for t in allowed if t not in s.monitor.max_lag_days.per_table()]
    if unknown:
        raise InputError(
            f"--allow-stale {unknown[0]}: not an event table ({', '.join(s.monitor.max_lag_days.per_table())})"
        )
    v = s.monitor.volume
    with timed("score: input checks (freshness, weekly volume)"):
        health = input_health(
            tables,
            export_date,
            s.monitor.max_lag_days.per_table(),
            allowed,
            v.trailing_weeks,
            v.min_ratio,
            v.min_usual_rows,
        )
    blocking = health.blocking()
    if blocking:
        names = " ".join(f"--allow-stale {name}" for name in blocking)
        raise InputError(
            f"{'; '.join(blocking.values())}: the list would read the missing rows as customers going quiet; "
            f"fix the export, or score anyway with `churn score {names}` (or monitor.allow_stale)"
        )
    for line in health.notes():
        LOG.warning(line)
    for line in health.warnings():
        LOG.warning("volume: %s", line)
    return health


def score(
    s: Settings,
    tables: dict,
    as_of: dt.date,
    model_spec: str | None,
    renewal_spec: str | None = None,
    health: InputHealth | None = None,
) -> scoring.ScoreResult:
    """Features at as-of and a week before, then probabilities, SHAP, reasons and plays (each step timed)."""
    horizon, renewal = scoring.load_scorers(
        model_spec,
        renewal_spec,
        s.paths.models,
        s.paths.renewal_model,
        tracking.resolve_tracking_uri(s.paths.mlflow_db),
        s.score.rank_by,
    )
    LOG.info(
        "scoring as of %s with models %s and %s, ranked by %s",
        *(as_of, horizon.version, renewal.version if renewal else "(no renewal model)", s.score.rank_by),
    )
    before = as_of - dt.timedelta(days=7)
    vocabulary = scoring.scoring_vocabulary(horizon.model, renewal)
    with timed("score: features at as-of and as-of - 7 days") as t:
        with use_engine("duckdb", s.runtime.features.duckdb_memory_limit):
            frame, catalog = scoring.point_in_time_features(
                tables,
                [before, as_of],
                s.features,
                s.runtime.features.batch_rows,
                vocabulary,
                shift_days=health.shift_days() if health else None,
            )
        t["rows"] = len(frame)
    challenger, compared = scoring.ranking_scorer(horizon, renewal, s.score.rank_by).challenger, None
    if challenger is not None:
        engine = use_engine("duckdb", s.runtime.features.duckdb_memory_limit)
        with timed("score: the challenger, alongside"), engine:
            compared = scoring.challenger_scores(
                challenger, tables, frame, catalog, as_of, s.features, vocabulary, s.runtime.features.batch_rows
            )
    with timed("score: probabilities + TreeSHAP", rows_in=len(frame)) as t:
        result = scoring.score_accounts(
            frame,
            catalog,
            as_of,
            tables["accounts"],
            horizon.model,
            horizon.version,
            s.score,
            plays.load_playbook(s.paths.playbook),
            renewal,
            compared,
            data_note="; ".join(health.notes()) if health and health.notes() else None,
        )
        t["rows"] = len(frame)
    return result


def main(
    export: Path | None = None,
    preset: str | None = None,
    as_of: str | None = None,
    model: str | None = None,
    out: Path | None = None,
    renewal_model: str | None = None,
    allow_stale: list[str] | None = None,
) -> None:
    s = settings()
    limits = s.data.max_rejected_share.per_table()
    tables, export_date = tables_from_export(export, preset or s.data.preset, limits) if export else pipeline_tables(s)
    when = parse_as_of(as_of) or s.score.as_of or scoring.default_as_of(export_date.date)
    health = check_inputs(s, tables, export_date.date, allow_stale)
    result = score(s, tables, when, model, renewal_model, health)
    csv_path = out or s.paths.reports / "at_risk.csv"
    write_csv(result.at_risk, csv_path)
    if out is None:  # the pipeline's own run also writes explanations, figures, its checks and its dated copy
        write_json(health.to_dict(), s.paths.input_checks)
        if when == scoring.default_as_of(export_date.date):  # a past as-of is scored by a model that saw its outcomes
            write_csv(result.at_risk[HISTORY_COLUMNS], s.paths.history / f"at_risk_{when.isoformat()}.csv")
        write_parquet(result.explanations, s.paths.reports / "explanations.parquet")
        with timed("score: figures"):
            replace_figures(s.paths.reports / "figures", lambda: shap_figures(result), **figures.SHAP_SAVE)
    at_risk = result.at_risk
    LOG.info(
        "%s accounts scored; %s high-risk (by %s); ARR at risk at renewal %s; expected ARR churned in %s days %s; wrote %s",
        f"{len(at_risk):,}",
        int((at_risk["risk_tier"] == "high").sum()),
        s.score.rank_by,
        f"{at_risk['arr_at_risk_at_renewal'].sum():,.0f}",
        s.features.horizon_days,
        f"{at_risk['expected_arr_at_risk'].sum():,.0f}",
        csv_path,
    )


def shap_figures(result: scoring.ScoreResult):
    """The SHAP summary of the week, then a waterfall for each of the top accounts (drawn one at a time)."""
    yield "shap_summary", figures.shap_summary_figure(result.contrib, result.X)
    for account_id in result.at_risk["account_id"].head(TOP_WATERFALLS):
        probability = float(result.probability[account_id])
        yield f"waterfall_{account_id}", figures.waterfall_figure(result.contrib, result.X, account_id, probability)


def explain_account(account_id: str) -> None:
    """Print one account's probability, reasons and plays; write its waterfall."""
    s = settings()
    tables, export_date = pipeline_tables(s)
    when = s.score.as_of or scoring.default_as_of(export_date.date)
    result = score(s, tables, when, None)
    rows = result.at_risk.set_index("account_id")
    if account_id not in rows.index:
        raise InputError(f"account {account_id!r} is not active on {when} (or not in the export)")
    row = rows.loc[account_id]
    path = s.paths.reports / "figures" / f"waterfall_{account_id}.png"
    probability = float(result.probability[account_id])
    write_figure(figures.waterfall_figure(result.contrib, result.X, account_id, probability), path, **figures.SHAP_SAVE)
    renewal = (
        f"renewal risk {row['renewal_risk']:.1%} (ARR at risk at renewal {row['arr_at_risk_at_renewal']:,.0f}), "
        if pd.notna(row["renewal_risk"])
        else ""
    )
    days = row["days_to_renewal"]
    due = "" if pd.isna(days) else f"; renewal {row['renewal_date']} ({int(days)} days)"
    lines = [
        f"{account_id} — {row['account_name']} (owner {row['owner']}), as of {when}{due}",
        f"{renewal}churn probability within {s.features.horizon_days} days {row['churn_probability']:.1%} "
        f"(expected ARR at risk {row['expected_arr_at_risk']:,.0f})",
        f"tier {row['risk_tier']} and rank {row['rank']} by {s.score.rank_by} risk, ARR {row['arr']:,.0f}",
    ]
    for r in range(1, 4):
        if pd.notna(row[f"reason_{r}"]):
            lines += [f"  {r}. {row[f'reason_{r}']}", f"     play: {row[f'play_{r}']}"]
    lines.append(f"waterfall: {path}")
    print("\n".join(lines))
