"""Analysis helpers behind the notebooks: pure functions on frames, no I/O, no plotting.

The notebooks only load outputs (``pipelines.outputs``), call these functions and plot, so
every number a notebook shows is computed by tested code, and the same definitions serve
the next notebook instead of being copied into it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

WATCH_TIERS = ("high", "medium")  # the tiers a CS team works through each week
REASON_SLOTS = (1, 2, 3)


# ---------------------------------------------------------------- the export (01)


def table_coverage(tables: Mapping[str, pd.DataFrame], date_columns: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Rows, accounts and first/last date per table: does the export cover the period we think it does?

    Args:
        tables: canonical tables by name.
        date_columns: per table, the date/timestamp columns to span (e.g. from ``features.schemas.TABLES``).

    Returns:
        One row per table, indexed by table name, with ``rows``, ``accounts``, ``first`` and ``last``
        (naive UTC timestamps; NaT when the table has no dates).
    """
    rows = []
    for name, frame in tables.items():
        days = [_naive(frame[c]) for c in date_columns.get(name, ()) if c in frame and frame[c].notna().any()]
        rows.append(
            {
                "table": name,
                "rows": len(frame),
                "accounts": frame["account_id"].nunique() if "account_id" in frame else np.nan,
                "first": min((d.min() for d in days), default=pd.NaT),
                "last": max((d.max() for d in days), default=pd.NaT),
            }
        )
    return pd.DataFrame(rows).set_index("table")


def _naive(series: pd.Series) -> pd.Series:
    """Timestamps as naive UTC so that dates of different tables compare."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").dt.tz_localize(None)
    return pd.to_datetime(series)


def ingest_summary(report: dict) -> pd.DataFrame:
    """Per table of ``reports/ingest.json``: rows read, kept, rejected, filtered and repaired.

    Returns:
        Indexed by table: ``rows_read``, ``rows_kept``, ``rows_rejected``, ``rows_filtered``,
        ``rows_repaired`` (sums over reasons) and ``kept_share``.
    """
    rows = []
    for name, table in report.get("tables", {}).items():
        rows.append(
            {
                "table": name,
                "rows_read": table["rows_read"],
                "rows_kept": table["rows_kept"],
                "rows_rejected": sum(table.get("rows_rejected", {}).values()),
                "rows_filtered": sum(table.get("rows_filtered", {}).values()),
                "rows_repaired": sum(table.get("rows_repaired", {}).values()),
            }
        )
    out = pd.DataFrame(
        rows, columns=["table", "rows_read", "rows_kept", "rows_rejected", "rows_filtered", "rows_repaired"]
    )
    out["kept_share"] = out["rows_kept"] / out["rows_read"].where(out["rows_read"] > 0)
    return out.set_index("table")


def ingest_issues(report: dict) -> pd.DataFrame:
    """Every repair, rejection and filter of the ingest report with its reason: nothing vanishes silently.

    Returns:
        Long frame with ``table``, ``action`` (repaired / rejected / filtered / note), ``reason``
        and ``rows`` (NaN for notes), largest first; empty when the export was clean.
    """
    rows = []
    for name, table in report.get("tables", {}).items():
        for action in ("repaired", "rejected", "filtered"):
            for reason, count in table.get(f"rows_{action}", {}).items():
                rows.append({"table": name, "action": action, "reason": reason, "rows": count})
        rows.extend(
            {"table": name, "action": "note", "reason": note, "rows": np.nan} for note in table.get("notes", [])
        )
    out = pd.DataFrame(rows, columns=["table", "action", "reason", "rows"])
    return out.sort_values(["rows", "table"], ascending=[False, True], na_position="last", kind="stable").reset_index(
        drop=True
    )


def rejected_reasons(rejected: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Counts of rejected rows per table and reason, with the first source row as an example to look up.

    Returns:
        ``table``, ``reason``, ``rows``, ``example_row`` (row number in the source file); empty if none.
    """
    parts = []
    for name, frame in rejected.items():
        if frame.empty or "reason" not in frame:
            continue
        grouped = (
            frame.groupby("reason", sort=False).agg(rows=("reason", "size"), example_row=("row", "min")).reset_index()
        )
        grouped.insert(0, "table", name)
        parts.append(grouped)
    if not parts:
        return pd.DataFrame(columns=["table", "reason", "rows", "example_row"])
    return (
        pd.concat(parts, ignore_index=True).sort_values("rows", ascending=False, kind="stable").reset_index(drop=True)
    )


