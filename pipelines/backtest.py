"""`backtest` stage: the weekly list replayed, and how early each ranking warned (``models.backtest``).

Thin: read the feature table, the owners and the export date; fit both models once on what was
observed before the replay; score, alert, measure; write reports/backtest.json, the lead-time
plot (CSV for DVC, PNG), the replayed weeks and churns (Parquet, for the notebook) and attach
the report and plot, with the figures, to the renewal model's MLflow run.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import numpy as np
import pandas as pd

from features.catalogue import LABEL_COLUMNS, Catalogue
from models import backtest, figures, tracking
from models.targets import HORIZON, RENEWAL
from models.train import KEY_COLUMNS, POSITION
from pipelines.canonical import iter_feature_rows, read_export_date, read_feature_rows, read_feature_table, read_owners
from pipelines.config import settings
from pipelines.io import write_csv, write_figure, write_json, write_parquet
from pipelines.logs import timed

LOG = logging.getLogger("churn.backtest")


def main() -> None:
    s = settings()
    p, horizon_days, grace = s.backtest, s.features.horizon_days, s.features.grace_days
    # keys, labels and the columns the rankings read; the models' features are read only for the rows they need
    _, catalog = read_feature_table(s.paths.features, s.paths.feature_catalog, columns=[])
    catalogue = Catalogue.from_json(catalog)
    columns = [*KEY_COLUMNS, *LABEL_COLUMNS, *backtest.ranking_columns(catalogue)]
    frame, _ = read_feature_table(s.paths.features, s.paths.feature_catalog, columns=columns)
    frame[POSITION] = np.arange(len(frame))
    export_date = read_export_date(s.paths.interim).date
    owners = read_owners(s.paths.interim)

    def read_rows(positions: np.ndarray) -> pd.DataFrame:
        return read_feature_rows(s.paths.features, positions)

    def fits(day: dt.date) -> bool:
        return all(backtest.can_fit(frame, t, day, s.train, horizon_days, grace) for t in (RENEWAL, HORIZON))

    with timed("backtest: the first week both models can be fitted"):
        dates = backtest.replay_dates(frame, export_date, grace, p.min_weeks, fits)
    LOG.info("backtest: replay %s..%s (%d weeks), models fitted once before it", dates[0], dates[-1], len(dates))
    with timed("backtest: fit both models before the replay"):
        models = {
            t.name: backtest.fit_before(frame, catalog, t, dates[0], s.train, horizon_days, grace, read_rows)
            for t in (RENEWAL, HORIZON)
        }
    rows = frame[frame["snapshot_date"].dt.date.isin(dates)]
    with timed("backtest: weekly lists", rows_in=len(rows)):
        parts = iter_feature_rows(s.paths.features, rows[POSITION].to_numpy())
        risks = backtest.replay_risks(rows, models["renewal"], models["horizon"], parts)
        scores = backtest.ranking_scores(rows, risks, catalogue)
        lists = backtest.alerts(scores, rows, owners, p.alerts_per_owner)
    weekly = backtest.weekly_lists(rows, risks, scores, lists)
    events = backtest.churn_events(frame, dates[0], export_date - dt.timedelta(days=grace), catalogue)
    renewal_label = frame.set_index(["account_id", "snapshot_date"])["renewal_label"]
    leads = {name: backtest.lead_times(events, lists[name], p.lookback_days) for name in backtest.RANKINGS}
    results = {name: backtest.ranking_figures(events, leads[name], lists[name], renewal_label) for name in leads}
    doc = {
        "replay": {
            "first_as_of": dates[0].isoformat(),
            "last_as_of": dates[-1].isoformat(),
            "weeks": len(dates),
            "fit": f"once, on the labels observed before {dates[0]} (validation: the latest labelled weeks before it)",
            "alerts_per_owner": p.alerts_per_owner,
            "lookback_days": p.lookback_days,
            "churned_accounts": int(len(events)),
            "churned_arr": round(float(events["arr"].sum()), 2),
        },
        "rankings": results,
    }
    report = s.paths.reports / "backtest.json"
    write_json(doc, report)
    write_parquet(weekly, s.paths.reports / "backtest_weeks.parquet")
    write_parquet(events.assign(**{f"lead_{n}": leads[n] for n in leads}), s.paths.reports / "backtest_churns.parquet")
    curve = backtest.lead_curve(events, leads, p.lookback_days)
    plots = s.paths.reports / "plots"
    write_csv(curve, plots / "lead_time.csv")
    picture = write_figure(figures.lead_time_figure(curve), plots / "lead_time.png", **figures.CURVE_SAVE)
    for name, r in results.items():
        LOG.info(
            "backtest %-8s churned ARR alerted >=90 d %s, >=180 d %s; median lead %s d; precision %s; %s alerts/owner/week",
            *(name, r["churned_arr_alerted_90d"], r["churned_arr_alerted_180d"], r["median_lead_days"]),
            *(r["alert_precision"], r["alerts_per_owner_week"]),
        )
    run_file = s.paths.renewal_model / tracking.RUN_FILE
    if run_file.exists():
        run = json.loads(run_file.read_text())
        tracking.log_metrics_to_run(
            run, {f"backtest_{name}_{k}": v for name, r in results.items() for k, v in r.items() if v is not None}
        )
        tracking.log_artifacts_to_run(run, [report, picture])
