"""The demo CRM simulator: a book of B2B SaaS accounts whose churn has known causes.

Churn is *caused* by mechanisms, never painted on afterwards: for every contract term we
draw which risk drivers switch on (names from ``features.catalogue.SIGNALS``) and when;
the drivers then degrade the account's e-mails, meetings, tickets, surveys and usage from
their onset on, and the renewal decision at term end is a logistic function of the same
drivers. Holidays are benign look-alikes: they silence e-mail and usage but never enter
the churn decision.

Everything is generated per chunk of accounts, fully vectorised with numpy, and appended
to the export files, so memory stays bounded whatever the number of accounts. Only a
seeded ``numpy`` generator is used (one stream per chunk and table), the gzip header has
``mtime=0`` and rows are sorted stably: the same seed gives byte-identical files.

Time is kept as seconds since ``start`` 00:00 UTC ("t") and whole days since ``start``
("day"); ``start`` is shifted to nothing, so weeks start on ``start``'s weekday.
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.catalogue import SIGNALS
from pipelines.io import atomic_path, write_json
from pipelines.logs import LOG

DAY = 86_400
HOUR = 3_600
BH_START, BH_END = 9 * HOUR, 18 * HOUR  # business hours, local time
BH_LEN = BH_END - BH_START

# --------------------------------------------------------------------------------------
# The world: segments, places, products, drivers
# --------------------------------------------------------------------------------------

SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
SEGMENT_SHARE = (0.6, 0.3, 0.1)
ARR_MEDIAN = np.array([10_000.0, 50_000.0, 250_000.0])
ARR_SIGMA = np.array([0.6, 0.5, 0.6])
ARR_PER_SEAT = np.array([800.0, 1_000.0, 1_500.0])
EMAILS_PER_YEAR = np.array([110.0, 160.0, 230.0])  # both directions, healthy account
# E-mails per started thread, net of the weekend and holiday thinning below: turns the yearly
# e-mail volume into a thread rate (calibrated on a 2,000-account run).
EMAILS_PER_THREAD = 2.3
TICKETS_PER_YEAR = np.array([3.0, 7.0, 14.0])
WEEKLY_ACTIVE_USERS = np.array([5.0, 9.0, 16.0])  # users seen in a week, healthy
FEATURE_BREADTH = np.array([[4, 8], [6, 11], [8, 13]])  # features adopted: [low, high)
TRAININGS_PER_YEAR = np.array([0.6, 1.5, 2.5])
CALLS_PER_YEAR = np.array([1.5, 3.0, 5.0])
OTHER_MEETINGS_PER_YEAR = np.array([0.5, 1.0, 2.0])
SEGMENT_LOGIT = np.array([0.35, 0.0, -0.35])  # small accounts churn more, all else equal

# (country, region, IANA time zone, share of accounts)
LOCATIONS: tuple[tuple[str, str, str, float], ...] = (
    ("US", "NA", "America/New_York", 0.15),
    ("US", "NA", "America/Chicago", 0.08),
    ("US", "NA", "America/Denver", 0.03),
    ("US", "NA", "America/Los_Angeles", 0.10),
    ("CA", "NA", "America/Toronto", 0.05),
    ("GB", "EMEA", "Europe/London", 0.09),
    ("FR", "EMEA", "Europe/Paris", 0.07),
    ("DE", "EMEA", "Europe/Berlin", 0.06),
    ("IT", "EMEA", "Europe/Rome", 0.04),
    ("ES", "EMEA", "Europe/Madrid", 0.04),
    ("NL", "EMEA", "Europe/Amsterdam", 0.02),
    ("SE", "EMEA", "Europe/Stockholm", 0.02),
    ("BR", "LATAM", "America/Sao_Paulo", 0.04),
    ("MX", "LATAM", "America/Mexico_City", 0.03),
    ("CO", "LATAM", "America/Bogota", 0.01),
    ("JP", "APAC", "Asia/Tokyo", 0.04),
    ("AU", "APAC", "Australia/Sydney", 0.04),
    ("IN", "APAC", "Asia/Kolkata", 0.03),
    ("SG", "APAC", "Asia/Singapore", 0.02),
)
REGIONS = ("NA", "EMEA", "LATAM", "APAC")
# Our CSM teams sit in one hub per region: replies follow *their* business hours.
CSM_HUB_TZ = {"NA": "America/New_York", "EMEA": "Europe/Paris", "LATAM": "America/Sao_Paulo", "APAC": "Asia/Singapore"}
ACCOUNTS_PER_CSM = 60

INDUSTRIES = (
    "Software",
    "Financial Services",
    "Healthcare",
    "Retail",
    "Manufacturing",
    "Logistics",
    "Media",
    "Education",
    "Professional Services",
    "Energy",
    "Hospitality",
    "Real Estate",
)
NAME_HEAD = (
    "Northwind",
    "Blue Harbor",
    "Silverline",
    "Redwood",
    "Granite",
    "Brightpath",
    "Cobalt",
    "Evergreen",
    "Summit",
    "Ironclad",
    "Lakeside",
    "Pioneer",
    "Crescent",
    "Maple",
    "Orion",
    "Atlas",
    "Beacon",
    "Keystone",
    "Horizon",
    "Sterling",
    "Falcon",
    "Juniper",
    "Meridian",
    "Aurora",
    "Cedar",
    "Harbor",
    "Nimbus",
    "Quartz",
    "Riverside",
    "Sequoia",
    "Tidewater",
    "Vanguard",
    "Willow",
    "Zenith",
    "Alder",
    "Copperfield",
    "Driftwood",
    "Everest",
    "Foxglove",
    "Highland",
)
NAME_TAIL = (
    "Logistics",
    "Analytics",
    "Health",
    "Foods",
    "Capital",
    "Systems",
    "Retail",
    "Energy",
    "Media",
    "Labs",
    "Manufacturing",
    "Partners",
    "Software",
    "Insurance",
    "Freight",
    "Studios",
    "Robotics",
    "Pharma",
    "Consulting",
    "Outfitters",
    "Networks",
    "Brands",
    "Mobility",
    "Learning",
)
NAME_SUFFIX = ("", "", "", " Inc", " Group", " Ltd", " Co", " GmbH", " SA", " Holdings")

# Product catalogue: (feature, popularity weight, mean events per user-week)
PRODUCT_FEATURES: tuple[tuple[str, float, float], ...] = (
    ("dashboards", 10.0, 14.0),
    ("reports", 8.0, 8.0),
    ("search", 7.0, 10.0),
    ("alerts", 5.0, 6.0),
    ("exports", 4.0, 4.0),
    ("comments", 4.0, 6.0),
    ("integrations", 3.0, 5.0),
    ("workflows", 3.0, 7.0),
    ("api", 2.0, 30.0),
    ("mobile", 2.0, 5.0),
    ("sso", 1.0, 2.0),
    ("admin", 1.5, 3.0),
)


@dataclass(frozen=True)
class Driver:
    """One churn mechanism: how often it switches on, when, how fast and how strongly.

    ``effect`` is its addition to the churn log-odds at term end (times a severity in
    [0.6, 1]); ``onset_days`` is the range of days before the term end when it starts;
    ``ramp_days`` is how long its signal takes to reach full strength.
    """

    name: str
    prob: float
    effect: float
    onset_days: tuple[int, int]
    ramp_days: int


DRIVERS: tuple[Driver, ...] = (
    Driver("responsiveness", 0.08, 3.2, (60, 240), 14),
    Driver("qbr", 0.10, 2.8, (120, 270), 0),  # SMB: prob 0.04, effect 0.8 (see _draw_drivers)
    Driver("adoption", 0.08, 3.0, (90, 240), 60),
    Driver("support", 0.06, 2.6, (60, 200), 21),
    Driver("voice", 0.04, 2.4, (150, 300), 0),
    Driver("first_year", 0.30, 2.0, (0, 0), 0),  # first terms only; onset = term start
)
DRIVER_NAMES = tuple(d.name for d in DRIVERS)
D_RESP, D_QBR, D_ADOPT, D_SUPPORT, D_VOICE, D_FIRST = range(len(DRIVERS))
QBR_SMB_PROB, QBR_SMB_EFFECT = 0.04, 0.8
BASE_LOGIT = -3.6  # a driver-free term churns ~3-4% of the time: the "renewal" driver
NOISE_SD = 0.5
MID_TERM_CANCEL_SHARE = 0.08  # of churning terms, cancelled before term end
RESIDUAL_ACTIVITY = 0.25  # activity level in the couple of weeks after churn
assert all(name in SIGNALS for name in DRIVER_NAMES + ("renewal",))

# Holidays: movable dates for the years the demo spans (outside them only fixed-date ones apply).
EASTER_FRIDAY = {2023: "2023-04-07", 2024: "2024-03-29", 2025: "2025-04-18", 2026: "2026-04-03", 2027: "2027-03-26"}
CARNIVAL_MONDAY = {2023: "2023-02-20", 2024: "2024-02-12", 2025: "2025-03-03", 2026: "2026-02-16", 2027: "2027-02-08"}
DIWALI = {2023: "2023-11-12", 2024: "2024-11-01", 2025: "2025-10-21", 2026: "2026-11-08", 2027: "2027-10-29"}
LUNAR_NEW_YEAR = {2023: "2023-01-22", 2024: "2024-02-10", 2025: "2025-01-29", 2026: "2026-02-17", 2027: "2027-02-06"}
EUROPE = ("GB", "FR", "DE", "IT", "ES", "NL", "SE")

EXPORT_FILES = {
    "accounts": "accounts.csv",
    "contracts": "contracts.csv",
    "emails": "emails.csv.gz",
    "meetings": "meetings.csv",
    "tickets": "tickets.csv",
    "surveys": "surveys.csv",
    "usage_events": "usage_events.parquet",
}
TRUTH_FILES = {"accounts_truth": "accounts_truth.csv", "terms_truth": "terms_truth.csv"}

# --------------------------------------------------------------------------------------
# Calendar: days, UTC offsets per time zone, holiday activity factors per location
# --------------------------------------------------------------------------------------

TZ_NAMES = tuple(sorted({loc[2] for loc in LOCATIONS} | set(CSM_HUB_TZ.values())))
LOC_TZ = np.array([TZ_NAMES.index(loc[2]) for loc in LOCATIONS])
LOC_REGION = np.array([REGIONS.index(loc[1]) for loc in LOCATIONS])
REGION_HUB_TZ = np.array([TZ_NAMES.index(CSM_HUB_TZ[r]) for r in REGIONS])


@dataclass(frozen=True)
class Calendar:
    """The simulated period and what the clock looks like in each place, day by day."""

    start: dt.date
    days: int  # number of days from start to end, both included
    utc_offset: np.ndarray  # (time zones, days) seconds to add to UTC to get local time
    holiday: np.ndarray  # (locations, days) activity factor, 1 = normal, 0.2 = mostly away

    @property
    def weeks(self) -> int:
        return (self.days + 6) // 7

    @property
    def horizon(self) -> int:
        """First second after the simulated period: nothing happens from here on."""
        return self.days * DAY

    def date64(self, day: np.ndarray) -> np.ndarray:
        return np.datetime64(self.start, "D") + np.asarray(day, dtype=np.int64)


def _holiday_ranges(country: str, year: int) -> list[tuple[dt.date, dt.date, float]]:
    """Holiday periods of one country in one year, as (first day, last day, activity factor)."""
    d = dt.date
    ranges = [(d(year, 12, 23), d(year + 1, 1, 2), 0.3)]  # Christmas and New Year, everywhere
    if country in ("FR", "IT", "ES"):
        ranges.append((d(year, 8, 1), d(year, 8, 21), 0.3))  # the August shutdown
    if country == "SE":
        ranges.append((d(year, 7, 8), d(year, 7, 28), 0.35))
    if country in EUROPE and year in EASTER_FRIDAY:
        friday = dt.date.fromisoformat(EASTER_FRIDAY[year])
        ranges.append((friday, friday + dt.timedelta(days=3), 0.5))
    if country == "US":
        thursday = d(year, 11, 1) + dt.timedelta(days=(3 - d(year, 11, 1).weekday()) % 7 + 21)
        ranges += [
            (thursday - dt.timedelta(days=1), thursday + dt.timedelta(days=3), 0.3),
            (d(year, 7, 3), d(year, 7, 7), 0.5),
        ]
    if country == "JP":
        ranges += [
            (d(year, 4, 29), d(year, 5, 6), 0.25),
            (d(year, 8, 13), d(year, 8, 16), 0.4),
            (d(year, 12, 28), d(year + 1, 1, 4), 0.25),
        ]
    if country == "BR" and year in CARNIVAL_MONDAY:
        monday = dt.date.fromisoformat(CARNIVAL_MONDAY[year])
        ranges.append((monday - dt.timedelta(days=2), monday + dt.timedelta(days=4), 0.2))
    if country == "MX" and year in EASTER_FRIDAY:
        friday = dt.date.fromisoformat(EASTER_FRIDAY[year])
        ranges.append((friday - dt.timedelta(days=4), friday + dt.timedelta(days=2), 0.35))
    if country == "IN" and year in DIWALI:
        day = dt.date.fromisoformat(DIWALI[year])
        ranges.append((day - dt.timedelta(days=2), day + dt.timedelta(days=3), 0.35))
    if country == "SG" and year in LUNAR_NEW_YEAR:
        day = dt.date.fromisoformat(LUNAR_NEW_YEAR[year])
        ranges.append((day - dt.timedelta(days=1), day + dt.timedelta(days=3), 0.35))
    if country == "AU":
        ranges.append((d(year, 12, 20), d(year + 1, 1, 15), 0.35))  # summer holidays
    return ranges


def build_calendar(start: dt.date, end: dt.date) -> Calendar:
    """Offsets and holiday factors for every day of [start, end]; a loop over days, not events."""
    if end < start:
        raise ValueError(f"demo end {end} is before start {start}")
    days = (end - start).days + 1
    dates = [start + dt.timedelta(days=i) for i in range(days)]
    offsets = np.empty((len(TZ_NAMES), days), dtype=np.int64)
    for z, name in enumerate(TZ_NAMES):
        zone = ZoneInfo(name)
        offsets[z] = [
            int(dt.datetime(x.year, x.month, x.day, 12, tzinfo=zone).utcoffset().total_seconds()) for x in dates
        ]
    holiday = np.ones((len(LOCATIONS), days), dtype=np.float64)
    for i, (country, *_rest) in enumerate(LOCATIONS):
        for year in range(start.year - 1, end.year + 1):
            for first, last, factor in _holiday_ranges(country, year):
                lo, hi = max((first - start).days, 0), min((last - start).days, days - 1)
                if lo <= hi:
                    holiday[i, lo : hi + 1] = np.minimum(holiday[i, lo : hi + 1], factor)
    return Calendar(start=start, days=days, utc_offset=offsets, holiday=holiday)


def _offset(cal: Calendar, tz: np.ndarray, day: np.ndarray) -> np.ndarray:
    return cal.utc_offset[tz, np.clip(day, 0, cal.days - 1)]


def _local_to_utc(cal: Calendar, tz: np.ndarray, day: np.ndarray, sod: np.ndarray) -> np.ndarray:
    """Local (day, second of day) in zone ``tz`` to t (seconds since start, UTC)."""
    return day * DAY + sod - _offset(cal, tz, day)


def _utc_to_local(cal: Calendar, tz: np.ndarray, t: np.ndarray) -> np.ndarray:
    return t + _offset(cal, tz, np.floor_divide(t, DAY).astype(np.int64))


def _local_seconds_to_utc(cal: Calendar, tz: np.ndarray, tl: np.ndarray) -> np.ndarray:
    """Local seconds (as from _utc_to_local) back to whole UTC seconds."""
    return np.round(tl - _offset(cal, tz, np.floor_divide(tl, DAY).astype(np.int64)))


def _weekday(day: np.ndarray, cal: Calendar) -> np.ndarray:
    return (np.asarray(day) + cal.start.weekday()) % 7


# --------------------------------------------------------------------------------------
# Business time arithmetic, vectorised (local seconds, 9-18 Monday-Friday)
# --------------------------------------------------------------------------------------

_NEXT_BUSINESS_DAY = np.array([1, 1, 1, 1, 3, 2, 1])  # from Mon..Sun to the next Mon-Fri


def _next_business_moment(tl: np.ndarray, cal: Calendar) -> np.ndarray:
    """The first business-hours instant at or after local time ``tl``."""
    day = np.floor_divide(tl, DAY).astype(np.int64)
    sod = tl - day * DAY
    wd = _weekday(day, cal)
    move = (wd >= 5) | (sod >= BH_END)
    day = np.where(move, day + _NEXT_BUSINESS_DAY[wd], day)
    sod = np.where(move | (sod < BH_START), BH_START, sod)
    return day * DAY + sod


def _add_business_days(day: np.ndarray, k: np.ndarray, cal: Calendar) -> np.ndarray:
    """``day`` (a business day) plus ``k`` business days."""
    day = day + 7 * (k // 5)
    extra = k % 5
    wd = _weekday(day, cal)
    return day + extra + np.where(wd + extra >= 5, 2, 0)


def _add_business_hours(tl: np.ndarray, hours: np.ndarray, cal: Calendar) -> np.ndarray:
    """Local time ``tl`` plus ``hours`` of business time (nights and weekends do not count)."""
    t = _next_business_moment(tl, cal)
    day = np.floor_divide(t, DAY).astype(np.int64)
    left_today = day * DAY + BH_END - t
    need = hours * HOUR
    k = np.ceil(np.maximum(need - left_today, 0) / BH_LEN).astype(np.int64)
    later = _add_business_days(day, k, cal) * DAY + BH_START + (need - left_today - (k - 1) * BH_LEN)
    return np.where(need <= left_today, t + need, later)


# --------------------------------------------------------------------------------------
# Accounts and contract terms
# --------------------------------------------------------------------------------------


@dataclass
class Book:
    """The accounts of one chunk and their lifecycle, one array entry per account."""

    num: np.ndarray  # global account number, 1-based
    seg: np.ndarray
    loc: np.ndarray
    tz: np.ndarray
    hub_tz: np.ndarray
    industry: np.ndarray
    csm: np.ndarray
    created: np.ndarray  # day (negative: before the simulated period)
    arr0: np.ndarray
    seats0: np.ndarray
    name: list[str]
    # set by draw_terms, once the lifecycle is known
    churn_day: np.ndarray | None = None  # day of churn, NO_CHURN if none
    alive_from: np.ndarray | None = None  # first day with activity in the period
    alive_to: np.ndarray | None = None  # last day with activity (residual included)

    def __len__(self) -> int:
        return len(self.num)


@dataclass
class Terms:
    """All contract terms of one chunk, sorted by account then term index."""

    acc: np.ndarray
    k: np.ndarray
    start: np.ndarray
    end: np.ndarray
    arr: np.ndarray
    seats: np.ndarray
    cancel: np.ndarray  # cancel day, -1 if none
    on: np.ndarray  # (terms, drivers) bool
    onset: np.ndarray  # (terms, drivers) day
    severity: np.ndarray  # (terms, drivers) in [0.6, 1] when on, else 0
    effect: np.ndarray  # (terms, drivers) log-odds added when on
    p_churn: np.ndarray
    churn_planned: np.ndarray  # the renewal decision, also for terms not yet due
    churned: np.ndarray  # churn realised within the period


NO_CHURN = np.iinfo(np.int64).max // 4


def _company_names(rng: np.random.Generator, n: int) -> list[str]:
    head = rng.integers(len(NAME_HEAD), size=n)
    tail = rng.integers(len(NAME_TAIL), size=n)
    suffix = rng.integers(len(NAME_SUFFIX), size=n)
    return [f"{NAME_HEAD[h]} {NAME_TAIL[t]}{NAME_SUFFIX[s]}" for h, t, s in zip(head, tail, suffix, strict=True)]


def _csm_blocks(n_total: int) -> tuple[np.ndarray, np.ndarray, int]:
    """CSMs per region (about one per 60 accounts): first index and count of each region's team."""
    shares = np.array([sum(loc[3] for loc in LOCATIONS if loc[1] == r) for r in REGIONS])
    total = max(len(REGIONS), round(n_total / ACCOUNTS_PER_CSM))
    sizes = np.maximum(1, np.round(total * shares / shares.sum()).astype(np.int64))
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return firsts, sizes, int(sizes.sum())


