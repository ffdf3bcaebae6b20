"""Usage metrics learned from the export's own vocabulary: how much of each event type, per account and user.

The adoption family measures breadth and the overall trend, from the customer-success playbook.
This family lets the product's own event types speak: the ``max_event_types`` types with the most
events over the whole export (ties by name) get their own metrics, the rest are pooled as "other
events". Per event type, before snapshot ``s``:

- events in ``[s-30d, s)`` and in ``[s-90d, s)``;
- events in the last 30 days per active user of the account (missing when no user is known);
- the last 30 days against the monthly average of the 90 days before them, ``[s-120d, s-30d)``
  (missing when that base is zero);

and per account: active days and active users in the last 30 days.

Which types exist is a property of the export, so the specs are built from the vocabulary
(``vocabulary_specs``) and recorded in the catalogue; a model keeps the vocabulary it was trained
on and scoring computes exactly those columns, whatever new types a later export brings (they
count as "other events" when the model has that column, else nowhere). The risk direction of an
event type is not known in advance (fewer posts may mean risk, fewer error events the opposite),
so its specs are ``learned``: no monotone constraint, and the direction used to word reasons is
read from the fitted model (``models.train``).

Computed like adoption: usage reduced to daily rows, each day's events entering and leaving the
windows as +/- deltas at snapshot dates, accumulated along each account's snapshot timeline;
the per-type columns are pivoted before the running sums, so the rows stay (account, snapshot).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.adoption import edges_sql, runs_sql
from features.catalogue import FeatureSpec
from features.duck import KEY, Table, connect, query
from features.engine import sql_literal

FAMILY = "usage"
REQUIRES = ("usage_events",)
OTHER = "other events"  # the label of the pooled rest of the vocabulary

SPECS: list[FeatureSpec] = [
    FeatureSpec(
        "usage_active_days_30d",
        FAMILY,
        "adoption",
        "Active days",
        "The product was used on {value} of the last 30 days",
        "count",
        -1,
    ),
    FeatureSpec(
        "usage_active_users_30d",
        FAMILY,
        "adoption",
        "Active users",
        "{value} people used the product in the last 30 days",
        "count",
        -1,
    ),
]
ACCOUNT_COUNTS = ("usage_active_days_30d", "usage_active_users_30d")


@dataclass(frozen=True)
class Vocabulary:
    """The event types with their own metrics, most events first, and whether the rest is pooled."""

    event_types: tuple[str, ...]
    other: bool

    def as_dict(self) -> dict:
        return {"event_types": list(self.event_types), "other": self.other}

    @classmethod
    def from_dict(cls, doc: dict) -> Vocabulary:
        return cls(tuple(doc["event_types"]), bool(doc["other"]))

    @property
    def labels(self) -> list[str]:
        """What each slot is called in a sentence: the event type's own name, then "other events"."""
        other = OTHER if OTHER not in self.event_types else f"{OTHER} (pooled)"
        return [*self.event_types, *([other] if self.other else [])]

    @property
    def slugs(self) -> list[str]:
        """A column-name part per slot: lower-case ASCII words, unique (a repeat gets ``_2``, ``_3``)."""
        taken: set[str] = set()
        out = []
        for label in self.event_types:
            out.append(_unique(_slug(label), taken))
        if self.other:
            out.append(_unique("other", taken))
        return out


def _slug(name: str) -> str:
    words = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")[:40].strip("_")
    return words or "type"


def _unique(slug: str, taken: set[str]) -> str:
    candidate, n = slug, 1
    while candidate in taken:
        n += 1
        candidate = f"{slug}_{n}"
    taken.add(candidate)
    return candidate


VOCABULARY_SQL = """
    SELECT feature, CAST(sum(coalesce(event_count, 1)) AS BIGINT) AS volume
    FROM usage WHERE feature IS NOT NULL GROUP BY feature"""


def event_vocabulary(tables: dict[str, Table], max_types: int) -> Vocabulary:
    """The ``max_types`` event types with the most events in the whole export (ties by name); the rest pooled."""
    con = connect({"usage": tables["usage_events"][["feature", "event_count"]]})
    volumes = query(con, VOCABULARY_SQL)
    con.close()
    volumes = volumes.assign(feature=volumes["feature"].astype(str), volume=volumes["volume"].astype("int64"))
    ranked = volumes.sort_values(["volume", "feature"], ascending=[False, True], kind="stable")["feature"].tolist()
    return Vocabulary(tuple(ranked[:max_types]), len(ranked) > max_types)


def vocabulary_from(tables: dict[str, Table], max_types: int, fixed: Mapping[str, dict]) -> Vocabulary:
    """The vocabulary the caller fixed for the usage table (a model's), else the export's own."""
    if "usage_events" in fixed:
        return Vocabulary.from_dict(fixed["usage_events"])
    return event_vocabulary(tables, max_types)


def _quoted_braces(text: str) -> str:
    """A name inside a ``str.format`` phrase: its own braces are text, not placeholders."""
    return text.replace("{", "{{").replace("}", "}}")