def latency_by_group(
    latencies: pd.DataFrame, group: str, threshold_hours: float = 48.0, value: str = "latency_hours"
) -> pd.DataFrame:
    """Reply latency per group (e.g. region): median, p90 and the share of replies slower than the threshold.

    Unanswered e-mails (NaN latency) are counted apart: they are not fast replies.

    Returns:
        Indexed by ``group``: ``inbound``, ``answered``, ``median_hours``, ``p90_hours``,
        ``over_threshold_share`` (of answered) and ``unanswered_share``.
    """
    g = latencies.groupby(group, observed=True, dropna=False)[value]
    out = pd.DataFrame(
        {
            "inbound": g.size(),
            "answered": g.count(),
            "median_hours": g.median(),
            "p90_hours": g.quantile(0.9),
            "over_threshold_share": g.apply(
                lambda s: (s.dropna() > threshold_hours).mean() if s.notna().any() else np.nan
            ),
        }
    )
    out["unanswered_share"] = 1 - out["answered"] / out["inbound"]
    return out


def reply_latencies(
    emails: pd.DataFrame, accounts: pd.DataFrame, business_hours: tuple[int, int] = (9, 18)
) -> pd.DataFrame:
    """Every inbound e-mail with its reply latency, by the very SQL the reply-latency features use.

    Reusing ``features.responsiveness.inbound_replies_sql`` keeps the notebook's distributions and
    the model's features on one definition (next outbound message in the same thread, calendar and
    business hours in the customer's time zone).

    Returns:
        ``account_id``, ``sent_at``, ``reply_at`` (NaT if unanswered), ``latency_hours``,
        ``latency_business_hours``, plus ``region`` and ``segment`` from ``accounts``.
    """
    from features.duck import connect, query
    from features.responsiveness import account_time_zones, inbound_replies_sql

    con = connect(
        {
            "emails": emails[["account_id", "thread_id", "sent_at", "direction"]],
            "account_tz": account_time_zones(accounts),
        }
    )
    try:
        replies = query(con, inbound_replies_sql(*business_hours))
    finally:
        con.close()
    replies["account_id"] = replies["account_id"].astype("string")
    attributes = [c for c in ("region", "segment") if c in accounts]
    return replies.merge(
        accounts[["account_id", *attributes]].drop_duplicates("account_id"), on="account_id", how="left"
    )


def ecdf(values: pd.Series) -> pd.DataFrame:
    """Empirical CDF: ``value`` and ``share`` of rows at or below it (NaN left out), for "within x hours" reads."""
    v = np.sort(pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float))
    return pd.DataFrame({"value": v, "share": np.arange(1, len(v) + 1) / max(len(v), 1)})


def gaps_between(events: pd.DataFrame, time_column: str, key: str = "account_id") -> pd.DataFrame:
    """Days between consecutive events of the same account (e.g. QBR to QBR).

    Returns:
        One row per event after an account's first: ``key``, ``time_column`` and ``gap_days`` (float).
    """
    ordered = events[[key, time_column]].dropna().sort_values([key, time_column], kind="stable")
    times = _naive(ordered[time_column])
    gap = times.groupby(ordered[key].to_numpy()).diff().dt.total_seconds() / 86400
    out = ordered.assign(gap_days=gap.to_numpy())
    return out[out["gap_days"].notna()].reset_index(drop=True)


