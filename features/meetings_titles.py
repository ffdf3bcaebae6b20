"""Meeting titles to meeting types: many CRMs only export a free-text title.

QBR cadence is a key churn signal, yet Salesforce Events and HubSpot meetings carry no
"type" field, only a subject such as "Q3 Business Review" or "revue trimestrielle".
Classifying the title at ingest lets the title (personal data at times) be dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Checked in this order, so "QBR prep call" is a QBR and "Onboarding call" is onboarding:
# the rarer, more specific meeting wins over the generic "call".
MEETING_TYPE_PATTERNS: dict[str, str] = {
    "qbr": (
        r"\bqbr\b|\bebr\b|business review|quarterly review|executive review"
        r"|revue trimestrielle|revue d'affaires|bilan trimestriel"
        r"|\bq[1-4]\b.*\breview\b"
    ),
    "onboarding": r"onboarding|kick[- ]?off|\bkick off\b",
    "training": r"training|webinar|\bformation\b|workshop",
    "call": r"\bcall\b|\bsync\b|check[- ]?in|\bappel\b",
}
OTHER = "other"


def classify_meeting_title(titles: pd.Series) -> pd.Series:
    """Map each meeting title to qbr, onboarding, training, call or other.

    Args:
        titles: free-text meeting titles; missing titles are allowed.

    Returns:
        A string Series ``meeting_type`` with the same index; unmatched or missing
        titles are ``"other"``.
    """
    lowered = titles.astype("string").str.lower().fillna("")
    matches = [
        lowered.str.contains(pattern, regex=True).to_numpy(dtype=bool) for pattern in MEETING_TYPE_PATTERNS.values()
    ]
    kinds = np.select(matches, list(MEETING_TYPE_PATTERNS), default=OTHER)
    return pd.Series(kinds, index=titles.index, name="meeting_type", dtype="string")
