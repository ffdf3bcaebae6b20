"""Build canonical tables by hand for feature tests (dtypes exactly as features.schemas says)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.params import FeatureParams
from features.schemas import SCHEMAS, TABLES, pandas_dtype


def table(name: str, rows: list[dict]) -> pd.DataFrame:
    """A canonical table from dict rows; absent optional columns are filled with <NA>.

    Timestamps are written as UTC strings ("2025-03-07 22:00"), dates as "2025-03-07".
    """
    spec = TABLES[name]
    data = {}
    for column in spec.columns:
        values = [row.get(column.name) for row in rows]
        dtype = pandas_dtype(column)
        if column.dtype == "timestamp":
            data[column.name] = pd.to_datetime(pd.Series(values, dtype="object"), utc=True).astype(dtype)
        elif column.dtype == "date":
            data[column.name] = pd.to_datetime(pd.Series(values, dtype="object")).astype(dtype)
        else:
            data[column.name] = pd.Series(values, dtype="object").astype(dtype)
    frame = pd.DataFrame(data)
    SCHEMAS[name].validate(frame)
    return frame


def accounts(*rows: dict) -> pd.DataFrame:
    defaults = {"created_date": "2024-01-01"}
    return table("accounts", [defaults | r for r in rows])


def contracts(*rows: dict) -> pd.DataFrame:
    out = []
    for i, r in enumerate(rows):
        out.append({"contract_id": f"k{i}", "arr": 1000.0, "seats": 10, "status": "active"} | r)
    return table("contracts", out)


def emails(*rows: tuple) -> pd.DataFrame:
    """Rows as (account_id, thread_id, sent_at UTC, direction)."""
    return table(
        "emails",
        [
            {"email_id": f"e{i}", "account_id": a, "thread_id": t, "sent_at": ts, "direction": d}
            for i, (a, t, ts, d) in enumerate(rows)
        ],
    )


def _utc(seconds: "np.ndarray", start: pd.Timestamp) -> pd.Series:
    return pd.Series(start.tz_localize("UTC") + pd.to_timedelta(seconds, unit="s")).astype("datetime64[ns, UTC]")


def random_export(
    n_accounts: int = 8, seed: int = 0, start: str = "2024-01-01", days: int = 540, usage_per_day: float = 2.0
) -> dict[str, pd.DataFrame]:
    """A random but well-formed canonical export (all seven tables), for leakage tests and timing.

    Contracts chain renewals with random gaps (some within the grace period, some beyond),
    some are cancelled; e-mail threads mix customer- and us-initiated threads.
    """
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    span = days * 86400
    ids = np.array([f"a{i:05d}" for i in range(n_accounts)])

    acc = pd.DataFrame(
        {
            "account_id": pd.Series(ids, dtype="string"),
            "account_name": pd.Series([None] * n_accounts, dtype="string"),
            "owner": pd.Series([None] * n_accounts, dtype="string"),
            "created_date": pd.Series([t0] * n_accounts, dtype="datetime64[ns]"),
            "region": pd.Series(rng.choice(["NA", "EMEA", "APAC"], n_accounts), dtype="string"),
            "country": pd.Series([None] * n_accounts, dtype="string"),
            "segment": pd.Series(rng.choice(["SMB", "Enterprise"], n_accounts), dtype="string"),
            "industry": pd.Series([None] * n_accounts, dtype="string"),
            "timezone": pd.Series(
                rng.choice(["America/New_York", "Europe/Paris", "Asia/Tokyo", "UTC"], n_accounts), dtype="string"
            ),
        }
    )

    rows = []
    for a in ids:
        begin = t0 + pd.Timedelta(days=int(rng.integers(0, 120)))
        arr, seats = float(rng.integers(5, 100) * 1000), int(rng.integers(5, 50))
        for k in range(int(rng.integers(1, 4))):
            length = int(rng.choice([180, 365]))
            end = begin + pd.Timedelta(days=length)
            cancel = begin + pd.Timedelta(days=int(rng.integers(30, length))) if rng.random() < 0.15 else pd.NaT
            rows.append(
                {
                    "contract_id": f"{a}-k{k}",
                    "account_id": a,
                    "start_date": begin,
                    "end_date": end,
                    "arr": arr,
                    "seats": seats,
                    "status": "cancelled" if pd.notna(cancel) else "ended",
                    "cancel_date": cancel,
                }
            )
            begin = end + pd.Timedelta(days=int(rng.choice([0, 1, 10, 45, 90])))
            arr *= float(rng.choice([0.8, 1.0, 1.2]))
            seats += int(rng.integers(-3, 4))
            seats = max(seats, 0)
    con = pd.DataFrame(rows)
    con = pd.DataFrame(
        {
            "contract_id": con["contract_id"].astype("string"),
            "account_id": con["account_id"].astype("string"),
            "start_date": con["start_date"].astype("datetime64[ns]"),
            "end_date": con["end_date"].astype("datetime64[ns]"),
            "arr": con["arr"].astype("float64"),
            "seats": con["seats"].astype("Int64"),
            "status": con["status"].astype("string"),
            "cancel_date": con["cancel_date"].astype("datetime64[ns]"),
        }
    )

    # e-mail threads: 1-4 messages, first one inbound 70% of the time, then alternating
    n_threads = n_accounts * max(days // 10, 1)
    thread_account = rng.integers(0, n_accounts, n_threads)
    thread_start = rng.uniform(0, span, n_threads)
    sizes = rng.integers(1, 5, n_threads)
    thread_of = np.repeat(np.arange(n_threads), sizes)
    position = np.arange(len(thread_of)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    gaps = rng.exponential(20 * 3600, len(thread_of)) * (position > 0)
    offsets = pd.Series(gaps).groupby(thread_of).cumsum().to_numpy()
    first_inbound = rng.random(n_threads) < 0.7
    inbound = (position % 2 == 0) == first_inbound[thread_of]
    sent = thread_start[thread_of] + offsets
    keep = sent < span
    em = pd.DataFrame(
        {
            "email_id": pd.Series([f"e{i}" for i in range(keep.sum())], dtype="string"),
            "account_id": pd.Series(ids[thread_account[thread_of]][keep], dtype="string"),
            "thread_id": pd.Series([f"t{i}" for i in thread_of[keep]], dtype="string"),
            "sent_at": _utc(sent[keep].round(), t0),
            "direction": pd.Series(np.where(inbound, "inbound", "outbound")[keep], dtype="string"),
        }
    )

    n_meet = n_accounts * max(days // 30, 1)
    meet = pd.DataFrame(
        {
            "meeting_id": pd.Series([f"m{i}" for i in range(n_meet)], dtype="string"),
            "account_id": pd.Series(ids[rng.integers(0, n_accounts, n_meet)], dtype="string"),
            "start_at": _utc(rng.uniform(0, span, n_meet).round(), t0),
            "meeting_type": pd.Series(
                rng.choice(["qbr", "onboarding", "training", "call", "other"], n_meet, p=[0.3, 0.1, 0.1, 0.4, 0.1]),
                dtype="string",
            ),
        }
    )

    n_tk = n_accounts * max(days // 20, 1)
    created = rng.uniform(0, span, n_tk).round()
    first = created + rng.exponential(10 * 3600, n_tk).round()
    closed = first + rng.exponential(4 * 86400, n_tk).round()
    tk = pd.DataFrame(
        {
            "ticket_id": pd.Series([f"k{i}" for i in range(n_tk)], dtype="string"),
            "account_id": pd.Series(ids[rng.integers(0, n_accounts, n_tk)], dtype="string"),
            "created_at": _utc(created, t0),
            "first_response_at": _utc(first, t0).where(rng.random(n_tk) < 0.9),
            "closed_at": _utc(closed, t0).where(rng.random(n_tk) < 0.85),
            "priority": pd.Series(rng.choice(["low", "normal", "high", "urgent"], n_tk), dtype="string"),
            "is_escalated": pd.Series(rng.random(n_tk) < 0.1, dtype="boolean"),
            "csat": pd.Series(np.where(rng.random(n_tk) < 0.5, rng.integers(1, 6, n_tk), np.nan), dtype="float64"),
        }
    )
    tk.loc[tk["closed_at"].isna(), "csat"] = np.nan

    n_use = int(n_accounts * days * usage_per_day)
    use = pd.DataFrame(
        {
            "account_id": pd.Series(ids[rng.integers(0, n_accounts, n_use)], dtype="string"),
            "user_id": pd.Series(np.char.add("u", rng.integers(0, 30, n_use).astype(str)), dtype="string"),
            "feature": pd.Series(np.char.add("f", rng.zipf(1.6, n_use).clip(max=40).astype(str)), dtype="string"),
            "event_at": _utc(rng.uniform(0, span, n_use).round(), t0),
            "event_count": pd.Series(rng.integers(1, 5, n_use), dtype="Int64"),
        }
    )
    use["user_id"] = (use["account_id"] + "-" + use["user_id"]).astype("string")

    n_sv = n_accounts * max(days // 60, 1)
    sent_sv = rng.uniform(0, span, n_sv).round()
    kind = rng.choice(["nps", "csat"], n_sv)
    answered = rng.random(n_sv) < 0.6
    score = np.where(kind == "nps", rng.integers(0, 11, n_sv), rng.integers(1, 6, n_sv)).astype(float)
    sv = pd.DataFrame(
        {
            "survey_id": pd.Series([f"s{i}" for i in range(n_sv)], dtype="string"),
            "account_id": pd.Series(ids[rng.integers(0, n_accounts, n_sv)], dtype="string"),
            "sent_at": _utc(sent_sv, t0),
            "survey_type": pd.Series(kind, dtype="string"),
            "responded_at": _utc(sent_sv + rng.exponential(3 * 86400, n_sv).round(), t0).where(answered),
            "score": pd.Series(np.where(answered, score, np.nan), dtype="float64"),
        }
    )
    return {
        "accounts": acc,
        "contracts": con,
        "emails": em,
        "meetings": meet,
        "tickets": tk,
        "usage_events": use,
        "surveys": sv,
    }


def truncate_contracts(contracts: pd.DataFrame, s: pd.Timestamp) -> pd.DataFrame:
    """Contracts as the CRM held them at ``s``: those starting later gone, later cancellations undone."""
    k = contracts[contracts["start_date"] < s].copy()
    later_cancel = k["cancel_date"] >= s
    k["cancel_date"] = k["cancel_date"].where(~later_cancel)
    k.loc[later_cancel, "status"] = "active"
    return k


def truncate(tables: dict[str, pd.DataFrame], s: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The export as it looked at ``s`` 00:00 UTC: later rows gone, later updates undone (tables it has)."""
    su = s.tz_localize("UTC")
    t = {k: v.copy() for k, v in tables.items()}
    for name, column in (("emails", "sent_at"), ("meetings", "start_at"), ("usage_events", "event_at")):
        if name in t:
            t[name] = t[name][t[name][column] < su]
    if "tickets" in t:
        tk = t["tickets"][t["tickets"]["created_at"] < su].copy()
        tk["first_response_at"] = tk["first_response_at"].where(tk["first_response_at"] < su)
        tk["closed_at"] = tk["closed_at"].where(tk["closed_at"] < su)
        tk["csat"] = tk["csat"].where(tk["closed_at"].notna())
        t["tickets"] = tk
    if "surveys" in t:
        sv = t["surveys"][t["surveys"]["sent_at"] < su].copy()
        answered = sv["responded_at"] < su
        sv["responded_at"] = sv["responded_at"].where(answered)
        sv["score"] = sv["score"].where(answered)
        t["surveys"] = sv
    t["contracts"] = truncate_contracts(t["contracts"], s)
    return t


def feature_params(**overrides) -> FeatureParams:
    """The ``features`` section of params.yaml for hand-made exports (every key given, as params.yaml must)."""
    base = {
        "first_snapshot": "2024-03-04",
        "frequency_days": 7,
        "horizon_days": 90,
        "grace_days": 30,
        "business_hours": (9, 18),
        "engine": "duckdb",
        "usage": {"max_event_types": 20},
    }
    return FeatureParams(**{**base, **overrides})