def event_type_specs(label: str, slug: str) -> list[FeatureSpec]:
    """The four metrics of one event type, worded from its name ("report_viewed in the last 30 days: 3").

    ``learned``: no risk direction is promised; ``reason_group`` makes the four one reason, named
    for importance tables ("Use of report_viewed").
    """
    name = _quoted_braces(label)
    group = f"Use of {label}"

    def spec(column: str, title: str, phrase: str, unit: str) -> FeatureSpec:
        return FeatureSpec(column, FAMILY, "adoption", title, phrase, unit, 0, learned=True, reason_group=group)

    return [
        spec(f"events_{slug}_30d", f"{name}: last 30 days", f"{name} in the last 30 days: {{value}}", "count"),
        spec(f"events_{slug}_90d", f"{name}: last 90 days", f"{name} in the last 90 days: {{value}}", "count"),
        spec(
            f"events_{slug}_per_user_30d",
            f"{name} per active user",
            f"{name} per active user in the last 30 days: {{value}}",
            "ratio",
        ),
        spec(
            f"events_{slug}_trend_30d",
            f"{name}: trend",
            f"{name} in the last 30 days: {{value}} times the monthly average of the 90 days before",
            "ratio",
        ),
    ]


def vocabulary_specs(vocabulary: Vocabulary) -> list[FeatureSpec]:
    """Every spec of the family for this vocabulary: the account-level metrics, then per event type."""
    per_type = [s for label, slug in zip(vocabulary.labels, vocabulary.slugs) for s in event_type_specs(label, slug)]
    return [*SPECS, *per_type]


def _slot_sql(vocabulary: Vocabulary) -> str:
    """The event type's slot number (its place in the vocabulary); the rest: the "other" slot, or NULL."""
    cases = " ".join(f"WHEN {sql_literal(t)} THEN {i}" for i, t in enumerate(vocabulary.event_types))
    rest = str(len(vocabulary.event_types)) if vocabulary.other else "NULL"
    return f"CASE feature {cases} ELSE {rest} END" if cases else rest


def usage_deltas_sql(vocabulary: Vocabulary) -> str:
    """Per (account code, snapshot, slot): what enters and leaves each window at that snapshot.

    A day ``d`` enters the windows at its bucket (the first snapshot after it) and leaves the
    30-, 90- and 120-day windows at the buckets of ``d + 30``, ``d + 90`` and ``d + 120``;
    ``base`` (the 90 days before the last 30) gains a day as it leaves the 30-day window and
    loses it as it leaves the 120-day one. Slot -1 carries the account-level deltas (active days
    and active users). Accounts come as the codes of the ``account_codes`` view, so no id string
    travels back; ``running_windows`` accumulates the deltas along each account's snapshots.
    """
    return f"""
    WITH usage_day AS (
        SELECT account_id, user_id, {_slot_sql(vocabulary)} AS slot,
               date_trunc('day', event_at) AS day, coalesce(event_count, 1) AS n
        FROM usage
    ), days AS (
        SELECT DISTINCT day FROM usage_day
    ), shifted AS (
        SELECT day AS d FROM days
        UNION SELECT day + INTERVAL '30' DAY AS d FROM days
        UNION SELECT day + INTERVAL '90' DAY AS d FROM days
        UNION SELECT day + INTERVAL '120' DAY AS d FROM days
    ), bucket AS (
        SELECT x.d AS day, min(s.snapshot_date) AS snap
        FROM shifted x JOIN snaps s ON s.snapshot_date > x.d
        GROUP BY x.d
    ), seg AS (
        SELECT d.day, b0.snap AS b0, b30.snap AS b30, b90.snap AS b90, b120.snap AS b120
        FROM days d JOIN bucket b0 ON b0.day = d.day
        LEFT JOIN bucket b30 ON b30.day = d.day + INTERVAL '30' DAY
        LEFT JOIN bucket b90 ON b90.day = d.day + INTERVAL '90' DAY
        LEFT JOIN bucket b120 ON b120.day = d.day + INTERVAL '120' DAY
    ), type_seg AS (
        SELECT u.account_id, u.slot, s.b0, s.b30, s.b90, s.b120, CAST(sum(u.n) AS BIGINT) AS n
        FROM usage_day u JOIN seg s ON s.day = u.day
        WHERE u.slot IS NOT NULL
        GROUP BY u.account_id, u.slot, s.b0, s.b30, s.b90, s.b120
    ), active_day AS (
        SELECT a.account_id, s.b0, s.b30
        FROM (SELECT DISTINCT account_id, day FROM usage_day) a JOIN seg s ON s.day = a.day
    ), user_bucket AS (
        SELECT u.account_id, u.user_id, b.snap, max(u.day) AS last_day
        FROM usage_day u JOIN bucket b ON b.day = u.day
        WHERE u.user_id IS NOT NULL
        GROUP BY u.account_id, u.user_id, b.snap
    ), user_edges AS ({edges_sql("user", "user_id", 30)}
    ), deltas AS (
        SELECT account_id, slot, b0 AS snap, n AS d30, n AS d90, 0 AS dbase, 0 AS d_days, 0 AS d_users FROM type_seg
        UNION ALL
        SELECT account_id, slot, b30, -n, 0, n, 0, 0 FROM type_seg WHERE b30 IS NOT NULL
        UNION ALL
        SELECT account_id, slot, b90, 0, -n, 0, 0, 0 FROM type_seg WHERE b90 IS NOT NULL
        UNION ALL
        SELECT account_id, slot, b120, 0, 0, -n, 0, 0 FROM type_seg WHERE b120 IS NOT NULL
        UNION ALL
        SELECT account_id, -1, b0, 0, 0, 0, count(*), 0 FROM active_day GROUP BY account_id, b0
        UNION ALL
        SELECT account_id, -1, b30, 0, 0, 0, -count(*), 0 FROM active_day WHERE b30 IS NOT NULL GROUP BY account_id, b30
        UNION ALL
        SELECT account_id, -1, snap, 0, 0, 0, 0, delta FROM ({runs_sql("user")})
    )
    SELECT a.code, d.snap, d.slot,
           CAST(sum(d.d30) AS BIGINT) AS d30, CAST(sum(d.d90) AS BIGINT) AS d90, CAST(sum(d.dbase) AS BIGINT) AS dbase,
           CAST(sum(d.d_days) AS BIGINT) AS d_days, CAST(sum(d.d_users) AS BIGINT) AS d_users
    FROM deltas d JOIN account_codes a ON a.account_id = d.account_id
    GROUP BY a.code, d.snap, d.slot
    """