def draw_accounts(rng: np.random.Generator, first_num: int, n: int, n_total: int, cal: Calendar) -> Book:
    """Who the customers are: segment, place, size, owner and signup day."""
    seg = rng.choice(3, size=n, p=SEGMENT_SHARE)
    weights = np.array([loc[3] for loc in LOCATIONS])
    loc = rng.choice(len(LOCATIONS), size=n, p=weights / weights.sum())
    # 60% were already customers when the period starts (renewal history), the rest sign during it
    older = rng.random(n) < 0.6
    created = np.where(older, -rng.integers(1, 5 * 365, size=n), rng.integers(0, max(cal.days - 14, 1), size=n))
    arr0 = np.round(ARR_MEDIAN[seg] * np.exp(ARR_SIGMA[seg] * rng.standard_normal(n)), -2)
    seats0 = np.maximum(2, np.round(arr0 / ARR_PER_SEAT[seg] * rng.lognormal(0, 0.2, n))).astype(np.int64)
    firsts, sizes, _ = _csm_blocks(n_total)
    region = LOC_REGION[loc]
    csm = firsts[region] + np.floor(rng.random(n) * sizes[region]).astype(np.int64)
    return Book(
        num=np.arange(first_num, first_num + n, dtype=np.int64),
        seg=seg,
        loc=loc,
        tz=LOC_TZ[loc],
        hub_tz=REGION_HUB_TZ[region],
        industry=rng.integers(len(INDUSTRIES), size=n),
        csm=csm,
        created=created.astype(np.int64),
        arr0=arr0,
        seats0=seats0,
        name=_company_names(rng, n),
    )


