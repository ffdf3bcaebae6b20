"""The `churn` command: one subcommand per pipeline stage, plus weekly scoring and explain.

Each subcommand is a thin wrapper: it reads settings, calls the stage's ``main`` and turns
user mistakes (``InputError``, ``ConfigError``) into one line on stderr and exit code 2.
Stage modules are imported lazily so that ``churn --help`` stays instant.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

# pandera imports pyspark.pandas when PySpark is installed (the optional Spark engine); its
# pandas-version notice says nothing about this pipeline, so keep it off every command's output.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
# Before LightGBM loads OpenMP: waiting threads sleep instead of spinning, so a stage sharing the
# machine with another (a second pipeline, a notebook) is not slowed tenfold; alone it costs nothing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

app = typer.Typer(
    name="churn",
    help="Churn prediction from CRM exports: demo data, ingestion, features, training, scoring.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]


def _user_errors_as_one_line(func: Callable) -> Callable:
    """Run a command; print user mistakes as a single line and exit 2 instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from features.errors import InputError
        from pipelines.config import ConfigError
        from pipelines.logs import configure_logging

        configure_logging(kwargs.get("verbose", False))
        try:
            return func(*args, **kwargs)
        except (InputError, ConfigError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted: previous outputs are left as they were", err=True)
            raise typer.Exit(code=130) from None

    return wrapper


@app.command("demo-data")
@_user_errors_as_one_line
def demo_data(
    accounts: Annotated[int | None, typer.Option(help="Number of accounts (default: params demo.accounts).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: params demo.seed).")] = None,
    out: Annotated[Path | None, typer.Option(help="Export folder (default: params paths.demo_export).")] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Ground-truth folder (default: params paths.ground_truth).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="canonical, salesforce or hubspot file shapes.")] = "canonical",
    world: Annotated[
        str,
        typer.Option(
            help="crm: churn driven by customer-success signals; usage: a product-led book, usage events only."
        ),
    ] = "crm",
    verbose: Verbose = False,
) -> None:
    """Generate the demo CRM export (a simulated book of B2B accounts) and its ground truth."""
    from pipelines import demo_data as stage

    stage.main(accounts=accounts, seed=seed, out=out, truth=truth, fmt=fmt, world=world)


@app.command()
@_user_errors_as_one_line
def ingest(
    export: Annotated[Path | None, typer.Option(help="Export folder (default: params data.export_dir).")] = None,
    preset: Annotated[str | None, typer.Option(help="canonical, salesforce, hubspot or a mapping YAML.")] = None,
    out: Annotated[Path | None, typer.Option(help="Canonical tables folder (default: params paths.interim).")] = None,
    verbose: Verbose = False,
) -> None:
    """Validate an export and write canonical, PII-free Parquet tables and reports/ingest.json."""
    from pipelines import ingest as stage

    stage.main(export=export, preset=preset, out=out)