def running_windows(
    deltas: pd.DataFrame, accounts: int, snapshots: np.ndarray, slots: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The deltas accumulated along each account's snapshots: counts per (account, snapshot).

    Returns arrays shaped (accounts, snapshots, ...): per slot the 30-day, 90-day and base
    counts, then the account's active days and active users. Sums of integers in float64 are
    exact below 2**53, so the counts equal SQL's running BIGINT sums.
    """
    width = 3 * slots + 2
    code = deltas["code"].to_numpy(dtype="int64")
    when = np.searchsorted(snapshots, pd.to_datetime(deltas["snap"]).to_numpy(dtype="datetime64[ns]"))
    slot = deltas["slot"].to_numpy(dtype="int64")
    cell = (code * len(snapshots) + when) * width
    typed = slot >= 0
    index = [cell[typed] + 3 * slot[typed] + k for k in range(3)] + [cell[~typed] + 3 * slots + k for k in range(2)]
    values = [deltas[c].to_numpy(dtype="float64")[typed] for c in ("d30", "d90", "dbase")]
    values += [deltas[c].to_numpy(dtype="float64")[~typed] for c in ("d_days", "d_users")]
    dense = np.bincount(np.concatenate(index), np.concatenate(values), minlength=accounts * len(snapshots) * width)
    dense = dense.reshape(accounts, len(snapshots), width).cumsum(axis=1)
    per_type = dense[:, :, : 3 * slots].reshape(accounts, len(snapshots), slots, 3)
    return per_type[..., 0], per_type[..., 1], per_type[..., 2], dense[:, :, 3 * slots :]


def usage_features(tables: dict[str, Table], grid: pd.DataFrame, vocabulary: Vocabulary) -> pd.DataFrame:
    """The family's features for every (account, snapshot) of ``grid``, columns as ``vocabulary_specs``.

    Returns:
        ``grid``'s keys plus one float64 column per spec; counts are 0 (not missing) without events.
    """
    usage = tables["usage_events"][["account_id", "user_id", "feature", "event_at", "event_count"]]
    codes, accounts = pd.factorize(grid["account_id"].astype("string"))
    snapshots = np.unique(grid["snapshot_date"].to_numpy(dtype="datetime64[ns]"))
    con = connect({"usage": usage}, grid)
    con.register(
        "account_codes", pd.DataFrame({"account_id": accounts.astype("string"), "code": np.arange(len(accounts))})
    )
    deltas = query(con, usage_deltas_sql(vocabulary))
    con.close()
    slots = len(vocabulary.labels)
    c30, c90, base, account = running_windows(deltas, len(accounts), snapshots, slots)
    row = (codes, np.searchsorted(snapshots, grid["snapshot_date"].to_numpy(dtype="datetime64[ns]")))
    c30, c90, base, account = c30[row], c90[row], base[row], account[row]  # one row per grid row
    users = account[:, 1]
    out = grid[KEY].copy()
    out["usage_active_days_30d"] = account[:, 0]
    out["usage_active_users_30d"] = users
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, slug in enumerate(vocabulary.slugs):
            last30, last90, before = c30[:, i], c90[:, i], base[:, i]
            out[f"events_{slug}_30d"] = last30
            out[f"events_{slug}_90d"] = last90
            out[f"events_{slug}_per_user_30d"] = np.where(users != 0, last30 / users, np.nan)
            out[f"events_{slug}_trend_30d"] = np.where(before != 0, last30 / (before / 3.0), np.nan)
    return out