def _add_months(day: np.ndarray, months: np.ndarray, cal: Calendar) -> np.ndarray:
    """Calendar-month arithmetic on day numbers (31 Jan + 1 month = 28/29 Feb)."""
    dates = cal.date64(day)
    month = dates.astype("datetime64[M]")
    dom = (dates - month.astype("datetime64[D]")).astype(np.int64)
    target = month + months.astype(np.int64)
    length = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(np.int64)
    result = target.astype("datetime64[D]") + np.minimum(dom, length - 1)
    return (result - np.datetime64(cal.start, "D")).astype(np.int64)


def _draw_drivers(
    rng: np.random.Generator, seg: np.ndarray, first: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which drivers switch on for these terms, when, and their churn effect.

    Drivers are correlated the way they are in real books: a neglected account (slow
    replies) also misses its QBRs; support pain sours the NPS; a shaky first year often
    means the product never got adopted.
    """
    n = len(seg)
    u = rng.random((n, len(DRIVERS)))
    on = np.zeros((n, len(DRIVERS)), dtype=bool)
    on[:, D_FIRST] = first & (u[:, D_FIRST] < DRIVERS[D_FIRST].prob)
    on[:, D_RESP] = u[:, D_RESP] < DRIVERS[D_RESP].prob
    on[:, D_QBR] = u[:, D_QBR] < np.where(seg == 0, QBR_SMB_PROB, DRIVERS[D_QBR].prob) + 0.25 * on[:, D_RESP]
    on[:, D_ADOPT] = u[:, D_ADOPT] < DRIVERS[D_ADOPT].prob + 0.30 * on[:, D_FIRST]
    on[:, D_SUPPORT] = u[:, D_SUPPORT] < DRIVERS[D_SUPPORT].prob
    on[:, D_VOICE] = u[:, D_VOICE] < DRIVERS[D_VOICE].prob + 0.30 * on[:, D_SUPPORT]

    onset = np.empty((n, len(DRIVERS)), dtype=np.int64)
    for j, drv in enumerate(DRIVERS):  # a handful of drivers, each vectorised over terms
        lo, hi = drv.onset_days
        before_end = rng.integers(lo, hi + 1, size=n)
        onset[:, j] = start if drv.name == "first_year" else np.maximum(end - before_end, start + 14)
    severity = rng.uniform(0.6, 1.0, size=(n, len(DRIVERS)))
    beta = np.array([d.effect for d in DRIVERS])[None, :].repeat(n, axis=0)
    beta[seg == 0, D_QBR] = QBR_SMB_EFFECT
    severity = np.where(on, severity, 0.0)
    return on, onset, severity, beta * severity


def draw_terms(rng: np.random.Generator, book: Book, cal: Calendar) -> Terms:
    """Contract terms from signup to churn or to the end of the period, with their drivers.

    Terms that ended before the period are renewals by construction (the account is in
    the book at ``start``); every later term gets drivers and a renewal decision.
    """
    n = len(book)
    nxt_start = book.created.copy()
    arr, seats = book.arr0.copy(), book.seats0.copy()
    alive = np.ones(n, dtype=bool)
    parts: list[dict[str, np.ndarray]] = []
    k = 0
    while True:
        cur = np.flatnonzero(alive & (nxt_start <= cal.days - 1))
        if cur.size == 0:
            break
        seg = book.seg[cur]
        start = nxt_start[cur]
        years = np.where((seg == 2) & (rng.random(cur.size) < 0.3), 2, 1)
        end = _add_months(start, 12 * years, cal) - 1
        in_period = end >= 0
        on, onset, severity, effect = _draw_drivers(rng, seg, np.full(cur.size, k == 0), start, end)
        on &= in_period[:, None]
        severity, effect = np.where(on, severity, 0.0), np.where(on, effect, 0.0)
        logit = BASE_LOGIT + SEGMENT_LOGIT[seg] + effect.sum(axis=1) + NOISE_SD * rng.standard_normal(cur.size)
        p = 1.0 / (1.0 + np.exp(-logit))
        planned = in_period & (rng.random(cur.size) < p)
        # a few churners do not wait for the renewal: they cancel mid-term, after trouble began
        first_onset = np.where(on, onset, end[:, None]).min(axis=1)
        lo = np.maximum(start + 30, np.minimum(first_onset, end - 90) + 30)
        hi = end - 30
        cancels = planned & (rng.random(cur.size) < MID_TERM_CANCEL_SHARE) & (hi > lo)
        cancel = np.where(cancels, lo + np.floor(rng.random(cur.size) * np.maximum(hi - lo, 1)).astype(np.int64), -1)
        stop = np.where(cancels, cancel, end)
        churned = planned & (stop <= cal.days - 1)
        parts.append(
            dict(
                acc=cur,
                k=np.full(cur.size, k),
                start=start,
                end=end,
                arr=arr[cur],
                seats=seats[cur],
                cancel=np.where(churned, cancel, -1),
                on=on,
                onset=onset,
                severity=severity,
                effect=effect,
                p_churn=p,
                churn_planned=planned,
                churned=churned,
            )
        )
        # renewal terms: expansion, flat with uplift, or down-sell (likelier after a rough term)
        troubled = on.any(axis=1)
        u = rng.random(cur.size)
        down = u < np.where(troubled, 0.45, 0.18)
        up = ~down & (u > 0.72)
        change = np.where(
            down,
            rng.uniform(0.6, 0.9, cur.size),
            np.where(up, rng.uniform(1.05, 1.4, cur.size), rng.uniform(1.0, 1.05, cur.size)),
        )
        arr[cur] = np.round(arr[cur] * change, -2)
        seats[cur] = np.maximum(1, np.round(seats[cur] * change * rng.lognormal(0, 0.05, cur.size))).astype(np.int64)
        alive[cur] = ~planned
        nxt_start[cur] = end + 1
        k += 1
    cols = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    order = np.lexsort((cols["k"], cols["acc"]))
    terms = Terms(**{key: v[order] for key, v in cols.items()})
    _settle_lifecycle(rng, book, terms, cal)
    return terms


def _settle_lifecycle(rng: np.random.Generator, book: Book, terms: Terms, cal: Calendar) -> None:
    """Churn day and the window of activity of each account (a little residual after churn)."""
    n = len(book)
    stop = np.where(terms.cancel >= 0, terms.cancel, terms.end)
    churn_day = np.full(n, NO_CHURN, dtype=np.int64)
    churn_day[terms.acc[terms.churned]] = stop[terms.churned]
    residual = rng.integers(7, 22, size=n)
    book.churn_day = churn_day
    book.alive_from = np.maximum(book.created, 0)
    book.alive_to = np.where(churn_day < NO_CHURN, np.minimum(churn_day + residual, cal.days - 1), cal.days - 1)


def driver_levels(terms: Terms, n_accounts: int, cal: Calendar) -> np.ndarray:
    """Strength of each driver per account and week, in [0, 1]: (drivers, accounts, weeks).

    Zero before the onset, ramping up to the driver's severity, back to zero when the term
    ends (a renewal means the trouble was dealt with).
    """
    levels = np.zeros((len(DRIVERS), n_accounts, cal.weeks), dtype=np.float32)
    stop = np.where(terms.cancel >= 0, terms.cancel, terms.end)
    for j, drv in enumerate(DRIVERS):
        idx = np.flatnonzero(terms.on[:, j])
        if idx.size == 0:
            continue
        onset, last = terms.onset[idx, j], stop[idx]
        w0 = np.clip(onset // 7, 0, cal.weeks - 1)
        w1 = np.clip(last // 7, -1, cal.weeks - 1)
        lengths = np.maximum(w1 - w0 + 1, 0)
        rep = np.repeat(np.arange(idx.size), lengths)
        week = w0[rep] + np.arange(rep.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        ramp = (
            np.maximum(drv.ramp_days, 0.7 * (last - onset))
            if drv.name == "adoption"
            else np.full(idx.size, drv.ramp_days)
        )
        progress = np.clip((week * 7 + 3 - onset[rep]) / np.maximum(ramp[rep], 1), 0.0, 1.0)
        if drv.ramp_days == 0 and drv.name != "adoption":
            progress = (week * 7 + 6 >= onset[rep]).astype(np.float64)
        severity = terms.severity[idx, j]
        np.maximum.at(levels[j], (terms.acc[idx][rep], week), (severity[rep] * progress).astype(np.float32))
    return levels


# --------------------------------------------------------------------------------------
# Event helpers
# --------------------------------------------------------------------------------------


@dataclass
class Context:
    """What every event generator of a chunk needs."""

    book: Book
    levels: np.ndarray
    cal: Calendar

    def level(self, driver: int, acc: np.ndarray, day: np.ndarray) -> np.ndarray:
        week = np.clip(np.asarray(day) // 7, 0, self.cal.weeks - 1)
        return self.levels[driver][acc, week].astype(np.float64)

    def presence(self, acc: np.ndarray, day: np.ndarray) -> np.ndarray:
        """How present the customer is that day: holidays and the residual after churn."""
        b = self.book
        day = np.clip(day, 0, self.cal.days - 1)
        return self.cal.holiday[b.loc[acc], day] * np.where(day > b.churn_day[acc], RESIDUAL_ACTIVITY, 1.0)


def _poisson_days(
    rng: np.random.Generator, rate_per_day: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate event days: a Poisson number per account, uniform over [lo, hi]."""
    span = np.maximum(hi - lo + 1, 0)
    count = rng.poisson(rate_per_day * span)
    acc = np.repeat(np.arange(len(count)), count)
    day = lo[acc] + np.floor(rng.random(acc.size) * span[acc]).astype(np.int64)
    return acc, day


def _keep(rng: np.random.Generator, prob: np.ndarray) -> np.ndarray:
    return rng.random(len(prob)) < prob


def _weekday_or_monday(day: np.ndarray, cal: Calendar) -> np.ndarray:
    """Meetings and surveys land on a weekday: a weekend date moves to the Monday after."""
    wd = _weekday(day, cal)
    return day + np.where(wd >= 5, 7 - wd, 0)


def _customer_sod(rng: np.random.Generator, n: int) -> np.ndarray:
    """Second of the day a customer writes: mostly working hours, some early or late."""
    return np.round(HOUR * np.clip(rng.normal(12.5, 2.6, n), 6.5, 22.5)).astype(np.int64)


# --------------------------------------------------------------------------------------
# E-mails
# --------------------------------------------------------------------------------------


def _our_replies(
    rng: np.random.Generator, ctx: Context, acc: np.ndarray, t_in: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Times of our acknowledgement and our real answer to inbound messages (NaN: none).

    Healthy: a few business hours, mostly same day, sometimes a quick acknowledgement first.
    Responsiveness driver on: 50-100 calendar hours, many beyond 48 h, some never answered.
    Occasional slow replies happen to healthy accounts too (noise for red-flag rules).
    """
    cal, hub = ctx.cal, ctx.book.hub_tz[acc]
    n = acc.size
    r = ctx.level(D_RESP, acc, t_in // DAY)
    tl = _utc_to_local(cal, hub, t_in).astype(np.float64)
    never = rng.random(n) < 0.02 + 0.18 * r
    bad = rng.random(n) < np.minimum(1.0, 1.15 * r)
    busy = ~bad & (rng.random(n) < 0.04)
    after_hours = ~bad & ~busy & (rng.random(n) < 0.12)
    healthy_bh = rng.lognormal(np.log(2.5), 1.0, n)
    slow_cal = np.where(bad, rng.lognormal(np.log(45 + 55 * r), 0.55), rng.lognormal(np.log(30), 0.6, n))
    reply = _add_business_hours(tl, healthy_bh, cal)
    reply = np.where(bad | busy, _next_business_moment(tl + slow_cal * HOUR, cal), reply)
    reply = np.where(after_hours, tl + rng.lognormal(np.log(1.5), 0.8, n) * HOUR, reply)
    acked = ~never & (rng.random(n) < 0.02 + 0.22 * (1 - r))
    ack = _next_business_moment(tl, cal) + rng.uniform(5, 60, n) * 60
    reply = np.where(acked, np.maximum(reply, _add_business_hours(ack, rng.lognormal(np.log(5), 0.8, n), cal)), reply)
    return (
        np.where(acked, _local_seconds_to_utc(cal, hub, ack), np.nan),
        np.where(never, np.nan, _local_seconds_to_utc(cal, hub, reply)),
    )


def _customer_follow_up(
    rng: np.random.Generator, ctx: Context, acc: np.ndarray, t: np.ndarray, business_hours: np.ndarray
) -> np.ndarray:
    """When the customer writes again, ``business_hours`` of their own working time later."""
    cal, tz = ctx.cal, ctx.book.tz[acc]
    tl = _utc_to_local(cal, tz, t).astype(np.float64)
    return _local_seconds_to_utc(cal, tz, _add_business_hours(tl, business_hours, cal))


def simulate_emails(rng: np.random.Generator, ctx: Context) -> dict[str, np.ndarray]:
    """E-mail threads: inbound questions and our proactive touches, round by round.

    Returns arrays acc, thread (chunk-local, ordered by start), t, inbound (bool).
    """
    b, cal = ctx.book, ctx.cal
    rate = EMAILS_PER_YEAR[b.seg] / EMAILS_PER_THREAD / 365.0
    acc, day = _poisson_days(rng, rate, b.alive_from, b.alive_to)
    inbound = rng.random(acc.size) < 0.6
    weekend = _weekday(day, cal) >= 5
    neglect = (1 - 0.6 * ctx.level(D_RESP, acc, day)) * (1 - 0.3 * ctx.level(D_QBR, acc, day))
    prob = ctx.presence(acc, day) * np.where(
        inbound, np.where(weekend, 0.1, 1.0), np.where(weekend, 0.03, 1.0) * neglect
    )
    keep = _keep(rng, prob)
    acc, day, inbound = acc[keep], day[keep], inbound[keep]
    customer_t = _local_to_utc(cal, b.tz[acc], day, _customer_sod(rng, acc.size))
    our_sod = np.round(HOUR * np.clip(rng.normal(11.5, 2.0, acc.size), 8, 18.5)).astype(np.int64)
    t0 = np.where(inbound, customer_t, _local_to_utc(cal, b.hub_tz[acc], day, our_sod))
    order = np.lexsort((t0, acc))
    acc, t0, inbound = acc[order], t0[order], inbound[order]
    thread = np.arange(acc.size)

    # inbound starts are written by the first round below, with every other inbound message
    rows_thr, rows_t, rows_in = [thread[~inbound]], [t0[~inbound].astype(np.float64)], [inbound[~inbound]]
    # outbound starts: the customer answers half of them, which opens a first inbound round
    answers = ~inbound & (rng.random(acc.size) < 0.5)
    p_thr = np.concatenate([thread[inbound], thread[answers]])
    p_t = np.concatenate(
        [
            t0[inbound],
            _customer_follow_up(rng, ctx, acc[answers], t0[answers], rng.lognormal(np.log(4), 1.1, answers.sum())),
        ]
    )
    for p_continue in (0.45, 0.30, 0.20, 0.0):
        live = p_t < cal.horizon
        p_thr, p_t = p_thr[live], p_t[live]
        rows_thr.append(p_thr), rows_t.append(p_t), rows_in.append(np.ones(p_thr.size, dtype=bool))
        ack, reply = _our_replies(rng, ctx, acc[p_thr], p_t.astype(np.int64))
        for sent in (ack, reply):
            has = ~np.isnan(sent)
            rows_thr.append(p_thr[has]), rows_t.append(sent[has]), rows_in.append(np.zeros(has.sum(), dtype=bool))
        # customer writes again: after our answer, or chases an unanswered one 2-5 days later
        answered = ~np.isnan(reply) & (reply < cal.horizon)
        again = answered & (rng.random(p_thr.size) < p_continue)
        chase = np.isnan(reply) & (rng.random(p_thr.size) < (0.35 if p_continue > 0 else 0.0))
        t_again = _customer_follow_up(
            rng, ctx, acc[p_thr[again]], reply[again].astype(np.int64), rng.lognormal(np.log(4), 1.1, again.sum())
        )
        t_chase = p_t[chase] + np.round(rng.uniform(48, 120, chase.sum()) * HOUR)
        p_thr = np.concatenate([p_thr[again], p_thr[chase]])
        p_t = np.concatenate([t_again, t_chase])

    thr = np.concatenate(rows_thr)
    t = np.concatenate(rows_t)
    inb = np.concatenate(rows_in)
    ok = (t >= 0) & (t < cal.horizon)
    thr, t, inb = thr[ok], t[ok].astype(np.int64), inb[ok]
    order = np.lexsort((~inb, thr, t, acc[thr]))
    return {"acc": acc[thr][order], "thread": thr[order], "t": t[order], "inbound": inb[order]}


# --------------------------------------------------------------------------------------
# Meetings, tickets, surveys
# --------------------------------------------------------------------------------------

MEETING_TYPES = ("qbr", "onboarding", "training", "call", "other")


def simulate_meetings(rng: np.random.Generator, ctx: Context) -> dict[str, np.ndarray]:
    """QBRs every ~90 days for healthy Mid-Market/Enterprise (gaps when the QBR driver is on),
    onboarding sessions in the first 60 days, and trainings, calls and other meetings."""
    b, cal = ctx.book, ctx.cal
    n = len(b)
    last = np.minimum(b.churn_day, cal.days - 1)
    # QBR slots on a ~91-day grid anchored per account
    slots = cal.days // 91 + 3
    anchor = np.where(b.created >= 0, b.created + rng.integers(70, 100, n), -rng.integers(0, 91, n))
    day = anchor[:, None] + 91 * np.arange(slots)[None, :] + np.round(rng.normal(0, 8, (n, slots))).astype(np.int64)
    acc = np.repeat(np.arange(n), slots)
    day = day.ravel()
    day = day + np.where(cal.holiday[b.loc[acc], np.clip(day, 0, cal.days - 1)] < 0.5, 14, 0)  # postponed
    day = _weekday_or_monday(day, cal)
    held = np.where(b.seg[acc] == 0, 0.07, 0.88)
    held = held * (1 - np.minimum(1.0, 1.3 * ctx.level(D_QBR, acc, day))) * (1 - 0.3 * ctx.level(D_RESP, acc, day))
    keep = (day >= b.alive_from[acc]) & (day <= last[acc]) & _keep(rng, held)
    kinds = [np.zeros(keep.sum(), dtype=np.int64)]
    accs, days = [acc[keep]], [day[keep]]

    # onboarding: only accounts that sign within the period; a fragile first year gets fewer
    new = np.flatnonzero(b.created >= 0)
    fragile = ctx.level(D_FIRST, new, b.created[new])
    count = rng.poisson(np.where(fragile > 0, 0.7, 2.5))
    acc = np.repeat(new, count)
    day = _weekday_or_monday(b.created[acc] + rng.integers(0, 61, acc.size), cal)
    keep = day <= last[acc]
    accs.append(acc[keep]), days.append(day[keep]), kinds.append(np.full(keep.sum(), 1))

    for kind, per_year in ((2, TRAININGS_PER_YEAR), (3, CALLS_PER_YEAR), (4, OTHER_MEETINGS_PER_YEAR)):
        acc, day = _poisson_days(rng, per_year[b.seg] / 365.0, b.alive_from, b.alive_to)
        prob = ctx.presence(acc, day)
        if kind == 2:
            prob = prob * (1 - 0.6 * ctx.level(D_ADOPT, acc, day))
        keep = _keep(rng, prob)
        accs.append(acc[keep]), days.append(_weekday_or_monday(day[keep], cal)), kinds.append(np.full(keep.sum(), kind))

    acc, day, kind = np.concatenate(accs), np.concatenate(days), np.concatenate(kinds)
    sod = HOUR * 9 + 1800 * rng.integers(0, 17, acc.size)  # on the hour or half hour, 9:00-17:00 local
    t = _local_to_utc(cal, b.tz[acc], day, sod)
    ok = (t >= 0) & (t < cal.horizon)
    acc, t, kind = acc[ok], t[ok], kind[ok]
    order = np.lexsort((kind, t, acc))
    return {"acc": acc[order], "t": t[order], "kind": kind[order]}


PRIORITIES = ("low", "normal", "high", "urgent")
_PRIORITY_HEALTHY = np.array([0.30, 0.50, 0.15, 0.05])
_PRIORITY_PAIN = np.array([0.10, 0.35, 0.35, 0.20])
_FIRST_RESPONSE_H = np.array([8.0, 4.0, 1.5, 0.5])
_RESOLUTION_DAYS = np.array([3.0, 2.0, 1.5, 1.0])
_ESCALATION = np.array([0.01, 0.02, 0.08, 0.20])
_CSAT_HEALTHY = np.array([0.03, 0.04, 0.10, 0.28, 0.55])
_CSAT_PAIN = np.array([0.25, 0.25, 0.25, 0.15, 0.10])


def _categorical(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """One draw per row of the probability matrix ``p``."""
    cum = np.cumsum(p, axis=1)
    return np.minimum((rng.random(len(p))[:, None] * cum[:, -1:] > cum).sum(axis=1), p.shape[1] - 1)


def simulate_tickets(rng: np.random.Generator, ctx: Context) -> dict[str, np.ndarray]:
    """Support tickets; the support driver means more, higher-priority, slower, escalated, unhappy."""
    b, cal = ctx.book, ctx.cal
    max_boost = 3.5
    acc, day = _poisson_days(rng, TICKETS_PER_YEAR[b.seg] * max_boost / 365.0, b.alive_from, b.alive_to)
    s = ctx.level(D_SUPPORT, acc, day)
    weekend = _weekday(day, cal) >= 5
    prob = (1 + 2.5 * s) / max_boost * np.sqrt(ctx.presence(acc, day)) * np.where(weekend, 0.2, 1.0)
    keep = _keep(rng, prob)
    acc, day, s = acc[keep], day[keep], s[keep]
    n = acc.size
    created = _local_to_utc(cal, b.tz[acc], day, _customer_sod(rng, n))
    prio = _categorical(rng, (1 - s)[:, None] * _PRIORITY_HEALTHY + s[:, None] * _PRIORITY_PAIN)
    first = created + np.round(HOUR * rng.lognormal(np.log(_FIRST_RESPONSE_H[prio] * (1 + 5 * s)), 0.9))
    closed = first + np.round(DAY * rng.lognormal(np.log(_RESOLUTION_DAYS[prio] * (1 + 2 * s)), 1.0))
    closed = np.where(rng.random(n) < 0.01, cal.horizon, closed)  # a few tickets are never closed
    escalated = rng.random(n) < _ESCALATION[prio] + 0.25 * s
    rated = (rng.random(n) < 0.40) & (closed < cal.horizon)
    csat = (_categorical(rng, (1 - s)[:, None] * _CSAT_HEALTHY + s[:, None] * _CSAT_PAIN) + 1).astype(np.float64)
    ok = (created >= 0) & (created < cal.horizon)
    order = np.lexsort((created[ok], acc[ok]))
    out = {
        "acc": acc,
        "t": created,
        "first": np.where(first < cal.horizon, first, np.nan),
        "closed": np.where(closed < cal.horizon, closed, np.nan),
        "priority": prio,
        "escalated": escalated,
        "csat": np.where(rated, csat, np.nan),
    }
    return {k: v[ok][order] for k, v in out.items()}


_NPS_HEALTHY = np.array([1, 1, 1, 1, 2, 3, 5, 12, 20, 28, 26], dtype=np.float64)
_NPS_UNHAPPY = np.array([6, 7, 9, 11, 13, 15, 14, 10, 7, 5, 3], dtype=np.float64)
_CSAT_SURVEY_HEALTHY = np.array([2, 4, 10, 34, 50], dtype=np.float64)
_CSAT_SURVEY_UNHAPPY = np.array([20, 25, 30, 15, 10], dtype=np.float64)


def simulate_surveys(rng: np.random.Generator, ctx: Context) -> dict[str, np.ndarray]:
    """NPS campaigns in March and September, occasional CSAT pulses; the voice driver makes detractors."""
    b, cal = ctx.book, ctx.cal
    n = len(b)
    last = np.minimum(b.churn_day, cal.days - 1)
    campaigns = np.array(
        [
            (dt.date(y, m, 10) - cal.start).days
            for y in range(cal.start.year, cal.start.year + cal.days // 365 + 2)
            for m in (3, 9)
        ]
    )
    campaigns = campaigns[(campaigns >= 0) & (campaigns < cal.days)]
    acc = np.repeat(np.arange(n), campaigns.size)
    day = _weekday_or_monday(np.tile(campaigns, n) + rng.integers(0, 10, acc.size), cal)
    keep = (day >= b.alive_from[acc] + 30) & (day <= last[acc])
    acc_nps, day_nps = acc[keep], day[keep]
    acc_csat, day_csat = _poisson_days(rng, np.full(n, 2.0 / 365), b.alive_from, last)
    day_csat = _weekday_or_monday(day_csat, cal)
    acc = np.concatenate([acc_nps, acc_csat])
    day = np.concatenate([day_nps, day_csat])
    is_nps = np.arange(acc.size) < acc_nps.size
    sent = _local_to_utc(cal, b.hub_tz[acc], day, np.round(HOUR * rng.uniform(9, 17, acc.size)).astype(np.int64))
    unhappy = np.maximum(ctx.level(D_VOICE, acc, day), 0.5 * ctx.level(D_SUPPORT, acc, day))
    answers = rng.random(acc.size) < np.where(is_nps, 0.6, 0.5) - 0.15 * unhappy
    responded = sent + np.round(DAY * np.minimum(rng.lognormal(np.log(1.5), 1.0, acc.size), 21))
    answers &= responded < cal.horizon
    grumpy = rng.random(acc.size) < np.minimum(1.0, 1.2 * unhappy)
    nps = _categorical(rng, np.where(grumpy[:, None], _NPS_UNHAPPY, _NPS_HEALTHY))
    csat = _categorical(rng, np.where(grumpy[:, None], _CSAT_SURVEY_UNHAPPY, _CSAT_SURVEY_HEALTHY)) + 1
    score = np.where(is_nps, nps, csat).astype(np.float64)
    ok = (sent >= 0) & (sent < cal.horizon)
    order = np.lexsort((~is_nps[ok], sent[ok], acc[ok]))
    out = {
        "acc": acc,
        "t": sent,
        "nps": is_nps,
        "responded": np.where(answers, responded, np.nan),
        "score": np.where(answers, score, np.nan),
    }
    return {k: v[ok][order] for k, v in out.items()}


# --------------------------------------------------------------------------------------
# Usage: one row per (user, feature, week)
# --------------------------------------------------------------------------------------


def simulate_usage(rng: np.random.Generator, ctx: Context) -> dict[str, np.ndarray]:
    """Weekly usage per user and feature; the adoption and first-year drivers shrink both
    the number of active users and the breadth of features used."""
    b, cal = ctx.book, ctx.cal
    n = len(b)
    n_feat = len(PRODUCT_FEATURES)
    popularity = np.log([f[1] for f in PRODUCT_FEATURES])
    intensity = np.array([f[2] for f in PRODUCT_FEATURES])
    # each account has its own adopted features, popular ones first, and a pool of users
    order = np.argsort(-(popularity[None, :] + rng.gumbel(size=(n, n_feat))), axis=1, kind="stable")
    breadth = rng.integers(FEATURE_BREADTH[b.seg, 0], FEATURE_BREADTH[b.seg, 1])
    pool = np.maximum(1, np.round(b.seats0 * rng.uniform(0.5, 0.9, n))).astype(np.int64)
    appetite = rng.lognormal(0, 0.3, n)

    # account-weeks with activity
    w0, w1 = b.alive_from // 7, b.alive_to // 7
    lengths = np.maximum(w1 - w0 + 1, 0)
    acc = np.repeat(np.arange(n), lengths)
    week = w0[acc] + np.arange(acc.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    first_day, last_day = week * 7, np.minimum(week * 7 + 6, cal.days - 1)
    alive_lo, healthy_hi = b.alive_from[acc], np.minimum(b.churn_day[acc], b.alive_to[acc])
    full = np.clip(np.minimum(last_day, healthy_hi) - np.maximum(first_day, alive_lo) + 1, 0, 7)
    residual = np.clip(np.minimum(last_day, b.alive_to[acc]) - np.maximum(first_day, healthy_hi + 1) + 1, 0, 7)
    presence = (full + RESIDUAL_ACTIVITY * residual) / 7
    weekdays = first_day[:, None] + np.arange(5)[None, :]
    holiday = cal.holiday[b.loc[acc][:, None], np.clip(weekdays, 0, cal.days - 1)].mean(axis=1)
    a = ctx.levels[D_ADOPT][acc, week].astype(np.float64)
    fy = ctx.levels[D_FIRST][acc, week].astype(np.float64)
    ramp_up = np.clip((first_day - b.created[acc] + 7) / 42, 0.15, 1.0)  # new accounts onboard over ~6 weeks
    lam = (
        WEEKLY_ACTIVE_USERS[b.seg[acc]]
        * appetite[acc]
        * presence
        * holiday
        * ramp_up
        * (1 - 0.7 * a)
        * (1 - 0.45 * fy)
        * rng.gamma(6.0, 1 / 6.0, acc.size)
    )
    users = np.minimum(rng.poisson(lam), pool[acc])

    # user-weeks: power users show up most weeks
    uw = np.repeat(np.arange(acc.size), users)
    u_acc = acc[uw]
    shrink = 1 - 0.5 * a[uw]
    user = np.floor(np.maximum(1, pool[u_acc] * shrink) * rng.random(uw.size) ** 2.2).astype(np.int64)
    # features per user-week
    per_user = 1 + rng.poisson(0.6 * shrink)
    fw = np.repeat(np.arange(uw.size), per_user)
    f_acc = u_acc[fw]
    reach = np.clip(breadth[f_acc] * (1 - 0.6 * a[uw][fw]) * (1 - 0.4 * fy[uw][fw]), 1, n_feat)
    rank = np.minimum(np.floor(reach * rng.random(fw.size) ** 1.4).astype(np.int64), n_feat - 1)
    feature = order[f_acc, rank]
    count = 1 + rng.poisson(intensity[feature] * rng.gamma(2.0, 0.5, fw.size) * (1 - 0.5 * a[uw][fw]))

    # collapse duplicates of (account, week, user, feature)
    row_week = week[uw][fw]
    key = ((f_acc * cal.weeks + row_week) * (pool.max() + 1) + user[fw]) * n_feat + feature
    uniq, first_idx, inverse = np.unique(key, return_index=True, return_inverse=True)
    total = np.bincount(inverse, weights=count).astype(np.int64)
    r_acc, r_week, r_user, r_feat = f_acc[first_idx], row_week[first_idx], user[fw][first_idx], feature[first_idx]
    t = week_times(rng, cal, b.tz[r_acc], r_week, b.alive_from[r_acc], b.alive_to[r_acc])
    return {"acc": r_acc, "user": r_user, "feature": r_feat, "t": t, "count": total}


def week_times(
    rng: np.random.Generator, cal: Calendar, tz: np.ndarray, week: np.ndarray, first: np.ndarray, last: np.ndarray
) -> np.ndarray:
    """A time (t) for each usage row of ``week``: mostly a working day and working hours in the
    customer's time zone ``tz``, kept to the account's active days ``[first, last]``."""
    n = len(week)
    dow = np.where(rng.random(n) < 0.95, rng.integers(0, 5, n), rng.integers(5, 7, n))
    day = np.clip(week * 7 + dow, first, np.minimum(last, cal.days - 1))
    sod = np.round(HOUR * np.clip(rng.normal(13, 2.5, n), 7, 22)).astype(np.int64)
    return np.clip(_local_to_utc(cal, tz, day, sod), 0, cal.horizon - 1)


# --------------------------------------------------------------------------------------
# Arrow tables in the canonical export shape
# --------------------------------------------------------------------------------------


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _timestamps(cal: Calendar, t: np.ndarray) -> pa.Array:
    """ISO-8601 UTC strings with a Z; NaN becomes an empty cell."""
    t = np.asarray(t, dtype=np.float64)
    missing = np.isnan(t)
    epoch = int(dt.datetime.combine(cal.start, dt.time(), dt.UTC).timestamp())
    secs = pa.array(np.where(missing, 0, t).astype(np.int64) + epoch, mask=missing, type=pa.int64())
    return pc.strftime(secs.cast(pa.timestamp("s", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ")


def _dates(cal: Calendar, day: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    values = cal.date64(day).astype("datetime64[D]")
    return pa.array(values, type=pa.date32(), mask=missing)


def _pick(names: tuple[str, ...], idx: np.ndarray) -> pa.Array:
    return pc.take(pa.array(names, pa.string()), pa.array(np.asarray(idx, dtype=np.int64)))


def _event_times(cal: Calendar, t: np.ndarray) -> pa.Array:
    """Whole seconds since ``start`` (integers) as UTC timestamps, the usage table's type."""
    epoch_us = int(dt.datetime.combine(cal.start, dt.time(), dt.UTC).timestamp()) * 1_000_000
    return pa.array(np.asarray(t) * 1_000_000 + epoch_us, pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def account_ids(num: np.ndarray) -> pa.Array:
    """``ACC-000042`` for account number 42."""
    return _ids("ACC-", num, 6)


def term_ids(num: np.ndarray, k: np.ndarray, width: int = 2) -> pa.Array:
    """``CTR-000042-03``: the account's term ``k`` (0-based), numbered from 1."""
    return pc.binary_join_element_wise(_ids("CTR-", num, 6), _ids("", np.asarray(k) + 1, width), "-")


def user_ids(num: np.ndarray, user: np.ndarray) -> pa.Array:
    """``u-000042-007``: the account's user ``user`` (0-based), numbered from 1."""
    return pc.binary_join_element_wise(_ids("u-", num, 6), _ids("", np.asarray(user) + 1, 3), "-")


def accounts_table(book: Book, cal: Calendar, n_total: int) -> pa.Table:
    """The accounts export of one chunk: ids, name, owner, signup date, place, segment, industry."""
    _, _, n_csm = _csm_blocks(n_total)
    return pa.table(
        {
            "account_id": account_ids(book.num),
            "account_name": pa.array(book.name, pa.string()),
            "owner": _ids("csm-", book.csm + 1, max(2, len(str(n_csm)))),
            "created_date": _dates(cal, book.created),
            "region": _pick(tuple(loc[1] for loc in LOCATIONS), book.loc),
            "country": _pick(tuple(loc[0] for loc in LOCATIONS), book.loc),
            "segment": _pick(SEGMENTS, book.seg),
            "industry": _pick(INDUSTRIES, book.industry),
            "timezone": _pick(tuple(loc[2] for loc in LOCATIONS), book.loc),
        },
        schema=SCHEMAS_OUT["accounts"],
    )


SCHEMAS_OUT: dict[str, pa.Schema] = {
    "accounts": pa.schema(
        [
            ("account_id", pa.string()),
            ("account_name", pa.string()),
            ("owner", pa.string()),
            ("created_date", pa.date32()),
            ("region", pa.string()),
            ("country", pa.string()),
            ("segment", pa.string()),
            ("industry", pa.string()),
            ("timezone", pa.string()),
        ]
    ),
    "contracts": pa.schema(
        [
            ("contract_id", pa.string()),
            ("account_id", pa.string()),
            ("start_date", pa.date32()),
            ("end_date", pa.date32()),
            ("arr", pa.float64()),
            ("seats", pa.int64()),
            ("status", pa.string()),
            ("cancel_date", pa.date32()),
        ]
    ),
    "emails": pa.schema(
        [
            ("email_id", pa.string()),
            ("account_id", pa.string()),
            ("thread_id", pa.string()),
            ("sent_at", pa.string()),
            ("direction", pa.string()),
        ]
    ),
    "meetings": pa.schema(
        [
            ("meeting_id", pa.string()),
            ("account_id", pa.string()),
            ("start_at", pa.string()),
            ("meeting_type", pa.string()),
        ]
    ),
    "tickets": pa.schema(
        [
            ("ticket_id", pa.string()),
            ("account_id", pa.string()),
            ("created_at", pa.string()),
            ("first_response_at", pa.string()),
            ("closed_at", pa.string()),
            ("priority", pa.string()),
            ("is_escalated", pa.bool_()),
            ("csat", pa.float64()),
        ]
    ),
    "surveys": pa.schema(
        [
            ("survey_id", pa.string()),
            ("account_id", pa.string()),
            ("sent_at", pa.string()),
            ("survey_type", pa.string()),
            ("responded_at", pa.string()),
            ("score", pa.float64()),
        ]
    ),
    "usage_events": pa.schema(
        [
            ("account_id", pa.string()),
            ("user_id", pa.string()),
            ("feature", pa.string()),
            ("event_at", pa.timestamp("us", tz="UTC")),
            ("event_count", pa.int64()),
        ]
    ),
    "accounts_truth": pa.schema(
        [
            ("account_id", pa.string()),
            ("churned", pa.int64()),
            ("churn_date", pa.date32()),
            ("dominant_driver", pa.string()),
            ("active_drivers", pa.string()),
        ]
    ),
    "terms_truth": pa.schema(
        [
            ("contract_id", pa.string()),
            ("account_id", pa.string()),
            ("start_date", pa.date32()),
            ("end_date", pa.date32()),
            ("drivers", pa.string()),
            *[(f"onset_{d}", pa.date32()) for d in DRIVER_NAMES],
            ("churn_probability", pa.float64()),
            ("churn_planned", pa.int64()),
            ("churned_at_end", pa.int64()),
            ("cancelled_mid_term", pa.int64()),
        ]
    ),
}


def _driver_lists(on: np.ndarray, names: tuple[str, ...] = DRIVER_NAMES) -> pa.Array:
    """Semicolon-joined names of the drivers that are on (column ``j`` of ``on`` is ``names[j]``), row by row."""
    text = pa.array([""] * len(on), pa.string())
    for j, name in enumerate(names):
        joined = pc.binary_join_element_wise(text, name, ";")
        text = pc.if_else(pa.array(on[:, j]), joined, text)
    return pc.utf8_ltrim(text, characters=";")


@dataclass
class Counters:
    """Running id counters, so ids stay unique and deterministic across chunks."""

    threads: int = 0
    emails: int = 0
    meetings: int = 0
    tickets: int = 0
    surveys: int = 0


def chunk_tables(
    book: Book, terms: Terms, events: dict[str, dict[str, np.ndarray]], cal: Calendar, n_total: int, counters: Counters
) -> dict[str, pa.Table]:
    """The chunk's rows of every export and truth table, in canonical shape."""
    acc_ids = account_ids(book.num)
    of = lambda idx: pc.take(acc_ids, pa.array(np.asarray(idx, dtype=np.int64)))  # noqa: E731
    tables: dict[str, pa.Table] = {"accounts": accounts_table(book, cal, n_total)}

    status = np.where(terms.cancel >= 0, 2, np.where(terms.end < cal.days - 1, 1, 0))
    contract_ids = term_ids(book.num[terms.acc], terms.k)
    tables["contracts"] = pa.table(
        {
            "contract_id": contract_ids,
            "account_id": of(terms.acc),
            "start_date": _dates(cal, terms.start),
            "end_date": _dates(cal, terms.end),
            "arr": pa.array(terms.arr.astype(np.float64)),
            "seats": pa.array(terms.seats.astype(np.int64)),
            "status": _pick(("active", "ended", "cancelled"), status),
            "cancel_date": _dates(cal, np.maximum(terms.cancel, 0), missing=terms.cancel < 0),
        },
        schema=SCHEMAS_OUT["contracts"],
    )

    e = events["emails"]
    thread_num = counters.threads + e["thread"] + 1
    tables["emails"] = pa.table(
        {
            "email_id": _ids("EM-", counters.emails + np.arange(e["acc"].size) + 1, 9),
            "account_id": of(e["acc"]),
            "thread_id": _ids("TH-", thread_num, 8),
            "sent_at": _timestamps(cal, e["t"]),
            "direction": _pick(("outbound", "inbound"), e["inbound"].astype(np.int64)),
        },
        schema=SCHEMAS_OUT["emails"],
    )
    counters.threads += int(e["thread"].max()) + 1 if e["thread"].size else 0
    counters.emails += e["acc"].size

    m = events["meetings"]
    tables["meetings"] = pa.table(
        {
            "meeting_id": _ids("MTG-", counters.meetings + np.arange(m["acc"].size) + 1, 8),
            "account_id": of(m["acc"]),
            "start_at": _timestamps(cal, m["t"]),
            "meeting_type": _pick(MEETING_TYPES, m["kind"]),
        },
        schema=SCHEMAS_OUT["meetings"],
    )
    counters.meetings += m["acc"].size

    k = events["tickets"]
    tables["tickets"] = pa.table(
        {
            "ticket_id": _ids("TCK-", counters.tickets + np.arange(k["acc"].size) + 1, 8),
            "account_id": of(k["acc"]),
            "created_at": _timestamps(cal, k["t"]),
            "first_response_at": _timestamps(cal, k["first"]),
            "closed_at": _timestamps(cal, k["closed"]),
            "priority": _pick(PRIORITIES, k["priority"]),
            "is_escalated": pa.array(k["escalated"]),
            "csat": pa.array(k["csat"], from_pandas=True),
        },
        schema=SCHEMAS_OUT["tickets"],
    )
    counters.tickets += k["acc"].size

    s = events["surveys"]
    tables["surveys"] = pa.table(
        {
            "survey_id": _ids("SRV-", counters.surveys + np.arange(s["acc"].size) + 1, 8),
            "account_id": of(s["acc"]),
            "sent_at": _timestamps(cal, s["t"]),
            "survey_type": _pick(("csat", "nps"), s["nps"].astype(np.int64)),
            "responded_at": _timestamps(cal, s["responded"]),
            "score": pa.array(s["score"], from_pandas=True),
        },
        schema=SCHEMAS_OUT["surveys"],
    )
    counters.surveys += s["acc"].size

    u = events["usage"]
    tables["usage_events"] = pa.table(
        {
            "account_id": of(u["acc"]),
            "user_id": user_ids(book.num[u["acc"]], u["user"]),
            "feature": _pick(tuple(f[0] for f in PRODUCT_FEATURES), u["feature"]),
            "event_at": _event_times(cal, u["t"]),
            "event_count": pa.array(u["count"].astype(np.int64)),
        },
        schema=SCHEMAS_OUT["usage_events"],
    )

    tables.update(_truth_tables(book, terms, cal, acc_ids, contract_ids))
    return tables


def _truth_tables(
    book: Book, terms: Terms, cal: Calendar, acc_ids: pa.Array, contract_ids: pa.Array
) -> dict[str, pa.Table]:
    """What really happened: per account (churn, date, drivers) and per contract term."""
    n = len(book)
    stop = np.where(terms.cancel >= 0, terms.cancel, terms.end)
    due = stop <= cal.days - 1
    # the term that decides: the churned one, else the account's latest term
    last_term = np.zeros(n, dtype=np.int64)
    last_term[terms.acc] = np.arange(len(terms.acc))  # terms are sorted by account, then k
    churned = book.churn_day < NO_CHURN
    on = terms.on[last_term]
    effect = terms.effect[last_term]
    dominant = np.where(on.any(axis=1), np.argmax(effect, axis=1), np.where(churned, len(DRIVERS), len(DRIVERS) + 1))
    accounts_truth = pa.table(
        {
            "account_id": acc_ids,
            "churned": pa.array(churned.astype(np.int64)),
            "churn_date": _dates(cal, np.where(churned, book.churn_day, 0), missing=~churned),
            "dominant_driver": _pick(DRIVER_NAMES + ("renewal", ""), dominant),
            "active_drivers": _driver_lists(on),
        },
        schema=SCHEMAS_OUT["accounts_truth"],
    )
    onset_cols = {
        f"onset_{d}": _dates(cal, np.where(terms.on[:, j], terms.onset[:, j], 0), missing=~terms.on[:, j])
        for j, d in enumerate(DRIVER_NAMES)
    }
    terms_truth = pa.table(
        {
            "contract_id": contract_ids,
            "account_id": pc.take(acc_ids, pa.array(terms.acc)),
            "start_date": _dates(cal, terms.start),
            "end_date": _dates(cal, terms.end),
            "drivers": _driver_lists(terms.on),
            **onset_cols,
            "churn_probability": pa.array(np.round(terms.p_churn, 4)),
            "churn_planned": pa.array(terms.churn_planned.astype(np.int64)),
            "churned_at_end": pa.array(terms.churned.astype(np.int64), mask=~due),
            "cancelled_mid_term": pa.array((terms.cancel >= 0).astype(np.int64)),
        },
        schema=SCHEMAS_OUT["terms_truth"],
    )
    return {"accounts_truth": accounts_truth, "terms_truth": terms_truth}


# --------------------------------------------------------------------------------------
# Writing, chunk by chunk
# --------------------------------------------------------------------------------------


class ExportWriter:
    """Appends chunks to every output file; files appear (atomically) only when all is done.

    By default the CRM world's files; another world names its own export and truth files and
    the Arrow schema of each (``schemas``, by table name).
    """

    def __init__(
        self,
        out: Path,
        truth: Path,
        export_files: dict[str, str] = EXPORT_FILES,
        truth_files: dict[str, str] = TRUTH_FILES,
        schemas: dict[str, pa.Schema] = SCHEMAS_OUT,
    ) -> None:
        self._targets = {name: out / f for name, f in export_files.items()}
        self._targets.update({name: truth / f for name, f in truth_files.items()})
        self._schemas = schemas
        self._stack = ExitStack()
        self._writers: dict[str, pacsv.CSVWriter | pq.ParquetWriter] = {}
        self.rows: Counter[str] = Counter()

    def __enter__(self) -> "ExportWriter":
        for name, target in self._targets.items():
            tmp = self._stack.enter_context(atomic_path(target))
            schema = self._schemas[name]
            if target.suffix == ".parquet":
                writer = pq.ParquetWriter(tmp, schema, compression="zstd")
                self._stack.callback(writer.close)
            else:
                raw = open(tmp, "wb")
                self._stack.callback(raw.close)
                sink = raw
                if target.name.endswith(".gz"):
                    sink = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
                    self._stack.callback(sink.close)
                sink.write((",".join(schema.names) + "\n").encode())
                writer = pacsv.CSVWriter(
                    sink,
                    schema,
                    write_options=pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=65_536),
                )
                self._stack.callback(writer.close)
            self._writers[name] = writer
        return self

    def write(self, tables: dict[str, pa.Table]) -> None:
        for name, table in tables.items():
            self._writers[name].write_table(table)
            self.rows[name] += table.num_rows

    def __exit__(self, *exc) -> bool | None:
        return self._stack.__exit__(*exc)


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------

STREAMS = ("accounts", "terms", "emails", "meetings", "tickets", "surveys", "usage")


def _rng(seed: int, chunk: int, stream: str) -> np.random.Generator:
    """One independent stream per chunk and table: changing one generator leaves the others' data alone."""
    return np.random.default_rng([seed, chunk, STREAMS.index(stream)])


def simulate_chunk(
    seed: int, chunk: int, first_num: int, n: int, n_total: int, cal: Calendar
) -> tuple[Book, Terms, dict[str, dict[str, np.ndarray]]]:
    """Accounts, terms and all events of one chunk of accounts (pure: no I/O)."""
    book = draw_accounts(_rng(seed, chunk, "accounts"), first_num, n, n_total, cal)
    terms = draw_terms(_rng(seed, chunk, "terms"), book, cal)
    ctx = Context(book=book, levels=driver_levels(terms, n, cal), cal=cal)
    events = {
        "emails": simulate_emails(_rng(seed, chunk, "emails"), ctx),
        "meetings": simulate_meetings(_rng(seed, chunk, "meetings"), ctx),
        "tickets": simulate_tickets(_rng(seed, chunk, "tickets"), ctx),
        "surveys": simulate_surveys(_rng(seed, chunk, "surveys"), ctx),
        "usage": simulate_usage(_rng(seed, chunk, "usage"), ctx),
    }
    return book, terms, events


@dataclass
class _Tally:
    """Book-level figures accumulated over chunks for simulation.json."""

    churned: int = 0
    churns_in_period: int = 0
    exposure_days: float = 0.0
    dominant: Counter = field(default_factory=Counter)
    segments: Counter = field(default_factory=Counter)

    def add(self, book: Book, tables: dict[str, pa.Table], cal: Calendar) -> None:
        churned = book.churn_day < NO_CHURN
        self.churned += int(churned.sum())
        self.churns_in_period += int((churned & (book.churn_day >= 0)).sum())
        last = np.minimum(book.churn_day, cal.days - 1)
        self.exposure_days += float(np.maximum(last - book.alive_from + 1, 0).sum())
        truth = tables["accounts_truth"]
        dom = pc.filter(truth["dominant_driver"], pa.array(churned)).to_pylist()
        self.dominant.update(dom)
        self.segments.update(SEGMENTS[s] for s in book.seg)


def run_summary(
    seed: int,
    accounts: int,
    start: dt.date,
    end: dt.date,
    chunk_size: int,
    rows: dict[str, int],
    export_files: dict[str, str] = EXPORT_FILES,
    truth_files: dict[str, str] = TRUTH_FILES,
) -> dict:
    """The head of a world's simulation.json: how it was asked for and the rows of each file."""
    return {
        "seed": seed,
        "accounts": accounts,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "chunk_size": chunk_size,
        "rows": {name: rows[name] for name in export_files},
        "truth_rows": {name: rows[name] for name in truth_files},
    }


def simulate(
    accounts: int, seed: int, start: dt.date, end: dt.date, out: Path, truth: Path, chunk_size: int = 1_000
) -> dict:
    """Generate the canonical demo export into ``out`` and its ground truth into ``truth``.

    Returns the summary also written to ``truth/simulation.json`` (seed, sizes, row counts,
    churn rate and driver mix). Nothing depends on the wall clock or on the chunk timing.
    """
    if accounts < 1:
        raise ValueError("accounts must be at least 1")
    cal = build_calendar(start, end)
    counters, tally = Counters(), _Tally()
    out, truth = Path(out), Path(truth)
    with ExportWriter(out, truth) as writer:
        for chunk, first in enumerate(range(0, accounts, chunk_size)):
            n = min(chunk_size, accounts - first)
            book, terms, events = simulate_chunk(seed, chunk, first + 1, n, accounts, cal)
            tables = chunk_tables(book, terms, events, cal, accounts, counters)
            writer.write(tables)
            tally.add(book, tables, cal)
            LOG.debug(
                "chunk %d: %d accounts, %d e-mails, %d usage rows",
                chunk,
                n,
                tables["emails"].num_rows,
                tables["usage_events"].num_rows,
            )
        rows = dict(writer.rows)
    years = tally.exposure_days / 365.25
    summary = {
        **run_summary(seed, accounts, start, end, chunk_size, rows),
        "churned_accounts": tally.churned,
        "churn_rate": round(tally.churned / accounts, 4),
        "annual_churn_rate": round(tally.churns_in_period / years, 4) if years else None,
        "account_years": round(years, 1),
        "dominant_driver_of_churned": dict(sorted(tally.dominant.items())),
        "segments": dict(sorted(tally.segments.items())),
        "emails_per_account_year": round(rows["emails"] / years, 1) if years else None,
        "usage_rows_per_account": round(rows["usage_events"] / accounts, 1),
    }
    write_json(summary, truth / "simulation.json")
    return summary