@app.command()
@_user_errors_as_one_line
def features(
    interim: Annotated[
        Path | None, typer.Option(help="Canonical tables folder (default: params paths.interim).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: params paths.processed).")] = None,
    engine: Annotated[str | None, typer.Option(help="duckdb (default) or spark.")] = None,
    spark_source: Annotated[
        str | None,
        typer.Option(help="Engine spark: the interim folder as the cluster reads it, e.g. s3a://lake/churn/interim."),
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Compute point-in-time features and churn labels for every account and weekly snapshot."""
    from pipelines import features as stage

    stage.main(interim=interim, out=out, engine=engine, spark_source=spark_source)


@app.command()
@_user_errors_as_one_line
def train(
    target: Annotated[
        str, typer.Option(help="horizon: churn within features.horizon_days; renewal: the current term is not renewed")
    ] = "horizon",
    verbose: Verbose = False,
) -> None:
    """Train the calibrated LightGBM model out of time, log it to MLflow and register it."""
    from models.targets import TARGETS
    from pipelines import train as stage

    if target not in TARGETS:
        raise typer.BadParameter(f"--target must be one of {', '.join(TARGETS)}, not {target!r}")
    stage.main(target)


@app.command()
@_user_errors_as_one_line
def backtest(verbose: Verbose = False) -> None:
    """Replay the weekly list with models fitted before it; how early each ranking warned (reports/backtest.json)."""
    from pipelines import backtest as stage

    stage.main()


@app.command()
@_user_errors_as_one_line
def evaluate(verbose: Verbose = False) -> None:
    """Compare the model with its baselines on the test window; write metrics and plots."""
    from pipelines import evaluate as stage

    stage.main()


@app.command()
@_user_errors_as_one_line
def score(
    export: Annotated[
        Path | None, typer.Option(help="Export folder to score (default: the pipeline's canonical tables).")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="Preset of --export (default: params data.preset).")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Scoring date YYYY-MM-DD (default: the day after the export date).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="data/models folder or models:/churn-lgbm-demo@champion (default: data/models's champion)."),
    ] = None,
    renewal_model: Annotated[
        str | None,
        typer.Option(help="data/renewal_model folder or models:/churn-renewal-demo@champion (default: as --model)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="At-risk CSV to write (default: reports/at_risk.csv).")] = None,
    allow_stale: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-stale",
            help="Score although this event table is stale or empty (repeatable); its features as of its last row.",
        ),
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Score accounts active at the as-of date: renewal risk, 90-day probability, ARR at risk, reasons and plays."""
    from pipelines import score as stage

    stage.main(
        export=export,
        preset=preset,
        as_of=as_of,
        model=model,
        out=out,
        renewal_model=renewal_model,
        allow_stale=allow_stale,
    )


@app.command()
@_user_errors_as_one_line
def monitor(
    backfill: Annotated[
        bool,
        typer.Option(help="Re-create past weekly lists from the backtest's replay where none was kept."),
    ] = True,
    verbose: Verbose = False,
) -> None:
    """This week's drift and last quarter's lists judged: reports/monitoring.json and a table of the judged lists."""
    from pipelines import monitor as stage

    stage.main(backfill=backfill)


@app.command()
@_user_errors_as_one_line
def explain(
    account_id: Annotated[str, typer.Argument(help="The account to explain.")],
    verbose: Verbose = False,
) -> None:
    """Print one account's probability, reasons and plays, and write its SHAP waterfall."""
    from pipelines import score as stage

    stage.explain_account(account_id)


@app.command()
@_user_errors_as_one_line
def bench(
    sizes: Annotated[str, typer.Option(help="Comma-separated account counts.")] = "1000,10000",
    large: Annotated[bool, typer.Option("--large", help="Also run 100,000 accounts.")] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Keep each size's scratch folder (to profile a stage).")] = False,
    scratch: Annotated[
        Path | None, typer.Option(help="Folder for the scratch folders (default: the temp dir).")
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Benchmark every stage against the DuckDB floor; write reports/bench.json."""
    from pipelines.devtools import bench as stage

    stage.main(sizes=[int(s) for s in sizes.split(",") if s], large=large, keep=keep, scratch=scratch)


@app.command()
@_user_errors_as_one_line
def doctor(
    export: Annotated[Path, typer.Option(help="Export folder to check.")],
    preset: Annotated[
        str | None, typer.Option(help="canonical, salesforce, hubspot or a mapping YAML (default: params).")
    ] = None,
    write_mapping: Annotated[
        Path | None, typer.Option("--write-mapping", help="Write a starter mapping YAML with the best guesses.")
    ] = None,
    sample_rows: Annotated[int, typer.Option(help="Rows read per file.")] = 10_000,
    verbose: Verbose = False,
) -> None:
    """Check an export against a preset from a sample: column sources, likely matches, rejects, verdict.

    Exit 0 when ingest would run, 1 when it would not (the report says why), 2 on a usage error.
    """
    from pipelines.ingestion import doctor as stage

    code = stage.main(export=export, preset=preset, write_mapping=write_mapping, sample_rows=sample_rows)
    if code:
        raise typer.Exit(code=code)


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="churn")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
