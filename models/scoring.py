"""This week's list: score the accounts active at the as-of date, explain each, and assemble the at-risk table.

Scoring computes point-in-time features at the as-of date (and at as-of minus 7 days for
``change_7d``) straight from the canonical tables, so it runs on any week's export without
retraining and without last week's file.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.build import build_features
from features.catalogue import Catalogue
from features.duck import Table
from features.errors import InputError
from features.params import FeatureParams
from models import explain, plays, tracking
from models.params import ScoreParams
from models.train import MODEL_FILE, ChurnModel

LOG = logging.getLogger("churn.score")
CSV_COLUMNS = [
    "as_of",
    "rank",
    "account_id",
    "account_name",
    "owner",
    "segment",
    "region",
    "arr",
    "renewal_date",
    "days_to_renewal",
    "renewal_risk",
    "churn_probability",
    "change_7d",
    "what_changed",
    "risk_tier",
    "arr_at_risk_at_renewal",
    "expected_arr_at_risk",
    "reason_1",
    "reason_2",
    "reason_3",
    "play_1",
    "play_2",
    "play_3",
    "model_version",
    "renewal_model_version",
    "challenger_risk",
    "challenger_version",
    "data_note",
]


# ---------------------------------------------------------------- the scoring date and the model


def default_as_of(export_date: dt.date) -> dt.date:
    """This week's scoring date: the day after the export date, so the whole export is seen.

    The export date is the one ingest recorded (``pipelines.canonical.read_export_date``), or
    ``features.export_date.export_last_date`` of tables held in memory: one rule, decided once.
    """
    return export_date + dt.timedelta(days=1)


def load_model(spec: str | None, folder: Path, tracking_uri: str) -> tuple[ChurnModel, str]:
    """A model from a folder (default ``folder``) or the registry (models:/name@alias), and its version label."""
    if spec and spec.startswith(("models:/", "runs:/")):
        client = tracking.connect(tracking_uri)
        model = ChurnModel.load(tracking.load_registered_files(spec))
        return model, tracking.version_label(client, spec)
    folder = Path(spec) if spec else folder
    model = ChurnModel.load(folder)
    run = tracking.read_run_file(folder)
    if run is not None:
        return model, f"{run['registered_model']}/{run['version']}"
    return model, f"{folder.name}:{model.catalog_hash}"


# ---------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Scorer:
    """A model and the version label it is reported under.

    ``challenger``: the model folder's own model when the registry gate did not make it the
    champion; it is scored beside the champion for comparison, never in its place.
    """

    model: ChurnModel
    version: str
    challenger: Scorer | None = None


def load_scorer(spec: str | None, folder: Path, tracking_uri: str) -> Scorer:
    """The model that scores the list: ``spec`` as given, else the champion of the folder's registered model.

    The folder holds whatever train wrote last, and the gate may have made that a challenger:
    scoring with it would ship a model that lost to the champion. So the champion scores, and
    the folder's model, when it is not the champion, comes along as ``challenger``. Without a
    run file, a store or a champion there is no gate to honour: the folder's model scores.
    """
    if spec:
        return Scorer(*load_model(spec, folder, tracking_uri))
    model, version = load_model(None, folder, tracking_uri)
    run = tracking.read_run_file(folder)
    if run is None:
        return Scorer(model, version)
    client = tracking.existing_registry(tracking_uri)
    name = run["registered_model"]
    champion = tracking.champion_version(client, name) if client is not None else None
    if champion is None:
        where = f"no MLflow store at {tracking_uri}" if client is None else f"{name} has no champion in the registry"
        LOG.warning("%s: scoring with %s from %s (registered as %s)", where, version, folder, run.get("alias", "?"))
        return Scorer(model, version)
    if str(champion.version) == str(run["version"]):
        return Scorer(model, version)
    label = f"{name}/{champion.version}"
    champion_model = ChurnModel.load(tracking.load_registered_files(f"models:/{label}"))
    return Scorer(champion_model, label, challenger=Scorer(model, version))


def load_scorers(
    model_spec: str | None,
    renewal_spec: str | None,
    models_dir: Path,
    renewal_dir: Path,
    tracking_uri: str,
    rank_by: str,
) -> tuple[Scorer, Scorer | None]:
    """The 90-day model and the renewal model (a folder's champion, a folder or ``models:/name@alias`` each).

    The renewal model is required when the list is ranked by it (``score.rank_by: renewal``);
    ranked by the 90-day model, it is used when its folder (or spec) is there.
    """
    horizon = load_scorer(model_spec, models_dir, tracking_uri)
    wanted = rank_by == "renewal" or renewal_spec or (Path(renewal_dir) / MODEL_FILE).exists()
    renewal = load_scorer(renewal_spec, renewal_dir, tracking_uri) if wanted else None
    ranking = ranking_scorer(horizon, renewal, rank_by)
    for scorer in (horizon, renewal):
        if scorer is None or scorer.challenger is None:
            continue
        if scorer is ranking:
            LOG.info(
                "champion %s scored the list; challenger %s (the newest, not champion) scored alongside "
                "in challenger_risk, not shipped",
                *(scorer.version, scorer.challenger.version),
            )
        else:
            LOG.info(
                "champion %s scored its column; challenger %s not compared (the list ranks by %s)",
                *(scorer.version, scorer.challenger.version, rank_by),
            )
    return horizon, renewal


def ranking_scorer(horizon: Scorer, renewal: Scorer | None, rank_by: str) -> Scorer:
    """The scorer the list is ranked, tiered and explained by (``score.rank_by``)."""
    return renewal if rank_by == "renewal" and renewal is not None else horizon


@dataclass(frozen=True)
class ChallengerScores:
    """The challenger's probability for the ranking target at as-of, by account id, and its version label."""

    version: str
    probability: pd.Series


def challenger_scores(
    challenger: Scorer,
    tables: dict[str, Table],
    frame: pd.DataFrame,
    catalog: dict,
    as_of: dt.date,
    params: FeatureParams,
    vocabulary: dict[str, dict],
    batch_rows: int | None = None,
) -> ChallengerScores | None:
    """The challenger's probabilities at as-of, for comparison with the champion's (None if it cannot score).

    ``frame`` and ``catalog`` are the champion's features, built with ``vocabulary``; a challenger
    trained on another event vocabulary gets features of its own, at the as-of date only. A
    challenger this export cannot score does not stop the champion's list: a warning says why.
    """
    if challenger.model.vocabulary == vocabulary:
        now = frame[frame["snapshot_date"].dt.date == as_of]
    else:
        now, catalog = point_in_time_features(tables, [as_of], params, batch_rows, challenger.model.vocabulary)
    try:
        check_feature_drift(challenger.model, catalog, now)
    except InputError as exc:
        LOG.warning("challenger %s not scored: %s", challenger.version, exc)
        return None
    ids = now["account_id"].astype(str).to_numpy()
    return ChallengerScores(challenger.version, pd.Series(challenger.model.predict_proba(now), index=ids))


def scoring_vocabulary(model: ChurnModel, renewal: Scorer | None) -> dict[str, dict]:
    """The event vocabulary both models were trained on; two different ones cannot share one feature build."""
    if renewal is not None and renewal.model.vocabulary != model.vocabulary:
        raise InputError(
            "the 90-day and renewal models were trained on different event vocabularies "
            "(features.usage): retrain both on the same feature table (`dvc repro train train_renewal`)"
        )
    return model.vocabulary


def check_feature_drift(model: ChurnModel, catalog: dict, frame: pd.DataFrame) -> None:
    """Refuse to score when this export's features are not the ones the model was trained on."""
    produced = {f["name"] for f in catalog["features"]}
    missing = [f for f in model.features if f not in produced]
    if missing:
        dropped = catalog.get("dropped_families", {})
        hint = (
            f" (families dropped for this export: {', '.join(f'{k}: {v}' for k, v in dropped.items())})"
            if dropped
            else ""
        )
        raise InputError(
            f"feature drift: the model needs {len(missing)} feature(s) this export does not produce, e.g. "
            f"{', '.join(missing[:5])}{hint}; retrain on this export's shape (`dvc repro`) or fix the export"
        )


def risk_tier(probability: pd.Series, tiers: dict[str, float]) -> pd.Series:
    """Tier by thresholds from params.yaml, highest threshold first."""
    ordered = sorted(tiers.items(), key=lambda kv: -kv[1])
    out = pd.Series(ordered[-1][0], index=probability.index, dtype="string")
    for name, threshold in reversed(ordered):
        out = out.mask(probability >= threshold, name)
    return out


@dataclass
class ScoreResult:
    """The at-risk table and what its pictures and explanations are drawn from."""

    at_risk: pd.DataFrame
    explanations: pd.DataFrame
    contrib: explain.Contributions
    X: pd.DataFrame
    probability: pd.Series


def point_in_time_features(
    tables: dict[str, Table],
    dates: list[dt.date],
    params: FeatureParams,
    batch_rows: int | None = None,
    vocabulary: dict[str, dict] | None = None,
    shift_days: dict[str, int] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Features of every active account at each of ``dates``, sorted by date and account.

    ``vocabulary``: the model's event types (``ChurnModel.vocabulary``), so the learned usage
    columns are the model's whatever types this export holds. ``shift_days``: stale tables
    scored with anyway, their families computed as of their last row (``build_features``).
    """
    frame, catalog = build_features(
        tables, dates, params, batch_rows=batch_rows, vocabulary=vocabulary, shift_days=shift_days
    )
    return frame.sort_values(["snapshot_date", "account_id"], kind="stable").reset_index(drop=True), catalog


def calibrated(model: ChurnModel, contrib: explain.Contributions, index: pd.Index) -> pd.Series:
    """Churn probability from SHAP contributions (they add up to the booster's raw score)."""
    return pd.Series(
        model.calibrator.transform(contrib.values.sum(axis=1).to_numpy() + contrib.base_value), index=index
    )


def score_accounts(
    frame: pd.DataFrame,
    catalog: dict,
    as_of: dt.date,
    accounts: pd.DataFrame,
    model: ChurnModel,
    model_version: str,
    params: ScoreParams,
    playbook: dict[str, str],
    renewal: Scorer | None = None,
    challenger: ChallengerScores | None = None,
    data_note: str | None = None,
) -> ScoreResult:
    """Both risks, SHAP, reasons and plays for the accounts in ``frame`` at ``as_of`` (and a week before).

    ``data_note``: what the reader must know about this week's inputs (a stale table scored with anyway).

    ``model`` gives ``churn_probability`` (within the horizon) and ``renewal`` gives
    ``renewal_risk`` (the current term is not renewed). The list is ranked, tiered and explained
    by ``params.rank_by``'s model: reasons, ``change_7d`` and ``what_changed`` follow its score.
    ``challenger`` (the ranking model's challenger, ``challenger_scores``) only fills
    ``challenger_risk`` and ``challenger_version``: it never changes the ranking.
    """
    if params.rank_by == "renewal" and renewal is None:
        raise InputError(
            "score.rank_by is renewal but there is no renewal model: run `dvc repro train_renewal` "
            "(or set score.rank_by: horizon)"
        )
    before = as_of - dt.timedelta(days=7)
    check_feature_drift(model, catalog, frame)
    if renewal is not None:
        check_feature_drift(renewal.model, catalog, frame)
    ranking = renewal.model if params.rank_by == "renewal" and renewal is not None else model
    full = Catalogue.from_json(catalog)  # ARR and renewal dates are shown even when a model does not use them
    catalogue = full.only(ranking.features)
    specs = ranking.reason_specs(catalogue.by_name)
    now = frame[frame["snapshot_date"].dt.date == as_of].set_index("account_id", drop=False)
    prev = frame[frame["snapshot_date"].dt.date == before].set_index("account_id", drop=False)
    if now.empty:
        raise InputError(f"no account is active on {as_of}; check --as-of against the export's contract dates")

    contrib_now = explain.shap_contributions(ranking, now)
    contrib_prev = explain.shap_contributions(ranking, prev) if len(prev) else None
    p_now = calibrated(ranking, contrib_now, now.index)
    p_prev = calibrated(ranking, contrib_prev, prev.index) if contrib_prev is not None else pd.Series(dtype=float)
    if ranking is model:
        p_horizon = p_now
        p_renewal = pd.Series(renewal.model.predict_proba(now) if renewal else np.nan, index=now.index)
    else:
        p_horizon, p_renewal = pd.Series(model.predict_proba(now), index=now.index), p_now

    X_now = ranking.matrix(now)
    references = ranking.metadata.get("retained_reference", {})
    reasons = explain.top_reasons(X_now, contrib_now, specs, references, top=params.top_reasons)
    changed = explain.what_changed(
        explain.signal_contributions(contrib_now, specs),
        explain.signal_contributions(contrib_prev, specs)
        if contrib_prev is not None
        else pd.DataFrame(index=pd.Index([], name="account_id")),
    )

    accounts = accounts.drop_duplicates("account_id").set_index("account_id")
    out = pd.DataFrame(index=now.index.rename(None))
    out["as_of"] = as_of.isoformat()
    out["account_id"] = now["account_id"].astype("string")
    out["account_name"] = accounts["account_name"].reindex(now.index) if "account_name" in accounts else pd.NA
    out["owner"] = accounts["owner"].reindex(now.index) if "owner" in accounts else pd.NA
    for attribute in ("segment", "region"):  # account attributes, straight from the accounts table
        out[attribute] = accounts[attribute].reindex(now.index).astype("string") if attribute in accounts else pd.NA
    out["arr"] = now[full.arr].astype(float).round(2) if full.arr and full.arr in now else np.nan
    renewal_days = full.days_to_renewal
    days = (
        now[renewal_days].astype(float) if renewal_days and renewal_days in now else pd.Series(np.nan, index=now.index)
    )
    overdue = full.days_overdue
    if overdue and overdue in now:  # an overdue renewal: negative days, the renewal date is the term's end
        late = now[overdue].astype(float)
        days = days.where(~(late > 0), -late)
    out["days_to_renewal"] = days.round(0).astype("Int64")
    out["renewal_date"] = [(as_of + dt.timedelta(days=int(d))).isoformat() if pd.notna(d) else pd.NA for d in days]
    out["renewal_risk"] = p_renewal.round(4)
    out["churn_probability"] = p_horizon.round(4)
    out["change_7d"] = (p_now - p_prev.reindex(now.index)).round(4)
    out["what_changed"] = changed.astype("string")
    out["risk_tier"] = risk_tier(p_now, params.tiers)
    out["arr_at_risk_at_renewal"] = (p_renewal * out["arr"]).round(2)
    out["expected_arr_at_risk"] = (p_horizon * out["arr"]).round(2)
    for r in range(1, 4):
        out[f"reason_{r}"] = reasons[f"reason_{r}"] if f"reason_{r}" in reasons else pd.NA
        out[f"play_{r}"] = plays.plays_for(reasons[f"signal_{r}"], playbook) if f"signal_{r}" in reasons else pd.NA
    out["model_version"] = model_version
    out["renewal_model_version"] = renewal.version if renewal is not None else pd.NA
    out["challenger_risk"] = challenger.probability.reindex(now.index).round(4) if challenger else np.nan
    out["challenger_version"] = challenger.version if challenger else pd.NA
    out["data_note"] = data_note if data_note else pd.NA
    at_risk, probability = (
        ("arr_at_risk_at_renewal", "renewal_risk")
        if ranking is not model
        else ("expected_arr_at_risk", "churn_probability")
    )
    out = out.sort_values([at_risk, probability, "account_id"], ascending=[False, False, True], kind="stable")
    out["rank"] = np.arange(1, len(out) + 1)
    explanations = explain.explanations_long(now[["account_id", "snapshot_date"]], X_now, contrib_now)
    return ScoreResult(out[CSV_COLUMNS].reset_index(drop=True), explanations, contrib_now, X_now, p_now)


def build_scores(
    tables: dict[str, Table],
    as_of: dt.date,
    model: ChurnModel,
    model_version: str,
    feature_params: FeatureParams,
    params: ScoreParams,
    playbook: dict[str, str],
    batch_rows: int | None = None,
    renewal: Scorer | None = None,
    challenger: Scorer | None = None,
) -> ScoreResult:
    """Features at as-of and as-of − 7 days, then ``score_accounts``: the at-risk table from canonical tables.

    ``challenger``: the ranking model's challenger (``ranking_scorer(...).challenger``), scored alongside.
    """
    dates = [as_of - dt.timedelta(days=7), as_of]
    vocabulary = scoring_vocabulary(model, renewal)
    frame, catalog = point_in_time_features(tables, dates, feature_params, batch_rows, vocabulary)
    compared = (
        challenger_scores(challenger, tables, frame, catalog, as_of, feature_params, vocabulary, batch_rows)
        if challenger is not None
        else None
    )
    return score_accounts(
        frame, catalog, as_of, tables["accounts"], model, model_version, params, playbook, renewal, compared
    )
