"""Lead-time backtest: how early would each ranking have put the accounts that churned on the list?

The weekly list is replayed on every weekly as-of date from the first on which both models can be
fitted on what was observed before it, to the last whose outcomes the export can confirm (at least
``grace_days`` before the export date); at least ``min_weeks``. Both models are fitted
**once, before the replay**: only on labels observed by the first as-of (a 90-day label once
``s + horizon + grace`` has passed, a renewal label once the term's end + grace has passed),
with a validation window for early stopping and calibration one gap before that date. The
features of each as-of are the feature table's rows of that snapshot: point in time by
construction, the same rows ``churn score --as-of`` computes.

Each week's alert list is the top ``alerts_per_owner`` accounts of each owner by a ranking:

- ``renewal``: renewal risk × ARR (the renewal model), ``horizon``: 90-day probability × ARR,
- ``calendar``: ARR × nearness of the renewal (what a CS team does without a model),
- ``health``: the red-flag health score × ARR.

For every account whose churn (a confirmed spell end) falls inside the replay, its *lead
time* is the churn date minus the first as-of it was alerted within ``lookback_days`` before
it (0 when never alerted). Figures: share of churned ARR alerted at least 90 and 180 days
ahead, median lead time, alert precision (share of alerted account-weeks whose current term
did not renew) and alerts per owner per week.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from features.catalogue import Catalogue
from features.errors import InputError
from models.baselines import HealthScore, RenewalCalendar, arr_or_median
from models.params import TrainParams
from models.targets import HORIZON, LABEL, Target, split_dates
from models.train import POSITION, ChurnModel, fit_model, thin_windows
from models.windows import WEEK, Windows, fully_labelled_dates

RANKINGS = ("renewal", "horizon", "calendar", "health")
LEAD_DAYS = (90, 180)


def replay_dates(
    frame: pd.DataFrame, export_date: dt.date, grace_days: int, min_weeks: int, fits: Callable[[dt.date], bool]
) -> list[dt.date]:
    """Every snapshot date from the first on which ``fits`` (both models can be fitted on what was observed
    before it) to the last at least ``grace_days`` before the export date (outcomes confirmable).

    The longer the replay, the further ahead a churn near its end can have been alerted; it starts as
    early as the history allows, never at a date fitted to one export. Fewer than ``min_weeks`` weeks:
    an ``InputError`` saying how many there are.
    """
    last = pd.Timestamp(export_date) - pd.Timedelta(days=grace_days)
    dates = [pd.Timestamp(d).date() for d in sorted(pd.to_datetime(frame["snapshot_date"]).unique()) if d <= last]
    if not dates or not fits(dates[-1]):
        raise InputError(
            f"features.parquet: too little labelled history before {last.date()} to fit the backtest's models"
        )
    lo, hi = 0, len(dates) - 1  # being able to fit only gets easier as the as-of moves later: bisect
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(dates[mid]) else (mid + 1, hi)
    replay = dates[lo:]
    if len(replay) < min_weeks:
        raise InputError(
            f"features.parquet: the backtest can replay {len(replay)} weeks ({replay[0]} to {replay[-1]}), "
            f"backtest.min_weeks asks for {min_weeks}; lower it or use a longer export"
        )
    return replay


def observed_by(frame: pd.DataFrame, target: Target, day: dt.date, horizon_days: int, grace_days: int) -> pd.DataFrame:
    """The feature table with ``target``'s label only where it was known on ``day``, in ``label``."""
    view = target.view(frame)
    day = pd.Timestamp(day)
    if target is HORIZON:
        known = view["snapshot_date"] + pd.Timedelta(days=horizon_days + grace_days) <= day
    else:
        known = view["term_end"] + pd.Timedelta(days=grace_days) <= day
    return view.assign(**{LABEL: view[LABEL].where(known), target.label: view[target.label].where(known)})


def can_fit(
    frame: pd.DataFrame, target: Target, day: dt.date, params: TrainParams, horizon_days: int, grace_days: int
) -> bool:
    """Whether ``fit_before`` finds enough observed labels before ``day`` (without training)."""
    try:
        fit_split(
            observed_by(frame, target, day, horizon_days, grace_days), target, day, params, horizon_days, grace_days
        )
    except InputError:
        return False
    return True


