"""Train the 90-day model of a pipeline run under variants of ``train`` and print the test-window figures.

Used to measure a modelling choice off the demo as well as on it, e.g. monotone constraints on the
hand-written families only (the default) against no constraint at all:

    python -m pipelines.devtools.variants PROJECT_ROOT

reads ``PROJECT_ROOT``'s feature table and params (run ``dvc repro features`` there first) and
writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sklearn.metrics import brier_score_loss, roc_auc_score

from features.catalogue import catalogue_hash
from models.train import LABEL, split_out_of_time, train_model
from models.windows import resolve_windows
from pipelines.canonical import read_feature_table
from pipelines.outputs import project_settings

VARIANTS = {
    "monotone: hand-written families only (default)": {"monotone": True},
    "no monotone constraint": {"monotone": False},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="a project run (a folder with dvc.yaml and data/processed/)")
    args = parser.parse_args(argv)
    s = project_settings(args.root)
    frame, catalog = read_feature_table(s.paths.features, s.paths.feature_catalog)
    windows = resolve_windows(frame, s.train, s.features.horizon_days, s.features.grace_days)
    parts = split_out_of_time(frame, windows)
    test = parts["test"]
    for name, change in VARIANTS.items():
        model = train_model(parts, catalog, catalogue_hash(catalog), s.train.model_copy(update=change), windows)
        p = model.predict_proba(test)
        y = test[LABEL].astype(int)
        print(
            f"{name}: test ROC AUC {roc_auc_score(y, p):.4f}, Brier {brier_score_loss(y, p):.4f}, "
            f"setting {model.metadata['tuning']['chosen']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
