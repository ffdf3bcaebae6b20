"""SHAP contributions per account, turned into ranked reasons in plain words via the catalogue.

Contributions are exact TreeSHAP values from LightGBM's own ``pred_contrib`` (the same
numbers as ``shap.TreeExplainer`` on this booster, and several times faster since it runs
in LightGBM's C++ with no Python tree walk). They are in log-odds: per account,
contributions + base value = the booster's raw score; the calibrated probability is a
monotone map of that score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.catalogue import SIGNALS, FeatureSpec, format_value

if TYPE_CHECKING:  # train imports explain (reference values), so the model type is for hints only
    from models.train import ChurnModel

# Signals that explain a score but are nothing a CSM can act on: region/segment, and the renewal's
# timing (it is in days_to_renewal; "the contract ends in 40 days" is a date, not a cause).
NOT_A_REASON = {"context", "renewal"}
NO_WARNING_SIGN = (
    "No behavioural warning sign: contact, meetings, usage, support and feedback look like retained accounts'"
)


@dataclass(frozen=True)
class Contributions:
    """SHAP contributions (rows × features, log-odds) and the base value."""

    values: pd.DataFrame
    base_value: float


def shap_contributions(model: ChurnModel, frame: pd.DataFrame) -> Contributions:
    """Exact TreeSHAP via LightGBM ``pred_contrib``; the last column is the expected value."""
    raw = model.booster.predict(model.matrix(frame), pred_contrib=True)
    values = pd.DataFrame(raw[:, :-1], columns=model.features, index=frame.index)
    base = float(raw[0, -1]) if len(raw) else 0.0
    return Contributions(values, base)


def explanations_long(keys: pd.DataFrame, X: pd.DataFrame, contrib: Contributions) -> pd.DataFrame:
    """One row per (account, feature): value, its text, contribution in log-odds, base value."""
    n, k = contrib.values.shape
    numeric_values = X.apply(
        lambda c: pd.to_numeric(c, errors="coerce") if c.dtype.name != "category" else pd.Series(np.nan, index=c.index)
    )
    text_values = X.astype("string").fillna("")
    return pd.DataFrame(
        {
            "account_id": np.repeat(keys["account_id"].to_numpy(), k),
            "snapshot_date": np.repeat(keys["snapshot_date"].to_numpy(), k),
            "feature": np.tile(np.asarray(contrib.values.columns, dtype=object), n),
            "value": numeric_values.to_numpy(dtype="float64").ravel(),
            "value_text": text_values.to_numpy(dtype=object).ravel(),
            "contribution": contrib.values.to_numpy().ravel(),
            "base_value": contrib.base_value,
        }
    )


def signal_contributions(contrib: Contributions, specs: dict[str, FeatureSpec]) -> pd.DataFrame:
    """Contributions summed per signal family (rows × signals): several latency features make one reason."""
    signal_of = {f: specs[f].signal for f in contrib.values.columns}
    return contrib.values.T.groupby(signal_of).sum().T


def reference_values(frame: pd.DataFrame, specs: dict[str, FeatureSpec], label: str = "label") -> dict[str, float]:
    """What a retained account looks like: median per feature (share for flags) over label == 0 rows."""
    retained = frame[frame[label] == 0]
    out: dict[str, float] = {}
    for name, spec in specs.items():
        if spec.dtype == "category" or name not in retained:
            continue
        values = pd.to_numeric(retained[name], errors="coerce")
        stat = values.mean() if spec.unit == "flag" else values.median()
        if pd.notna(stat):
            out[name] = float(stat)
    return out


def word_reason(spec: FeatureSpec, value, reference: float | None) -> str:
    """'Customer e-mails wait 61 h for a reply (median, last 90 days); retained accounts: 6 h'."""
    text = spec.phrase.format(value=format_value(value, spec.unit))
    if reference is not None:
        ref = f"{100 * reference:.0f}% of them" if spec.unit == "flag" else format_value(reference, spec.unit)
        text += f"; retained accounts: {ref}"
    return text


def risky_side(X: pd.DataFrame, specs: dict[str, FeatureSpec], references: dict[str, float]) -> pd.DataFrame:
    """Whether each value can honestly be called a risk: known, and on the risky side of retained accounts.

    A feature with no reference only needs a value; one with no risk direction (current ARR)
    has no risky side and is never a reason. "No data" or a reassuring value (a QBR *was* held)
    may still move the score, but it is no reason a CSM can act on.
    """
    mask = {}
    for name in X.columns:
        spec = specs[name]
        if spec.dtype == "category":
            mask[name] = X[name].notna().to_numpy()
            continue
        v = pd.to_numeric(X[name], errors="coerce").to_numpy(dtype=float)
        ref = references.get(name)
        known = ~np.isnan(v)
        if spec.risk_direction == 0:
            mask[name] = np.zeros(len(v), dtype=bool)
        else:
            mask[name] = known if ref is None else known & ((v - ref) * spec.risk_direction > 0)
    return pd.DataFrame(mask, index=X.index)


def top_reasons(
    X: pd.DataFrame,
    contrib: Contributions,
    specs: dict[str, FeatureSpec],
    references: dict[str, float],
    top: int = 3,
) -> pd.DataFrame:
    """Per account, the ``top`` risk-raising behavioural reasons with a sentence each, strongest first.

    An account with none gets ``NO_WARNING_SIGN`` as its first reason (and no play).

    A reason is a group of features (``FeatureSpec.group``: a signal family, or one event type's
    learned usage metrics, so a hundred learned columns still make a few readable reasons). Its
    weight is the summed contribution of its features whose values are on the risky side
    (``risky_side``); it is a reason when that sum raises risk. Its sentence is worded from its
    most risk-raising such feature, with the account's value and the retained reference;
    ``signal_k`` is the group's signal (its play). Learned features need the model's directions
    (``ChurnModel.reason_specs``) in ``specs``, else they have none and are never reasons.
    """
    names = contrib.values.columns
    risky = contrib.values.where(risky_side(X[names], specs, references).to_numpy(), 0.0)
    group_of = pd.Series({f: specs[f].group for f in names})
    signal_of_group = {specs[f].group: specs[f].signal for f in names}
    by_group = risky.T.groupby(group_of).sum().T
    by_group = by_group[[g for g in by_group.columns if signal_of_group[g] not in NOT_A_REASON]]
    values = risky.to_numpy()
    col_index = {f: i for i, f in enumerate(names)}
    features_of = {g: [col_index[f] for f in group_of.index[group_of == g]] for g in by_group.columns}
    group_matrix = by_group.to_numpy()
    order = np.argsort(-group_matrix, axis=1, kind="stable")
    rows = []
    for i in range(len(by_group)):
        record: dict[str, object] = {}
        rank = 0
        for j in order[i]:
            if group_matrix[i, j] <= 0 or rank >= top:
                break
            group = by_group.columns[j]
            cols = features_of[group]
            best = cols[int(np.argmax(values[i, cols]))]
            feature = names[best]
            rank += 1
            record[f"reason_{rank}"] = word_reason(specs[feature], X.iat[i, best], references.get(feature))
            record[f"signal_{rank}"] = signal_of_group[group]
            record[f"reason_{rank}_logodds"] = float(group_matrix[i, j])
        rows.append(record)
    out = pd.DataFrame(rows, index=by_group.index)
    for r in range(1, top + 1):
        for col in (f"reason_{r}", f"signal_{r}"):
            if col not in out:
                out[col] = pd.Series(pd.NA, index=out.index, dtype="string")
    if top:  # said plainly rather than a reason invented from a reassuring value
        out["reason_1"] = out["reason_1"].astype("string").fillna(NO_WARNING_SIGN)
    return out


def _is_missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def what_changed(now: pd.DataFrame, before: pd.DataFrame) -> pd.Series:
    """The signal whose contribution rose the most between two scorings, in plain words."""
    common = now.index.intersection(before.index)
    delta = (now.loc[common] - before.loc[common].reindex(columns=now.columns, fill_value=0.0)).drop(
        columns=list(NOT_A_REASON), errors="ignore"
    )
    top_signal = delta.idxmax(axis=1)
    rose = delta.max(axis=1) > 0
    words = top_signal.map(lambda s: SIGNALS.get(s, s)).where(rose, "no signal worsened")
    return words.reindex(now.index).fillna("new this week")