def fit_before(
    frame: pd.DataFrame,
    catalog: dict,
    target: Target,
    day: dt.date,
    params: TrainParams,
    horizon_days: int,
    grace_days: int,
    read_rows: Callable[[np.ndarray], pd.DataFrame] | None = None,
) -> ChurnModel:
    """The target's model fitted on what was observed before ``day``: validation the latest labelled weeks, train before.

    With ``read_rows``, ``frame`` holds the keys and labels only, with each row's ``POSITION`` in the
    feature table; the windows are chosen on it and only their rows are read, every column. Every row
    of a window is labelled by ``day``, so its label read back is the one observed then.
    """
    known = observed_by(frame, target, day, horizon_days, grace_days)
    dates, valid_start, train_end = fit_split(known, target, day, params, horizon_days, grace_days)
    when = split_dates(known, target)
    complete = when.isin(pd.DatetimeIndex([pd.Timestamp(d) for d in dates]))
    parts = {
        "train": known[complete & (when <= pd.Timestamp(train_end))],
        "valid": known[complete & (when >= pd.Timestamp(valid_start))],
    }
    windows = Windows(train_end, valid_start, dates[-1], dates[-1], dates[-1], train_start=dates[0])
    parts, strides = thin_windows(parts, params.max_window_rows)
    if read_rows is not None:
        parts = {name: target.view(read_rows(part[POSITION].to_numpy())) for name, part in parts.items()}
    return fit_model(parts, catalog, params, windows, strides)


def fit_split(
    known: pd.DataFrame, target: Target, day: dt.date, params: TrainParams, horizon_days: int, grace_days: int
) -> tuple[list[dt.date], dt.date, dt.date]:
    """The observed split dates, the validation start and the train end of a backtest fit (``train.window_weeks``)."""
    dates = fully_labelled_dates(known, target)
    w = params.window_weeks
    gap = dt.timedelta(days=target.gap_days(horizon_days, grace_days))
    if not dates:
        raise InputError(
            f"features.parquet: no {target.name} label observed before {day}: too little history to backtest"
        )
    valid_start = min(d for d in dates if d > dates[-1] - w.valid * WEEK)
    train_end = max((d for d in dates if d <= valid_start - gap), default=None)
    if train_end is None or (train_end - dates[0]).days // 7 + 1 < w.min_train:
        raise InputError(
            f"features.parquet: before {day} the {target.name} labels span {len(dates)} weeks; a backtest fit needs "
            f"{w.min_train} train weeks, a gap and {w.valid} validation weeks (train.window_weeks)"
        )
    return dates, valid_start, train_end


def ranking_columns(catalogue: Catalogue) -> list[str]:
    """The feature columns the rankings other than the models read (ARR, days to renewal, the health flags)."""
    wanted = [catalogue.arr, catalogue.days_to_renewal, *(f.feature for f in HealthScore().flags)]
    return [c for c in dict.fromkeys(wanted) if c is not None and c in catalogue.by_name]


def replay_risks(
    rows: pd.DataFrame, renewal: ChurnModel, horizon: ChurnModel, parts: Iterable[pd.DataFrame]
) -> pd.DataFrame:
    """``model_risks`` of the replayed ``rows`` computed part by part (``parts``: those rows with every column,
    in order), so the replay never holds every feature of every replayed week at once."""
    risks = pd.concat([model_risks(part, renewal, horizon) for part in parts], ignore_index=True)
    if len(risks) != len(rows):
        raise ValueError(f"replay: {len(risks)} rows scored for {len(rows)} replayed")
    return risks.set_axis(rows.index)


def model_risks(rows: pd.DataFrame, renewal: ChurnModel, horizon: ChurnModel) -> pd.DataFrame:
    """Both models' probabilities for the replayed rows (computed once: rankings and the weekly table read them)."""
    return pd.DataFrame(
        {"renewal_risk": renewal.predict_proba(rows), "churn_probability": horizon.predict_proba(rows)},
        index=rows.index,
    )


def ranking_scores(rows: pd.DataFrame, risks: pd.DataFrame, catalogue: Catalogue) -> pd.DataFrame:
    """Each ranking's score for the rows (ARR at risk by each model, the calendar, the health score × ARR)."""
    arr = arr_or_median(rows, catalogue.arr)
    return pd.DataFrame(
        {
            "renewal": risks["renewal_risk"].to_numpy() * arr,
            "horizon": risks["churn_probability"].to_numpy() * arr,
            "calendar": RenewalCalendar(catalogue.arr, catalogue.days_to_renewal).score(rows),
            "health": HealthScore().score(rows) * arr,
        },
        index=rows.index,
    )


def alerts(scores: pd.DataFrame, rows: pd.DataFrame, owners: pd.Series, per_owner: int) -> dict[str, pd.DataFrame]:
    """Per ranking, the (account_id, snapshot_date) rows on each week's list: the top ``per_owner`` of each owner."""
    keyed = rows[["account_id", "snapshot_date"]].assign(
        owner=owners.reindex(rows["account_id"].astype(str)).fillna("(no owner)").to_numpy()
    )
    out = {}
    for name in scores.columns:
        ranked = keyed.assign(score=scores[name].to_numpy()).sort_values(
            ["snapshot_date", "owner", "score", "account_id"], ascending=[True, True, False, True], kind="stable"
        )
        out[name] = ranked.groupby(["snapshot_date", "owner"], sort=False).head(per_owner)
    return out


