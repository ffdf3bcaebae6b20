"""The feature catalogue: what each feature means, in words a CSM reads.

Every feature the `features` stage writes has one entry here. Later stages never
hard-code a feature: reasons in the at-risk CSV are worded from ``phrase`` and
``unit``, grouped by ``signal``, and plays are looked up by ``signal``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

# Signal families: the unit of a "reason". Several features of one signal make one reason,
# and each signal has one play in the playbook. The simulator's ground-truth driver uses
# the same names, so explanations can be checked against it.
SIGNALS: dict[str, str] = {
    "responsiveness": "Slow replies to customer e-mails",
    "qbr": "No recent business review",
    "adoption": "Falling product adoption",
    "support": "Support pain",
    "voice": "Unhappy customer (NPS/CSAT)",
    "first_year": "First-year account",
    "renewal": "Renewal coming up",
    "commercial": "Shrinking contract",
    "engagement": "Little proactive contact",
    "context": "Account profile",
}

# Feature families: one module of the features package each; an absent optional table
# drops its family.
FAMILIES = ("responsiveness", "qbr", "adoption", "usage", "support", "voice", "tenure", "context")
# The feature table's look-ahead columns (from the snapshot grid): targets and what evaluation
# needs, never features.
LABEL_COLUMNS = ("label", "churn_date", "term_end", "renewal_label")

Unit = Literal["hours", "days", "count", "share", "ratio", "score", "flag", "currency", "category", "seats"]


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: its name, family, signal, wording and which direction means risk.

    ``phrase`` is a sentence with a ``{value}`` placeholder, e.g.
    "Customer e-mails wait {value} for a reply (median, last 90 days)".
    ``risk_direction`` is +1 when higher values mean more risk, -1 when lower values do,
    0 when there is no direction (categoricals, current ARR) or none is known in advance.
    ``learned``: the feature is built from the export's own vocabulary (an event type's usage), so
    its direction is not promised: no monotone constraint, and reasons take the direction the
    fitted model shows (``models.train.learned_directions``). ``reason_group``: features that make
    one reason together (an event type's four metrics); by default the signal.
    """

    name: str
    family: str
    signal: str
    label: str
    phrase: str
    unit: Unit
    risk_direction: Literal[-1, 0, 1]
    dtype: Literal["float", "int", "category"] = "float"
    learned: bool = False
    reason_group: str | None = None

    @property
    def group(self) -> str:
        """The reason this feature speaks for: its ``reason_group``, else its signal."""
        return self.reason_group or self.signal

    @property
    def group_title(self) -> str:
        """The reason in words, for importance tables: the group's name, or the signal's."""
        return self.reason_group or SIGNALS[self.signal]

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: unknown family {self.family!r}")
        if self.signal not in SIGNALS:
            raise ValueError(f"{self.name}: unknown signal {self.signal!r}")
        if "{value}" not in self.phrase:
            raise ValueError(f"{self.name}: phrase needs a {{value}} placeholder")


def format_value(value: float | str | None, unit: str) -> str:
    """A feature value in the unit a CSM expects (61 h, 12 days, 40%, $120,000)."""
    if value is None or (isinstance(value, float) and value != value):
        return "no data"
    if unit == "category":
        return str(value)
    v = float(value)
    if unit == "hours":
        return f"{v:.0f} h" if v >= 10 else f"{v:.1f} h"
    if unit == "days":
        return f"{v:.0f} days"
    if unit == "share":
        return f"{100 * v:.0f}%"
    if unit == "ratio":
        return f"{v:.2f}"
    if unit == "currency":
        return f"{v:,.0f}"
    if unit == "flag":
        return "yes" if v >= 0.5 else "no"
    if unit == "score":
        return f"{v:.1f}"
    return f"{v:.0f}"


def catalogue_to_json(specs: list[FeatureSpec], dropped_families: dict[str, str]) -> dict:
    """The JSON document written to data/processed/feature_catalog.json."""
    return {
        "features": [asdict(s) for s in specs],
        "dropped_families": dropped_families,
        "signals": SIGNALS,
    }


def catalogue_from_json(doc: dict) -> list[FeatureSpec]:
    """Feature specs back from the catalogue JSON."""
    return [FeatureSpec(**f) for f in doc["features"]]


def catalogue_hash(doc: dict) -> str:
    """A stable fingerprint of the catalogue, stored with the model to detect drift."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Catalogue:
    """The catalogue as one object: the one answer to "which features are categorical, constrained,
    the ARR, the days to renewal", so no stage looks those up by its own rule."""

    specs: tuple[FeatureSpec, ...]

    @classmethod
    def from_json(cls, doc: dict) -> Catalogue:
        return cls(tuple(catalogue_from_json(doc)))

    @property
    def names(self) -> list[str]:
        """The model's inputs, in catalogue order."""
        return [s.name for s in self.specs]

    @property
    def by_name(self) -> dict[str, FeatureSpec]:
        return {s.name: s for s in self.specs}

    @property
    def categorical(self) -> list[str]:
        return [s.name for s in self.specs if s.dtype == "category"]

    @property
    def monotone_constraints(self) -> list[int]:
        """The risk direction per feature (0 for categoricals and learned features): more latency can never lower risk.

        A constraint is a promise to the reader of a reason, so only the hand-written families,
        whose direction the customer-success playbook knows, make it; learned usage metrics are free.
        """
        return [int(s.risk_direction) if s.dtype != "category" and not s.learned else 0 for s in self.specs]

    @property
    def context(self) -> list[str]:
        """Account-profile features (region, segment), for per-group metrics."""
        return [s.name for s in self.specs if s.signal == "context"]

    def first(self, signal: str, unit: str, risk_direction: int | None = None) -> str | None:
        """The first feature of a signal measured in a unit (and with that risk direction, if given)."""
        return next(
            (
                s.name
                for s in self.specs
                if s.signal == signal
                and s.unit == unit
                and (risk_direction is None or s.risk_direction == risk_direction)
            ),
            None,
        )

    @property
    def arr(self) -> str | None:
        """The current-ARR feature, for ARR-weighted metrics and ARR at risk."""
        return self.first("commercial", "currency")

    @property
    def days_to_renewal(self) -> str | None:
        """The renewal countdown in days (fewer days, more risk; missing once the term has ended)."""
        return self.first("renewal", "days", risk_direction=-1)

    @property
    def days_overdue(self) -> str | None:
        """The days a renewal is overdue (the term ended, no new one started yet)."""
        return self.first("renewal", "days", risk_direction=1)

    def only(self, names: list[str]) -> Catalogue:
        """The catalogue restricted to ``names`` (a model's feature list), in that order."""
        by_name = self.by_name
        return Catalogue(tuple(by_name[n] for n in names))