def active_contracts(contracts: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The contract covering ``as_of`` per account (latest start), ignoring contracts cancelled before it."""
    day = pd.Timestamp(as_of)
    end = (
        contracts["end_date"].where(
            contracts["cancel_date"].isna() | (contracts["cancel_date"] > contracts["end_date"]),
            contracts["cancel_date"],
        )
        if "cancel_date" in contracts
        else contracts["end_date"]
    )
    live = contracts[(contracts["start_date"] <= day) & (end >= day)]
    return live.sort_values(["account_id", "start_date"], kind="stable").drop_duplicates("account_id", keep="last")


def adoption_vs_seats(
    usage: pd.DataFrame, contracts: pd.DataFrame, as_of: pd.Timestamp, days: int = 30
) -> pd.DataFrame:
    """Active users in the last ``days`` against contracted seats, for the accounts under contract at ``as_of``.

    Returns:
        Indexed by ``account_id``: ``seats``, ``arr``, ``active_users``, ``features_used`` and
        ``seat_utilisation`` (active users / seats; NaN when seats are unknown or 0).
    """
    day = pd.Timestamp(as_of)
    current = active_contracts(contracts, day).set_index("account_id")
    when = _naive(usage["event_at"])
    recent = usage[(when >= day - pd.Timedelta(days=days)) & (when < day)]
    per_account = recent.groupby("account_id").agg(
        active_users=("user_id", "nunique"), features_used=("feature", "nunique")
    )
    out = current[["seats", "arr"]].join(per_account, how="left")
    out[["active_users", "features_used"]] = out[["active_users", "features_used"]].fillna(0)
    seats = pd.to_numeric(out["seats"], errors="coerce").astype(float)
    out["seat_utilisation"] = out["active_users"] / seats.where(seats > 0)
    return out


def contract_spells(contracts: pd.DataFrame, grace_days: int) -> pd.DataFrame:
    """Customer spells (contracts merged across renewals within the grace period), as the labels define them.

    Returns:
        ``account_id``, ``spell``, ``spell_start``, ``spell_end``.
    """
    from features.duck import connect, query
    from features.snapshots import spells_sql

    con = connect({"contracts": contracts[["account_id", "start_date", "end_date", "cancel_date"]]})
    try:
        spells = query(con, spells_sql(grace_days))
    finally:
        con.close()
    spells["account_id"] = spells["account_id"].astype("string")
    return spells.sort_values(["account_id", "spell"], kind="stable").reset_index(drop=True)


def account_lifetimes(
    spells: pd.DataFrame, last_date: pd.Timestamp, grace_days: int, observed_from: pd.Timestamp | None = None
) -> pd.DataFrame:
    """First customer spell per account, as survival data: how long until churn, or until we stopped watching.

    An export usually holds only the accounts still customers when its history starts
    (``observed_from``); older cohorts are then *left-truncated*, and ``entry_days`` says from which
    tenure each account was observable, so ``kaplan_meier`` does not count their survivors as luck.

    Args:
        spells: one row per (account_id, spell) with ``spell_start`` and ``spell_end`` (contracts merged
            across renewals within the grace period, as the labels use them).
        last_date: last day the export observes.
        grace_days: a spell end is a confirmed churn once ``end + grace_days <= last_date``.

    Returns:
        Indexed by ``account_id``: ``signup`` (first spell start), ``end``, ``churned`` (bool) and
        ``duration_days`` (to churn, or to ``last_date`` when censored) and ``entry_days`` (0, or the
        tenure at ``observed_from`` for accounts signed before it).
    """
    last = pd.Timestamp(last_date)
    first = spells.sort_values(["account_id", "spell_start"], kind="stable").drop_duplicates("account_id")
    start, end = pd.to_datetime(first["spell_start"]), pd.to_datetime(first["spell_end"])
    churned = (end + pd.Timedelta(days=grace_days)) <= last
    stop = end.where(churned, last)
    return pd.DataFrame(
        {
            "signup": start.to_numpy(),
            "end": end.to_numpy(),
            "churned": churned.to_numpy(),
            "duration_days": ((stop - start).dt.days).to_numpy(dtype=float),
            "entry_days": (
                (pd.Timestamp(observed_from) - start).dt.days.clip(lower=0).to_numpy(dtype=float)
                if observed_from is not None
                else np.zeros(len(first))
            ),
        },
        index=pd.Index(first["account_id"].to_numpy(), name="account_id"),
    )


def kaplan_meier(duration: pd.Series, event: pd.Series, entry: pd.Series | None = None) -> pd.DataFrame:
    """Kaplan-Meier retention: the share still a customer after t days, counting censored accounts fairly.

    A plain "churned / signed" ratio understates churn of recent cohorts (most have not reached
    their first renewal yet); Kaplan-Meier only counts accounts while they are observed: from
    ``entry`` (delayed entry, 0 by default) to their churn or censoring ``duration``.

    Returns:
        ``days`` (event times, starting at 0), ``at_risk``, ``churned`` and ``retention``.
    """
    d = pd.to_numeric(duration, errors="coerce").to_numpy(dtype=float)
    e = np.asarray(event, dtype=bool)
    s = np.zeros(len(d)) if entry is None else pd.to_numeric(entry, errors="coerce").fillna(0).to_numpy(dtype=float)
    keep = ~np.isnan(d) & (d > s)  # an account that ended before we could observe it tells us nothing
    d, e, s = d[keep], e[keep], s[keep]
    times = np.unique(d[e])
    at_risk = np.array([((s < t) & (d >= t)).sum() for t in times], dtype=float)
    churned = np.array([((d == t) & e).sum() for t in times], dtype=float)
    retention = np.cumprod(1 - churned / np.where(at_risk > 0, at_risk, np.nan))
    return pd.DataFrame(
        {
            "days": np.r_[0.0, times],
            "at_risk": np.r_[float(len(d)), at_risk],
            "churned": np.r_[0.0, churned],
            "retention": np.r_[1.0, retention],
        }
    )


def retention_by_cohort(lifetimes: pd.DataFrame, freq: str = "Y", min_accounts: int = 20) -> pd.DataFrame:
    """Kaplan-Meier retention per signup cohort (year by default), long format for plotting.

    Returns:
        ``cohort`` (string period), ``accounts`` and the ``kaplan_meier`` columns; cohorts smaller
        than ``min_accounts`` are left out (their curves are noise).
    """
    cohort = lifetimes["signup"].dt.to_period(freq).astype(str)
    parts = []
    for name, part in lifetimes.groupby(cohort, sort=True):
        if len(part) < min_accounts:
            continue
        curve = kaplan_meier(part["duration_days"], part["churned"], part.get("entry_days"))
        curve.insert(0, "accounts", len(part))
        curve.insert(0, "cohort", name)
        parts.append(curve)
    return (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["cohort", "accounts", "days", "at_risk", "churned", "retention"])
    )


def churn_rate_by_band(
    frame: pd.DataFrame, column: str, edges: Sequence[float], labels: Sequence[str] | None = None, label: str = "label"
) -> pd.DataFrame:
    """Observed churn rate (labelled snapshots only) per band of a feature, e.g. tenure in years.

    Returns:
        Indexed by band: ``snapshots``, ``churned`` and ``churn_rate``.
    """
    labelled = frame[frame[label].notna()]
    band = pd.cut(pd.to_numeric(labelled[column], errors="coerce"), bins=list(edges), labels=labels, right=False)
    y = labelled[label].astype(float)
    g = y.groupby(band, observed=False)
    return pd.DataFrame({"snapshots": g.size(), "churned": g.sum(), "churn_rate": g.mean()}).rename_axis(column)


# ---------------------------------------------------------------- the model (02)


def with_probability(predictions: pd.DataFrame, probability: np.ndarray, name: str = "p_model") -> pd.DataFrame:
    """A copy of the test predictions with ``name`` replaced: compare the model loaded, not the one on disk."""
    out = predictions.copy()
    out[name] = np.asarray(probability, dtype=float)
    return out


def metrics_table(predictions: pd.DataFrame, names: Sequence[str] = ("model", "logistic", "health")) -> pd.DataFrame:
    """Test-window metrics of the model and its baselines side by side (columns), from ``p_<name>``."""
    from models.evaluate import classification_metrics

    y = predictions["label"].astype(int).to_numpy()
    arr = predictions["arr"].to_numpy() if "arr" in predictions else None
    return pd.DataFrame({n: classification_metrics(y, predictions[f"p_{n}"].to_numpy(), arr) for n in names})


def latest_snapshot(features: pd.DataFrame) -> pd.DataFrame:
    """The rows of the most recent snapshot: this week's accounts (unlabelled, the ones we score)."""
    return features[features["snapshot_date"] == features["snapshot_date"].max()]


def pick_account(frame: pd.DataFrame, probability: np.ndarray, account: str | None = None) -> str:
    """The account to explain: the one asked for, else the highest-probability one."""
    ids = frame["account_id"].astype(str).to_numpy()
    if account is not None:
        if account not in set(ids):
            raise KeyError(f"account {account!r} is not in the latest snapshot")
        return account
    return str(ids[int(np.argmax(probability))])


def waterfall_explanation(contrib: pd.DataFrame, base_value: float, X: pd.DataFrame, row) -> "shap.Explanation":  # noqa: F821
    """A ``shap.Explanation`` of one row (index label ``row``), ready for ``shap.plots.waterfall``."""
    import shap

    data = numeric_matrix(X.loc[[row]]).iloc[0].to_numpy(dtype=float)
    return shap.Explanation(
        values=contrib.loc[row].to_numpy(dtype=float),
        base_values=float(base_value),
        data=data,
        feature_names=list(X.columns),
    )


def numeric_matrix(X: pd.DataFrame) -> pd.DataFrame:
    """The model matrix as floats (categories as their codes), as SHAP's plots need it."""
    return X.apply(
        lambda c: (
            c.cat.codes.astype(float).where(c.notna())
            if c.dtype.name == "category"
            else pd.to_numeric(c, errors="coerce").astype(float)
        )
    )


def mean_abs_contribution(contrib: pd.DataFrame, groups: dict[str, str] | None = None) -> pd.Series:
    """Mean |SHAP| per feature, largest first: importance on the scale of the scores themselves.

    ``groups`` (feature -> reason title, ``FeatureSpec.group_title``) sums each reason's features
    per row first, so an event type's four learned metrics are one bar, as they are one reason.
    """
    if groups is not None:
        contrib = contrib.T.groupby(pd.Series(groups).reindex(contrib.columns).to_numpy()).sum().T
    return contrib.abs().mean().sort_values(ascending=False).rename("mean_abs_shap")


def dependence_curve(values: pd.Series, contrib: pd.Series, bins: int = 20) -> pd.DataFrame:
    """Median SHAP contribution per quantile bin of a feature: the shape the model learned.

    Returns:
        ``value`` (median feature value of the bin), ``contribution`` (median SHAP) and ``rows``.
    """
    frame = pd.DataFrame({"value": pd.to_numeric(values, errors="coerce"), "contribution": contrib}).dropna()
    if frame.empty:
        return pd.DataFrame(columns=["value", "contribution", "rows"])
    q = pd.qcut(frame["value"], q=bins, duplicates="drop")
    g = frame.groupby(q, observed=True)
    return pd.DataFrame(
        {"value": g["value"].median(), "contribution": g["contribution"].median(), "rows": g.size()}
    ).reset_index(drop=True)


def step_at(values: pd.Series, contrib: pd.Series, threshold: float, width: float) -> dict[str, float]:
    """Does the model see a threshold? Mean SHAP just below vs just above it.

    Compares rows in ``[threshold - width, threshold)`` with rows in ``[threshold, threshold + width)``;
    a clear positive ``step`` means risk jumps where the business rule says it should.

    Returns:
        ``below``, ``above``, ``step`` (above - below, log-odds) and row counts ``n_below``, ``n_above``.
    """
    v = pd.to_numeric(values, errors="coerce")
    below = contrib[(v >= threshold - width) & (v < threshold)]
    above = contrib[(v >= threshold) & (v < threshold + width)]
    b, a = float(below.mean()) if len(below) else np.nan, float(above.mean()) if len(above) else np.nan
    return {"below": b, "above": a, "step": a - b, "n_below": int(len(below)), "n_above": int(len(above))}


# ---------------------------------------------------------------- the weekly list (03)


def arr_at_risk_by(at_risk: pd.DataFrame, by: str, watch: Iterable[str] = WATCH_TIERS) -> pd.DataFrame:
    """ARR and expected ARR at risk per owner / segment / region / tier, largest exposure first.

    Returns:
        Indexed by ``by``: ``accounts``, ``arr``, ``expected_arr_at_risk``, ``watch_accounts``
        (accounts in the watch tiers), ``watch_arr`` and ``mean_probability``; with a renewal
        model, also ``arr_at_risk_at_renewal`` (what the renewals may lose, any date ahead).
    """
    frame = at_risk.assign(_watch=at_risk["risk_tier"].isin(list(watch)))
    frame = frame.assign(_watch_arr=frame["arr"].where(frame["_watch"], 0.0))
    g = frame.groupby(by, dropna=False, observed=True)
    out = pd.DataFrame(
        {
            "accounts": g.size(),
            "arr": g["arr"].sum(),
            "expected_arr_at_risk": g["expected_arr_at_risk"].sum(),
            "watch_accounts": g["_watch"].sum(),
            "watch_arr": g["_watch_arr"].sum(),
            "mean_probability": g["churn_probability"].mean(),
        }
    )
    if "arr_at_risk_at_renewal" in frame and frame["arr_at_risk_at_renewal"].notna().any():
        out.insert(2, "arr_at_risk_at_renewal", g["arr_at_risk_at_renewal"].sum())
    return out.sort_values("expected_arr_at_risk", ascending=False, kind="stable")


def headline(at_risk: pd.DataFrame, watch: Iterable[str] = WATCH_TIERS) -> pd.Series:
    """The week in five numbers: accounts scored, on the watch list, ARR, ARR on the watch list, expected ARR at risk."""
    on_list = at_risk["risk_tier"].isin(list(watch))
    return pd.Series(
        {
            "accounts_scored": len(at_risk),
            "watch_accounts": int(on_list.sum()),
            "arr": float(at_risk["arr"].sum()),
            "watch_arr": float(at_risk.loc[on_list, "arr"].sum()),
            "expected_arr_at_risk": float(at_risk["expected_arr_at_risk"].sum()),
        }
    )


def reason_signals(at_risk: pd.DataFrame, playbook: Mapping[str, str]) -> pd.DataFrame:
    """The signal family behind each reason slot, read back from its play (one play per signal).

    Reasons are worded with numbers ("ends in 15 days"), so counting their text would split one
    reason into many; the play is the stable key.

    Returns:
        Columns ``signal_1``..``signal_3`` aligned on ``at_risk``'s index (<NA> where no reason).
    """
    signal_of = {" ".join(str(play).split()): signal for signal, play in playbook.items()}
    out = pd.DataFrame(index=at_risk.index)
    for r in REASON_SLOTS:
        plays = at_risk.get(f"play_{r}", pd.Series(pd.NA, index=at_risk.index))
        out[f"signal_{r}"] = plays.map(
            lambda p: signal_of.get(" ".join(str(p).split())) if pd.notna(p) else pd.NA
        ).astype("string")
    return out


def reason_counts(
    at_risk: pd.DataFrame,
    playbook: Mapping[str, str],
    signal_labels: Mapping[str, str] | None = None,
    watch: Iterable[str] | None = WATCH_TIERS,
) -> pd.DataFrame:
    """How often each signal is among an account's top reasons, and the expected ARR at risk behind it.

    Returns:
        Indexed by ``signal``: ``label`` (plain words), ``first_reason`` (accounts where it is reason 1),
        ``any_reason`` (in the top 3), ``expected_arr_at_risk`` (of the accounts where it is reason 1)
        and ``play``; most frequent first reason first.
    """
    frame = at_risk if watch is None else at_risk[at_risk["risk_tier"].isin(list(watch))]
    signals = reason_signals(frame, playbook)
    first = signals["signal_1"]
    anywhere = pd.concat([signals[c] for c in signals], ignore_index=True).dropna()
    per_account_any = signals.apply(lambda row: set(row.dropna()), axis=1)
    names = sorted(set(anywhere))
    out = pd.DataFrame(index=pd.Index(names, name="signal", dtype=object))
    out["label"] = [(signal_labels or {}).get(n, n) for n in names]
    out["first_reason"] = [int((first == n).sum()) for n in names]
    out["any_reason"] = [int(sum(n in s for s in per_account_any)) for n in names]
    out["expected_arr_at_risk"] = [
        float(frame.loc[(first == n).fillna(False).to_numpy(), "expected_arr_at_risk"].sum()) for n in names
    ]
    out["play"] = [playbook.get(n, "") for n in names]
    return out.sort_values(["first_reason", "any_reason"], ascending=False, kind="stable")


def watch_list(at_risk: pd.DataFrame, watch: Iterable[str] = WATCH_TIERS) -> pd.DataFrame:
    """The accounts a CS team works this week: the watch tiers, in the CSV's own rank order."""
    return at_risk[at_risk["risk_tier"].isin(list(watch))].sort_values("rank", kind="stable")


COMPARE_COLUMNS = [
    "account_id",
    "account_name",
    "owner",
    "segment",
    "region",
    "status",
    "tier_before",
    "tier_now",
    "p_before",
    "p_now",
    "p_change",
    "rank_before",
    "rank_now",
    "arr",
    "expected_arr_at_risk",
    "reason_1",
    "what_changed",
]


def compare_weeks(before: pd.DataFrame, now: pd.DataFrame, watch: Iterable[str] = WATCH_TIERS) -> pd.DataFrame:
    """Last week's at-risk list against this week's, one row per account seen in either.

    ``status`` is ``new`` (on the watch list now, not last week), ``exit`` (on it last week, not now,
    including accounts no longer active), ``stays`` (on both) or ``off`` (on neither).

    Returns:
        The ``COMPARE_COLUMNS``, with ``p_change`` = this week's probability minus last week's
        (NaN when an account is missing from one week).
    """
    watch = list(watch)
    keep = [
        "account_id",
        "account_name",
        "owner",
        "segment",
        "region",
        "risk_tier",
        "churn_probability",
        "rank",
        "arr",
        "expected_arr_at_risk",
        "reason_1",
        "what_changed",
    ]
    b = before[[c for c in keep if c in before]].set_index("account_id")
    n = now[[c for c in keep if c in now]].set_index("account_id")
    ids = n.index.union(b.index)
    out = pd.DataFrame(index=pd.Index(ids, name="account_id"))
    for column in (
        "account_name",
        "owner",
        "segment",
        "region",
        "arr",
        "expected_arr_at_risk",
        "reason_1",
        "what_changed",
    ):
        latest = _column(n, column, ids)  # this week's value, else last week's (accounts that left)
        out[column] = latest.where(latest.notna(), _column(b, column, ids))
    out["tier_before"] = b["risk_tier"].reindex(ids)
    out["tier_now"] = n["risk_tier"].reindex(ids)
    out["p_before"] = b["churn_probability"].reindex(ids).astype(float)
    out["p_now"] = n["churn_probability"].reindex(ids).astype(float)
    out["p_change"] = out["p_now"] - out["p_before"]
    out["rank_before"] = b["rank"].reindex(ids).astype("Int64")
    out["rank_now"] = n["rank"].reindex(ids).astype("Int64")
    was, is_ = out["tier_before"].isin(watch), out["tier_now"].isin(watch)
    out["status"] = np.select([is_ & ~was, was & ~is_, was & is_], ["new", "exit", "stays"], default="off")
    return (
        out.reset_index()[COMPARE_COLUMNS]
        .sort_values(["status", "p_now"], ascending=[True, False], kind="stable")
        .reset_index(drop=True)
    )


def _column(frame: pd.DataFrame, column: str, ids: pd.Index) -> pd.Series:
    return frame[column].reindex(ids) if column in frame else pd.Series(pd.NA, index=ids, dtype=object)


def new_entries(comparison: pd.DataFrame) -> pd.DataFrame:
    """Accounts that joined the watch list this week, highest probability first."""
    return comparison[comparison["status"] == "new"].sort_values("p_now", ascending=False, kind="stable")


def exits(comparison: pd.DataFrame) -> pd.DataFrame:
    """Accounts that left the watch list (risk went down, or no longer active), largest drop first."""
    return comparison[comparison["status"] == "exit"].sort_values(
        "p_change", ascending=True, na_position="first", kind="stable"
    )


def biggest_moves(comparison: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """Accounts active both weeks whose probability moved most, either way."""
    both = comparison[comparison["p_change"].notna()]
    order = both["p_change"].abs().sort_values(ascending=False, kind="stable").index
    return both.loc[order].head(top)


def status_counts(comparison: pd.DataFrame) -> pd.Series:
    """How many accounts are new, exiting, staying on the watch list (``off`` left out)."""
    return comparison["status"].value_counts().reindex(["new", "exit", "stays"], fill_value=0)