def weekly_lists(
    rows: pd.DataFrame, risks: pd.DataFrame, scores: pd.DataFrame, lists: dict[str, pd.DataFrame]
) -> pd.DataFrame:
    """One row per replayed (account, week): both risks, each ranking's score and whether it listed the account."""
    out = pd.concat([rows[["account_id", "snapshot_date"]], risks], axis=1)
    for name in scores.columns:
        out[f"score_{name}"] = scores[name].to_numpy()
        listed = pd.MultiIndex.from_frame(lists[name][["account_id", "snapshot_date"]])
        out[f"alerted_{name}"] = pd.MultiIndex.from_frame(out[["account_id", "snapshot_date"]]).isin(listed)
    return out.reset_index(drop=True)


def churn_events(frame: pd.DataFrame, first: dt.date, last: dt.date, catalogue: Catalogue) -> pd.DataFrame:
    """Accounts whose confirmed churn falls in ``[first, last]``: churn date and the ARR of their last snapshot before it."""
    dated = frame[frame["churn_date"].notna()]
    events = dated.groupby(["account_id", "churn_date"], as_index=False, observed=True).agg(
        last_snapshot=("snapshot_date", "max")
    )
    events = events[(events["churn_date"] >= pd.Timestamp(first)) & (events["churn_date"] <= pd.Timestamp(last))]
    arr = frame.set_index(["account_id", "snapshot_date"])[catalogue.arr] if catalogue.arr in frame else None
    values = (
        arr.reindex(pd.MultiIndex.from_frame(events[["account_id", "last_snapshot"]])).to_numpy(dtype=float)
        if arr is not None
        else np.ones(len(events))
    )
    return events.assign(arr=np.nan_to_num(values, nan=0.0)).reset_index(drop=True)


def lead_times(events: pd.DataFrame, alerted: pd.DataFrame, lookback_days: int) -> pd.Series:
    """Days from the first alert within ``lookback_days`` before each churn to the churn (NaN: never alerted)."""
    merged = (
        events[["account_id", "churn_date"]]
        .reset_index()
        .merge(alerted[["account_id", "snapshot_date"]], on="account_id", how="left")
    )
    ahead = (merged["churn_date"] - merged["snapshot_date"]).dt.days
    merged["lead"] = ahead.where((ahead >= 0) & (ahead <= lookback_days))
    lead = merged.groupby("index")["lead"].max()
    return lead.reindex(events.index).astype(float)


def ranking_figures(
    events: pd.DataFrame, lead: pd.Series, alerted: pd.DataFrame, renewal_label: pd.Series
) -> dict[str, float | None]:
    """Share of churned ARR alerted 90/180 days ahead, median lead (never alerted: 0), alert precision, alerts per owner-week."""
    total = float(events["arr"].sum())
    out: dict[str, float | None] = {}
    for days in LEAD_DAYS:
        out[f"churned_arr_alerted_{days}d"] = (
            round(float(events.loc[lead >= days, "arr"].sum()) / total, 4) if total else None
        )
    out["churned_accounts_alerted"] = round(float(lead.notna().mean()), 4) if len(lead) else None
    out["median_lead_days"] = float(lead.fillna(0).median()) if len(lead) else None
    keys = pd.MultiIndex.from_frame(alerted[["account_id", "snapshot_date"]])
    labels = renewal_label.reindex(keys).dropna()
    out["alert_precision"] = round(float((labels == 1).mean()), 4) if len(labels) else None
    per_week = alerted.groupby("snapshot_date").agg(alerts=("account_id", "size"), owners=("owner", "nunique"))
    out["alerts_per_owner_week"] = round(float((per_week["alerts"] / per_week["owners"]).mean()), 2)
    return out


def lead_curve(events: pd.DataFrame, leads: dict[str, pd.Series], lookback_days: int) -> pd.DataFrame:
    """Per ranking, the share of churned ARR alerted at least ``d`` days before churning, d = 0..lookback weekly."""
    total = float(events["arr"].sum()) or 1.0
    rows = []
    for name, lead in leads.items():
        for days in range(0, lookback_days + 1, 7):
            share = float(events.loc[lead >= days, "arr"].sum()) / total
            rows.append({"ranking": name, "days_before_churn": days, "share_of_churned_arr_alerted": round(share, 4)})
    return pd.DataFrame(rows)
