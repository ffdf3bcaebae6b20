"""Account profile: region and segment, as native pandas categoricals.

They carry no risk direction by themselves; they let the model learn that "slow" or
"quiet" means different things in different regions and segments. Categories are the
sorted values of the accounts table, so the same export always yields the same codes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalogue import FeatureSpec
from features.duck import KEY, arrow_ids, positions_in

FAMILY = "context"
REQUIRES = ("accounts",)

SPECS: list[FeatureSpec] = [
    FeatureSpec(
        "account_region_category", FAMILY, "context", "Region", "Region: {value}", "category", 0, dtype="category"
    ),
    FeatureSpec(
        "account_segment_category", FAMILY, "context", "Segment", "Segment: {value}", "category", 0, dtype="category"
    ),
]
NAMES = [s.name for s in SPECS]
_SOURCE = {"account_region_category": "region", "account_segment_category": "segment"}


def context_features(tables: dict[str, pd.DataFrame], grid: pd.DataFrame) -> pd.DataFrame:
    """Region and segment for every (account, snapshot) of ``grid``.

    A plain key lookup, not a time-dependent feature: the accounts table holds today's
    profile, which we take as stable over the history.

    Returns:
        ``grid``'s keys plus ``account_region_category`` and ``account_segment_category``
        (pandas ``category``; missing stays missing).
    """
    accounts = tables["accounts"].drop_duplicates("account_id")
    out = grid[KEY].copy()
    row = positions_in(out["account_id"], arrow_ids(accounts["account_id"]))  # -1: not in the accounts table
    for name, source in _SOURCE.items():
        values = accounts[source].astype("string").str.strip()
        categories = sorted(values.dropna().unique())
        codes = pd.Categorical(values, categories=categories).codes
        out[name] = pd.Categorical.from_codes(
            np.where(row >= 0, codes[np.maximum(row, 0)], -1) if len(codes) else np.full(len(row), -1),
            categories=categories,
        )
    return out
