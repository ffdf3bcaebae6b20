"""The usage world: a product-led book whose churn follows how much its users use the product.

A second demo world, independent of the CRM one (``simulate``), so the pipeline is judged on
more than the world it was built with. Accounts buy seats on monthly subscriptions (most small
accounts) or annual ones; each term is a contract, a renewal is the next term starting the day
after the last one ends, and churn is a term that is not renewed (a monthly plan cancels at a
month end). The only behaviour table is ``usage_events``: no e-mails, meetings, tickets or
surveys are written.

Mechanics, all drawn before any event so the events reflect them:

- each account has, per event type, a *per-user level* (events per active user-week): a
  population norm times a log-normal account effect; its users are a share of its seats, and a
  share of those is active in a given week;
- the churn hazard at each monthly anniversary is a logistic function of how far the per-user
  levels of the *driving* types sit below their norm (reports viewed, invites sent), whether an
  integration is syncing, a first-months tenure effect and the segment. The other event types
  are noise: their levels never enter the hazard;
- a *decline episode* (a champion leaves, a project ends) makes the driving levels and the
  active users sag over weeks to months and may break the integration; some accounts recover.
  It raises the hazard through the levels, so the sag shows before the churn;
- a monthly plan churns at an anniversary with that month's hazard; an annual plan decides at
  its term end from the hazards of its twelve months (damped: a year's commitment);
- the truth names, for each churned account, the driver with the largest push at the decision.

Accounts (ids, names, places, owners, signup days) come from the CRM world's ``draw_accounts``
and every file is written by its ``ExportWriter``: the same seed and chunking give
byte-identical files. Time is kept as in ``simulate``: ``t`` seconds and ``day`` days since
``start``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.demo import simulate as sim
from pipelines.io import write_json
from pipelines.logs import LOG

WORLD = "usage"

# --------------------------------------------------------------------------------------
# The world: plans, event types, drivers
# --------------------------------------------------------------------------------------

PLANS = ("monthly", "annual")
MONTHLY_SHARE = np.array([0.85, 0.55, 0.25])  # by segment (SMB, Mid-Market, Enterprise): ~70% overall
PRICE_PER_SEAT_MONTH = np.array([30.0, 25.0])  # monthly list price; annual plans get a discount
SEATS_MEDIAN = np.array([4.0, 10.0, 30.0])
SEATS_SIGMA = 0.6
USER_SHARE = (4.0, 2.0)  # Beta: share of the seats that have a user
WEEKLY_ACTIVE = (6.0, 3.0)  # Beta: share of the users active in a normal week


@dataclass(frozen=True)
class EventType:
    """One product event: its per-user level and whether it drives churn.

    ``norm`` is the population's median events per active user-week, ``spread`` the log-sd of
    the accounts' levels around it; ``effect`` is the churn log-odds per standard deviation the
    account's level sits below the norm (0: noise); ``sags`` says the level falls in a decline.
    """

    name: str
    norm: float
    spread: float
    effect: float
    sags: bool


USER_EVENTS: tuple[EventType, ...] = (
    EventType("login", 4.0, 0.35, 0.0, False),
    EventType("report_viewed", 3.0, 0.6, 0.8, True),
    EventType("dashboard_shared", 0.4, 0.7, 0.0, False),
    EventType("invite_sent", 0.12, 0.7, 0.6, True),
    EventType("export_csv", 0.5, 0.8, 0.0, False),
    EventType("comment_posted", 1.0, 0.7, 0.0, False),
    EventType("api_call", 0.6, 1.6, 0.0, False),
)
INTEGRATION = "integration_synced"  # an account-level event, by the integration's service user
EVENT_NAMES = tuple(e.name for e in USER_EVENTS) + (INTEGRATION,)
INTEGRATION_SHARE = np.array([0.35, 0.6, 0.8])  # accounts that ever connect one, by segment
INTEGRATION_DELAY_DAYS = 60.0  # mean days from signup to the integration going live
SYNCS_PER_WEEK = 20.0  # median; log-sd 0.6 across accounts
DRIVING = tuple(i for i, e in enumerate(USER_EVENTS) if e.effect > 0)
SHARED_FACTOR = 0.4  # correlation of an account's driving levels (one engagement factor)

DRIVERS = tuple(USER_EVENTS[i].name for i in DRIVING) + (INTEGRATION, "tenure")
INTEGRATION_EFFECT = 0.8  # log-odds when no integration is syncing
TENURE_EFFECT, TENURE_DAYS = 1.2, 120.0  # log-odds at signup, fading with this time scale
BASE_LOGIT = -5.9
SEGMENT_LOGIT = np.array([0.25, 0.0, -0.3])
FRAILTY_SD = 0.3  # an account's unobserved propensity to leave
ANNUAL_DAMPING = 0.6  # an annual decision weighs its months' hazards this much
LEVEL_LAG_DAYS = 14  # the hazard reads the levels this long before the decision
ACTIVE_DRIVER = 0.3  # log-odds from which a driver counts as active in the truth
BASELINE = "baseline"  # the dominant driver of a churn no driver pushed

EPISODE_PROB = 0.45  # accounts with a decline episode during the period (or the half-year before)
EPISODE_FLOOR = (0.15, 0.5)  # the driving levels fall to this share of their own level
EPISODE_RAMP_DAYS = (21, 120)
RECOVERY_PROB = 0.4
RECOVERY_AFTER_DAYS = (30, 150)  # after the floor is reached
RECOVERY_RAMP_DAYS = 28
INTEGRATION_BREAK_PROB = 0.5  # in a decline, the integration stops syncing half-way down
ACTIVE_SAG = 0.5  # a decline cuts the weekly active users by this share of the level's fall
NEVER = sim.NO_CHURN

EXPORT_FILES = {name: sim.EXPORT_FILES[name] for name in ("accounts", "contracts", "usage_events")}
TRUTH_FILES = sim.TRUTH_FILES
SCHEMAS_OUT: dict[str, pa.Schema] = {
    **{name: sim.SCHEMAS_OUT[name] for name in (*EXPORT_FILES, "accounts_truth")},
    "terms_truth": pa.schema(
        [
            ("contract_id", pa.string()),
            ("account_id", pa.string()),
            ("plan", pa.string()),
            ("start_date", pa.date32()),
            ("end_date", pa.date32()),
            ("drivers", pa.string()),
            ("churn_probability", pa.float64()),
            ("churned_at_end", pa.int64()),
        ]
    ),
}

# --------------------------------------------------------------------------------------
# Accounts: plan, seats, levels, integration, decline episode
# --------------------------------------------------------------------------------------


@dataclass
class Levels:
    """What drives an account's usage and churn, one array entry (or row) per account."""

    plan: np.ndarray  # index into PLANS
    users: np.ndarray  # users with a login (at most the seats)
    weekly_active: np.ndarray  # share of the users active in a normal week
    z: np.ndarray  # (accounts, user events) standardised per-user level, 0 = the norm
    rate: np.ndarray  # (accounts, user events) events per active user-week
    syncs: np.ndarray  # integration syncs per week when live
    integration_from: np.ndarray  # day the integration goes live (NEVER: no integration)
    frailty: np.ndarray
    onset: np.ndarray  # decline episode: first day (NEVER: none)
    ramp: np.ndarray  # days to reach the floor
    floor: np.ndarray  # share of the driving levels left at the bottom
    recover: np.ndarray  # day the recovery starts (NEVER: none)
    broken: np.ndarray  # day the integration stops syncing in the decline (NEVER: it does not)

    def decline(self, acc: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Multiplier of the driving levels on ``day``: 1 outside an episode, down to ``floor``."""
        down = np.clip((day - self.onset[acc]) / self.ramp[acc], 0.0, 1.0)
        up = np.clip((day - self.recover[acc]) / RECOVERY_RAMP_DAYS, 0.0, 1.0)
        return 1.0 - (1.0 - self.floor[acc]) * down * (1.0 - up)

    def integration_live(self, acc: np.ndarray, day: np.ndarray) -> np.ndarray:
        back = self.recover[acc] + RECOVERY_RAMP_DAYS
        return (day >= self.integration_from[acc]) & ~((day >= self.broken[acc]) & (day < back))


def draw_book(rng: np.random.Generator, first_num: int, n: int, n_total: int, cal: sim.Calendar) -> sim.Book:
    """The CRM world's accounts (place, owner, signup) with product-led seats, set on the plan later."""
    book = sim.draw_accounts(rng, first_num, n, n_total, cal)
    seats = np.maximum(1, np.round(SEATS_MEDIAN[book.seg] * rng.lognormal(0, SEATS_SIGMA, n))).astype(np.int64)
    return replace(book, seats0=seats, arr0=np.zeros(n))


def draw_levels(rng: np.random.Generator, book: sim.Book, cal: sim.Calendar) -> Levels:
    """Plan, users, per-user levels per event type, integration and decline episode of each account."""
    n = len(book)
    plan = (rng.random(n) >= MONTHLY_SHARE[book.seg]).astype(np.int64)
    users = np.maximum(1, np.round(book.seats0 * rng.beta(*USER_SHARE, n))).astype(np.int64)
    z = rng.standard_normal((n, len(USER_EVENTS)))
    shared = rng.standard_normal(n)
    driving = list(DRIVING)
    z[:, driving] = np.sqrt(1 - SHARED_FACTOR) * z[:, driving] + np.sqrt(SHARED_FACTOR) * shared[:, None]
    norm = np.array([e.norm for e in USER_EVENTS])
    spread = np.array([e.spread for e in USER_EVENTS])
    integrated = rng.random(n) < INTEGRATION_SHARE[book.seg]
    delay = np.round(rng.exponential(INTEGRATION_DELAY_DAYS, n)).astype(np.int64)

    first = np.maximum(book.created, -180)
    onset = first + np.floor(rng.random(n) * np.maximum(cal.days - first, 1)).astype(np.int64)
    onset = np.where(rng.random(n) < EPISODE_PROB, onset, NEVER)
    ramp = rng.integers(*EPISODE_RAMP_DAYS, size=n, endpoint=True)
    recover = onset + ramp + rng.integers(*RECOVERY_AFTER_DAYS, size=n, endpoint=True)
    recover = np.where((onset < NEVER) & (rng.random(n) < RECOVERY_PROB), recover, NEVER)
    broken = np.where((onset < NEVER) & (rng.random(n) < INTEGRATION_BREAK_PROB), onset + ramp // 2, NEVER)
    return Levels(
        plan=plan,
        users=users,
        weekly_active=rng.beta(*WEEKLY_ACTIVE, n),
        z=z,
        rate=norm * np.exp(spread * z),
        syncs=SYNCS_PER_WEEK * rng.lognormal(0, 0.6, n),
        integration_from=np.where(integrated, book.created + delay, NEVER),
        frailty=FRAILTY_SD * rng.standard_normal(n),
        onset=onset,
        ramp=ramp.astype(np.float64),
        floor=rng.uniform(*EPISODE_FLOOR, n),
        recover=recover,
        broken=broken,
    )


# --------------------------------------------------------------------------------------
# Churn: a hazard per monthly anniversary, a decision per term end
# --------------------------------------------------------------------------------------


@dataclass
class Lifecycle:
    """Every term of the chunk's accounts and how each account's spell ends."""

    acc: np.ndarray  # terms, sorted by account then k
    k: np.ndarray
    start: np.ndarray
    end: np.ndarray
    p_churn: np.ndarray
    churned: np.ndarray
    drivers: np.ndarray  # (terms, drivers) log-odds each driver added at the decision
    churn_day: np.ndarray  # per account: end of the last term, NEVER if it renews throughout
    dominant: np.ndarray  # per account: index into DRIVERS + (BASELINE, "")


def contributions(levels: Levels, book: sim.Book, acc: np.ndarray, day: np.ndarray) -> np.ndarray:
    """(rows, drivers) log-odds each driver adds to the churn hazard of ``acc`` deciding on ``day``."""
    seen = day - LEVEL_LAG_DAYS
    out = np.empty((acc.size, len(DRIVERS)))
    sag = np.log(levels.decline(acc, seen))
    for j, i in enumerate(DRIVING):
        event = USER_EVENTS[i]
        out[:, j] = event.effect * np.maximum(0.0, -(levels.z[acc, i] + sag / event.spread))
    out[:, -2] = INTEGRATION_EFFECT * ~levels.integration_live(acc, seen)
    out[:, -1] = TENURE_EFFECT * np.exp(-np.maximum(day - book.created[acc], 0) / TENURE_DAYS)
    return out


def _window_sum(values: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Sum over the last ``width[a]`` months (axis 1) of each row, at every month."""
    cum = np.concatenate([np.zeros_like(values[:, :1]), np.cumsum(values, axis=1)], axis=1)
    months = np.arange(values.shape[1])[None, :]
    lo = np.maximum(months + 1 - width[:, None], 0)
    return cum[:, 1:] - cum[np.arange(values.shape[0])[:, None], lo]


def draw_lifecycle(rng: np.random.Generator, book: sim.Book, levels: Levels, cal: sim.Calendar) -> Lifecycle:
    """Terms from signup to churn or to the end of the period, with the renewal decisions.

    Anniversaries form an (accounts, months) matrix: month ``m`` ends on signup plus ``m``
    months minus a day. Terms that end before the period are renewals by construction (the
    account is in the book at ``start``), as is a term ending on the period's last day (its
    renewal would start after the export). A monthly term ends at every anniversary, an
    annual one at every twelfth.
    """
    n = len(book)
    months = int(np.ceil((cal.days - book.created.min()) / 28)) + 13
    acc = np.repeat(np.arange(n), months)
    m = np.tile(np.arange(1, months + 1), n)
    end = sim._add_months(book.created[acc], m, cal) - 1
    drivers = contributions(levels, book, acc, end)
    logit = BASE_LOGIT + SEGMENT_LOGIT[book.seg[acc]] + levels.frailty[acc] + drivers.sum(axis=1)
    hazard = (1.0 / (1.0 + np.exp(-logit))).reshape(n, months)
    end, m = end.reshape(n, months), m.reshape(n, months)

    annual = levels.plan == PLANS.index("annual")
    width = np.where(annual, 12, 1)
    damping = np.where(annual, ANNUAL_DAMPING, 1.0)[:, None]
    p = 1.0 - np.exp(damping * _window_sum(np.log1p(-hazard), width))
    mean_drivers = (
        np.stack([_window_sum(drivers[:, j].reshape(n, months), width) for j in range(len(DRIVERS))], axis=2)
        / width[:, None, None]
    )

    is_end = m % width[:, None] == 0
    decided = is_end & (end >= 0) & (end < cal.days - 1)
    churns = decided & (rng.random((n, months)) < p)
    churn_m = np.where(churns.any(axis=1), churns.argmax(axis=1), months)
    start = np.concatenate([book.created[:, None], end[:, :-1] + 1], axis=1)  # start of month m's period
    term_start = start[np.arange(n)[:, None], np.maximum(np.arange(months)[None, :] + 1 - width[:, None], 0)]
    exists = is_end & (term_start <= cal.days - 1) & (np.arange(months)[None, :] <= churn_m[:, None])
    if (exists & (np.arange(months)[None, :] == months - 1)).any():
        raise AssertionError("anniversary matrix too short for the period")

    a, mm = np.nonzero(exists)  # row-major: sorted by account, then month
    k = np.cumsum(exists, axis=1)[a, mm] - 1
    churned_account = churn_m < months
    churn_day = np.where(churned_account, end[np.arange(n), np.minimum(churn_m, months - 1)], NEVER)
    last_drivers = mean_drivers[np.arange(n), np.minimum(churn_m, months - 1)]
    dominant = np.where(last_drivers.max(axis=1) >= ACTIVE_DRIVER, last_drivers.argmax(axis=1), len(DRIVERS))
    return Lifecycle(
        acc=a,
        k=k,
        start=term_start[a, mm],
        end=end[a, mm],
        p_churn=p[a, mm],
        churned=churns[a, mm] & (mm == churn_m[a]),
        drivers=mean_drivers[a, mm],
        churn_day=churn_day,
        dominant=np.where(churned_account, dominant, len(DRIVERS) + 1),
    )


# --------------------------------------------------------------------------------------
# Usage: one row per (user, event type, week) with its count
# --------------------------------------------------------------------------------------


def simulate_usage(
    rng: np.random.Generator, book: sim.Book, levels: Levels, life: Lifecycle, cal: sim.Calendar
) -> dict[str, np.ndarray]:
    """Weekly events of every active user and of each live integration, until the account churns."""
    n = len(book)
    alive_from = np.maximum(book.created, 0)
    last = np.minimum(life.churn_day, cal.days - 1)
    w0, w1 = alive_from // 7, last // 7
    lengths = np.maximum(w1 - w0 + 1, 0)
    acc = np.repeat(np.arange(n), lengths)
    week = w0[acc] + np.arange(acc.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    first_day = week * 7
    days_in = np.minimum(first_day + 6, last[acc]) - np.maximum(first_day, alive_from[acc]) + 1
    presence = np.clip(days_in, 0, 7) / 7
    weekdays = np.clip(first_day[:, None] + np.arange(5)[None, :], 0, cal.days - 1)
    holiday = cal.holiday[book.loc[acc][:, None], weekdays].mean(axis=1)
    ramp_up = np.clip((first_day - book.created[acc] + 7) / 42, 0.15, 1.0)  # onboarding over ~6 weeks
    sag = levels.decline(acc, first_day + 3)
    p_active = levels.weekly_active[acc] * presence * holiday * ramp_up * (1 - ACTIVE_SAG * (1 - sag))
    active = rng.binomial(levels.users[acc], np.clip(p_active, 0.0, 1.0))

    # user-weeks: users 0..k-1 of the account (the first ones are its most regular users)
    uw = np.repeat(np.arange(acc.size), active)
    user = np.arange(uw.size) - np.repeat(np.cumsum(active) - active, active)
    busy = rng.gamma(2.0, 0.5, uw.size)
    parts = []
    for i, event in enumerate(USER_EVENTS):
        lam = levels.rate[acc[uw], i] * busy * (sag[uw] if event.sags else 1.0)
        count = rng.poisson(lam)
        keep = count > 0
        parts.append((uw[keep], user[keep], np.full(keep.sum(), i), count[keep]))
    live = levels.integration_live(acc, first_day + 3)
    syncs = rng.poisson(levels.syncs[acc] * presence * live)
    keep = syncs > 0
    parts.append((np.flatnonzero(keep), np.full(keep.sum(), -1), np.full(keep.sum(), len(USER_EVENTS)), syncs[keep]))

    row, r_user, r_event, r_count = (np.concatenate(col) for col in zip(*parts, strict=True))
    r_acc, r_week = acc[row], week[row]
    t = sim.week_times(rng, cal, book.tz[r_acc], r_week, alive_from[r_acc], last[r_acc])
    order = np.lexsort((r_event, r_user, t, r_acc))
    return {"acc": r_acc[order], "user": r_user[order], "event": r_event[order], "t": t[order], "count": r_count[order]}


# --------------------------------------------------------------------------------------
# Tables and files
# --------------------------------------------------------------------------------------


def _driver_lists(pushes: np.ndarray) -> pa.Array:
    """Semicolon-joined names of the drivers that pushed at least ACTIVE_DRIVER, row by row."""
    return sim._driver_lists(pushes >= ACTIVE_DRIVER, DRIVERS)


def chunk_tables(
    book: sim.Book, levels: Levels, life: Lifecycle, usage: dict[str, np.ndarray], cal: sim.Calendar, n_total: int
) -> dict[str, pa.Table]:
    """The chunk's rows of the three export tables and the two truth tables, in canonical shape."""
    acc_ids = sim.account_ids(book.num)
    of = lambda idx: pc.take(acc_ids, pa.array(np.asarray(idx, dtype=np.int64)))  # noqa: E731
    plan = levels.plan[life.acc]
    contract_ids = sim.term_ids(book.num[life.acc], life.k, width=3)
    churned = life.churn_day < NEVER
    last_term = np.zeros(len(book), dtype=np.int64)
    last_term[life.acc] = np.arange(life.acc.size)  # terms are sorted by account, then k
    return {
        "accounts": sim.accounts_table(book, cal, n_total),
        "contracts": pa.table(
            {
                "contract_id": contract_ids,
                "account_id": of(life.acc),
                "start_date": sim._dates(cal, life.start),
                "end_date": sim._dates(cal, life.end),
                "arr": pa.array(np.round(book.seats0[life.acc] * PRICE_PER_SEAT_MONTH[plan] * 12, 2)),
                "seats": pa.array(book.seats0[life.acc]),
                "status": sim._pick(("active", "ended"), (life.end < cal.days - 1).astype(np.int64)),
                "cancel_date": pa.nulls(life.acc.size, pa.date32()),
            },
            schema=SCHEMAS_OUT["contracts"],
        ),
        "usage_events": pa.table(
            {
                "account_id": of(usage["acc"]),
                "user_id": sim.user_ids(book.num[usage["acc"]], usage["user"]),
                "feature": sim._pick(EVENT_NAMES, usage["event"]),
                "event_at": sim._event_times(cal, usage["t"]),
                "event_count": pa.array(usage["count"].astype(np.int64)),
            },
            schema=SCHEMAS_OUT["usage_events"],
        ),
        "accounts_truth": pa.table(
            {
                "account_id": acc_ids,
                "churned": pa.array(churned.astype(np.int64)),
                "churn_date": sim._dates(cal, np.where(churned, life.churn_day, 0), missing=~churned),
                "dominant_driver": sim._pick(DRIVERS + (BASELINE, ""), life.dominant),
                "active_drivers": pc.if_else(
                    pa.array(churned), _driver_lists(life.drivers[last_term]), pa.scalar("", pa.string())
                ),
            },
            schema=SCHEMAS_OUT["accounts_truth"],
        ),
        "terms_truth": pa.table(
            {
                "contract_id": contract_ids,
                "account_id": of(life.acc),
                "plan": sim._pick(PLANS, plan),
                "start_date": sim._dates(cal, life.start),
                "end_date": sim._dates(cal, life.end),
                "drivers": _driver_lists(life.drivers),
                "churn_probability": pa.array(np.round(life.p_churn, 4)),
                "churned_at_end": pa.array(life.churned.astype(np.int64), mask=life.end >= cal.days - 1),
            },
            schema=SCHEMAS_OUT["terms_truth"],
        ),
    }


STREAMS = ("accounts", "levels", "lifecycle", "usage")
WORLD_KEY = 2  # keeps this world's random streams apart from the CRM world's


def _rng(seed: int, chunk: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, chunk, WORLD_KEY, STREAMS.index(stream)])


def simulate_chunk(
    seed: int, chunk: int, first_num: int, n: int, n_total: int, cal: sim.Calendar
) -> tuple[sim.Book, Levels, Lifecycle, dict[str, np.ndarray]]:
    """Accounts, levels, terms and usage of one chunk of accounts (pure: no I/O)."""
    book = draw_book(_rng(seed, chunk, "accounts"), first_num, n, n_total, cal)
    levels = draw_levels(_rng(seed, chunk, "levels"), book, cal)
    life = draw_lifecycle(_rng(seed, chunk, "lifecycle"), book, levels, cal)
    usage = simulate_usage(_rng(seed, chunk, "usage"), book, levels, life, cal)
    return book, levels, life, usage


@dataclass
class _Tally:
    """Book-level figures accumulated over chunks for simulation.json."""

    churned: int = 0
    exposure_days: float = 0.0
    dominant: Counter = field(default_factory=Counter)
    plans: Counter = field(default_factory=Counter)
    segments: Counter = field(default_factory=Counter)

    def add(self, book: sim.Book, levels: Levels, life: Lifecycle, cal: sim.Calendar) -> None:
        churned = life.churn_day < NEVER
        self.churned += int(churned.sum())
        last = np.minimum(life.churn_day, cal.days - 1)
        self.exposure_days += float(np.maximum(last - np.maximum(book.created, 0) + 1, 0).sum())
        self.dominant.update((DRIVERS + (BASELINE,))[d] for d in life.dominant[churned])
        self.plans.update(PLANS[p] for p in levels.plan)
        self.segments.update(sim.SEGMENTS[s] for s in book.seg)


def simulate(
    accounts: int, seed: int, start: dt.date, end: dt.date, out: Path, truth: Path, chunk_size: int = 1_000
) -> dict:
    """Generate the usage world's export into ``out`` and its ground truth into ``truth``.

    Returns the summary also written to ``truth/simulation.json`` (world, seed, sizes, row
    counts, churn rate, plan and driver mix).
    """
    if accounts < 1:
        raise ValueError("accounts must be at least 1")
    cal = sim.build_calendar(start, end)
    tally = _Tally()
    out, truth = Path(out), Path(truth)
    with sim.ExportWriter(out, truth, EXPORT_FILES, TRUTH_FILES, SCHEMAS_OUT) as writer:
        for chunk, first in enumerate(range(0, accounts, chunk_size)):
            n = min(chunk_size, accounts - first)
            book, levels, life, usage = simulate_chunk(seed, chunk, first + 1, n, accounts, cal)
            writer.write(chunk_tables(book, levels, life, usage, cal, accounts))
            tally.add(book, levels, life, cal)
            LOG.debug("chunk %d: %d accounts, %d usage rows", chunk, n, usage["acc"].size)
        rows = dict(writer.rows)
    years = tally.exposure_days / 365.25
    summary = {
        "world": WORLD,
        **sim.run_summary(seed, accounts, start, end, chunk_size, rows, EXPORT_FILES, TRUTH_FILES),
        "churned_accounts": tally.churned,
        "churn_rate": round(tally.churned / accounts, 4),
        "annual_churn_rate": round(tally.churned / years, 4) if years else None,
        "churns_per_13_weeks": round(tally.churned / (cal.days / 91), 1),
        "account_years": round(years, 1),
        "dominant_driver_of_churned": dict(sorted(tally.dominant.items())),
        "plans": dict(sorted(tally.plans.items())),
        "segments": dict(sorted(tally.segments.items())),
        "event_types": {name: ("driver" if name in DRIVERS else "noise") for name in EVENT_NAMES},
        "usage_rows_per_account": round(rows["usage_events"] / accounts, 1),
    }
    write_json(summary, truth / "simulation.json")
    return summary
