"""Stage `demo_data`: simulate the demo CRM export and its ground truth.

Thin on purpose: it resolves options against params.yaml, calls the simulator of the world
asked for (``crm``: the CS-driven book of ``simulate``; ``usage``: the product-led book of
``usage_world``, usage events only) and, for a Salesforce or HubSpot file shape, hands the
canonical export to the shape writer.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from features.errors import InputError
from pipelines.config import settings
from pipelines.demo import usage_world
from pipelines.demo.simulate import simulate
from pipelines.logs import LOG, timed

FORMATS = ("canonical", "salesforce", "hubspot")
WORLDS = {"crm": simulate, "usage": usage_world.simulate}


def main(
    accounts: int | None = None,
    seed: int | None = None,
    out: Path | None = None,
    truth: Path | None = None,
    fmt: str = "canonical",
    world: str = "crm",
) -> None:
    """Write the demo export of ``world`` to ``out`` (file shape ``fmt``) and the truth to ``truth``."""
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if world not in WORLDS:
        raise InputError(f"--world {world!r}: expected one of {', '.join(WORLDS)}")
    if world != "crm" and fmt != "canonical":
        raise InputError(f"--format {fmt}: the {world} world is written in canonical files only")
    if accounts is not None and accounts < 1:
        raise InputError(f"--accounts {accounts}: need at least one account")
    demo, paths = settings().demo, settings().paths
    accounts = accounts if accounts is not None else demo.accounts
    seed = seed if seed is not None else demo.seed
    out = Path(out) if out is not None else paths.demo_export
    truth = Path(truth) if truth is not None else paths.ground_truth
    start, end = demo.start, demo.end

    with timed("demo_data", rows_in=None) as info:
        if fmt == "canonical":
            summary = WORLDS[world](accounts, seed, start, end, out, truth)
        else:
            summary = _simulate_as_shape(accounts, seed, start, end, out, truth, fmt)
        info["rows"] = sum(summary["rows"].values())
    LOG.info(
        "demo_data: %s world, %s accounts, seed %s, annual churn %.1f%% -> %s (truth: %s)",
        world,
        f"{accounts:,}",
        seed,
        100 * summary["annual_churn_rate"],
        out,
        truth,
    )


def _simulate_as_shape(accounts: int, seed: int, start, end, out: Path, truth: Path, fmt: str) -> dict:
    """Generate canonically into a scratch folder, then let the shape writer lay out ``fmt``."""
    try:
        from pipelines.demo.shapes import write_export_shape
    except ImportError as exc:
        raise InputError(f"--format {fmt}: the shape writer (pipelines/demo/shapes.py) is not available") from exc
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".canonical-", dir=out.parent) as scratch:
        summary = simulate(accounts, seed, start, end, Path(scratch), truth)
        write_export_shape(Path(scratch), out, fmt)
    return summary
