"""The `bench` stage: every pipeline stage at several book sizes, against a hardware floor.

For each size a demo export is generated in a scratch folder and every stage runs as its
own ``churn`` subprocess, with ``CHURN_PARAMS`` pointing to a params file whose paths all
lie in that folder (so the repo's data and MLflow store are never touched). Each stage's
wall time and peak RSS come from ``os.wait4`` on that very process (its own rusage, which
on Linux includes the children it waited for, e.g. Spark's JVM), not from a global delta.

The *floor* is the cheapest honest pass over the same data: one DuckDB query that reads
every canonical table once and counts rows per account and day. The features stage can
hardly beat it, so ``features / floor`` says how much room is left.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from pipelines.config import PARAMS_FILE, settings
from pipelines.io import write_json

LOG = logging.getLogger("churn.bench")
DEFAULT_SIZES = (1_000, 10_000)
LARGE_SIZE = 100_000
STAGES = ("demo_data", "ingest", "features", "train", "train_renewal", "evaluate", "backtest", "score")
COMMANDS = {"demo_data": ["demo-data"], "train_renewal": ["train", "--target", "renewal"]}
FLOOR_COLUMNS = {
    "accounts": "created_date",
    "contracts": "start_date",
    "emails": "sent_at",
    "meetings": "start_at",
    "tickets": "created_at",
    "usage_events": "event_at",
    "surveys": "sent_at",
}


@dataclass
class StageRun:
    """One stage's measurements."""

    stage: str
    seconds: float
    peak_rss_mb: float
    rows_in: int | None = None
    rows_out: int | None = None
    rows_per_s: float | None = None
    notes: dict = field(default_factory=dict)


# ---------------------------------------------------------------- scratch set-up


def scratch_params(root: Path, accounts: int, base: Path = Path(PARAMS_FILE)) -> Path:
    """A params file equal to the project's, with every path inside ``root`` and ``accounts`` accounts.

    The demo dates are kept; the first snapshot and the training windows follow the data
    (``auto`` in params.yaml).
    """
    params = yaml.safe_load(base.read_text())
    playbook = Path(params["paths"]["playbook"]).resolve()
    params["paths"] = {
        "demo_export": str(root / "raw"),
        "ground_truth": str(root / "truth"),
        "interim": str(root / "interim"),
        "processed": str(root / "processed"),
        "models": str(root / "models"),
        "renewal_model": str(root / "renewal_model"),
        "reports": str(root / "reports"),
        "mlflow_db": str(root / "mlflow.db"),
        "playbook": str(playbook),
    }
    params["data"]["export_dir"] = str(root / "raw")
    params["data"]["preset"] = "canonical"
    params["demo"]["accounts"] = int(accounts)
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def churn_command() -> list[str]:
    """The `churn` entry point of this environment (falls back to ``python -m pipelines.cli``)."""
    exe = Path(sys.executable).parent / "churn"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "pipelines.cli"]


# ---------------------------------------------------------------- measuring one subprocess


def run_measured(cmd: list[str], env: dict, log_path: Path) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS in MiB), raising on failure.

    The peak is the larger of the process's own (``os.wait4``: exact, but the largest single
    process of its tree) and the tree's summed RSS sampled every 0.2 s: ingest runs worker
    processes side by side, and what the machine must hold is their sum.
    """
    with log_path.open("w") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler = _TreeRss(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log_path.read_text()[-2000:]
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{tail}")
    return seconds, max(usage.ru_maxrss / 1024, sampler.peak_mib)  # Linux reports ru_maxrss in kilobytes


class _TreeRss(threading.Thread):
    """Samples the summed RSS of a process and all its descendants until stopped."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_mib = 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop_event.is_set():
            total = 0
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:  # the process just ended
                tree = []
            for proc in tree:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_mib = max(self.peak_mib, total / 2**20)
            self._stop_event.wait(self.every)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


# ---------------------------------------------------------------- rows in and out, from the outputs


def parquet_rows(path: Path) -> int:
    """Rows of a Parquet file from its footer (no data read)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def folder_rows(folder: Path) -> int:
    """Rows of every top-level Parquet table in ``folder``."""
    return sum(parquet_rows(p) for p in sorted(folder.glob("*.parquet")))


def stage_rows(stage: str, root: Path) -> tuple[int | None, int | None]:
    """(rows in, rows out) of a finished stage, read from what it wrote."""
    ingest_report = root / "reports" / "ingest.json"
    if stage in ("demo_data", "ingest"):
        if not ingest_report.exists():  # demo_data is counted once ingest has read the export
            return None, None
        tables = json.loads(ingest_report.read_text())["tables"]
        read = sum(t["rows_read"] for t in tables.values())
        kept = sum(t["rows_kept"] for t in tables.values())
        return (None, read) if stage == "demo_data" else (read, kept)
    if stage == "features":
        return folder_rows(root / "interim"), parquet_rows(root / "processed" / "features.parquet")
    if stage == "train":
        return parquet_rows(root / "processed" / "features.parquet"), parquet_rows(
            root / "models" / "test_predictions.parquet"
        )
    if stage == "train_renewal":
        return parquet_rows(root / "processed" / "features.parquet"), parquet_rows(
            root / "renewal_model" / "test_predictions.parquet"
        )
    if stage == "evaluate":
        return parquet_rows(root / "models" / "test_predictions.parquet"), None
    if stage == "backtest":
        weeks = root / "reports" / "backtest_weeks.parquet"
        return parquet_rows(root / "processed" / "features.parquet"), parquet_rows(weeks) if weeks.exists() else None
    if stage == "score":
        at_risk = root / "reports" / "at_risk.csv"
        out = sum(1 for _ in at_risk.open()) - 1 if at_risk.exists() else None
        return folder_rows(root / "interim"), out
    return None, None


def log_notes(stage: str, log_text: str) -> dict:
    """Figures the stage logs that the bench reports: per-family feature times, SHAP time."""
    notes: dict = {}
    if stage == "features":
        for family, tables, seconds in re.findall(r"features: (\w+) \(([\w, ]+)\): .*? in ([\d.]+) s", log_text):
            notes[f"{family} ({tables})"] = float(seconds)
    if stage == "score":
        found = re.search(r"score: probabilities \+ TreeSHAP: done in ([\d.]+) s \(([\d,]+) rows", log_text)
        if found:
            notes["shap_seconds"] = float(found.group(1))
            notes["shap_accounts"] = int(found.group(2).replace(",", ""))
        found = re.search(r"score: features at as-of and as-of - 7 days: done in ([\d.]+) s", log_text)
        if found:
            notes["features_seconds"] = float(found.group(1))
    return notes


# ---------------------------------------------------------------- the floor


def floor_sql(interim: Path) -> str:
    """One pass over every canonical table: rows per (account, day), summed over tables."""
    parts = [
        f"SELECT account_id, CAST({column} AS DATE) AS day FROM read_parquet('{interim / table}.parquet')"
        for table, column in FLOOR_COLUMNS.items()
        if (interim / f"{table}.parquet").exists()
    ]
    union = "\n        UNION ALL ".join(parts)
    return f"SELECT account_id, day, count(*) AS n FROM ({union}) GROUP BY account_id, day"


def time_floor(interim: Path) -> dict:
    """Wall time of the floor query (DuckDB, all cores), its rows in and its account-day rows out."""
    import duckdb

    con = duckdb.connect(":memory:")
    start = time.perf_counter()
    rows_out, rows_in = con.execute(f"SELECT count(*), sum(n) FROM ({floor_sql(interim)})").fetchone()
    seconds = time.perf_counter() - start
    con.close()
    return {"seconds": seconds, "rows_in": int(rows_in or 0), "rows_out": int(rows_out or 0)}


# ---------------------------------------------------------------- one size


def bench_size(accounts: int, root: Path, engine: str = "duckdb", stages: tuple[str, ...] = STAGES) -> dict:
    """Run ``stages`` (default: every stage) for ``accounts`` accounts in ``root``; return that size's report."""
    params = scratch_params(root, accounts)
    env = {**os.environ, "CHURN_PARAMS": str(params), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    runs: list[StageRun] = []
    for stage in stages:
        cmd = churn_command() + COMMANDS.get(stage, [stage])
        if stage == "features":
            cmd += ["--engine", engine]
        log_path = root / f"{stage}.log"
        seconds, rss = run_measured(cmd, env, log_path)
        run = StageRun(stage, round(seconds, 2), round(rss, 1), notes=log_notes(stage, log_path.read_text()))
        runs.append(run)
        _fill_rows(runs, root)
        LOG.info(
            "bench %s accounts: %-9s %7.1f s  peak %7.0f MiB  rows in %s  rows out %s",
            f"{accounts:,}",
            stage,
            run.seconds,
            run.peak_rss_mb,
            _fmt(run.rows_in),
            _fmt(run.rows_out),
        )
    floor = time_floor(root / "interim")
    LOG.info(
        "bench %s accounts: floor     %7.1f s  (%s rows -> %s account-days)",
        f"{accounts:,}",
        floor["seconds"],
        _fmt(floor["rows_in"]),
        _fmt(floor["rows_out"]),
    )
    features = next((r for r in runs if r.stage == "features"), None)
    return {
        "accounts": accounts,
        "engine": engine,
        "stages": [asdict(r) for r in runs],
        "floor": {k: round(v, 3) if isinstance(v, float) else v for k, v in floor.items()},
        "features_over_floor": round(features.seconds / max(floor["seconds"], 1e-9), 1) if features else None,
        "total_seconds": round(sum(r.seconds for r in runs), 1),
        "peak_rss_mb": max(r.peak_rss_mb for r in runs),
    }


def _fill_rows(runs: list[StageRun], root: Path) -> None:
    """(Re)compute rows for every finished stage: demo_data's rows are known once ingest ran."""
    for run in runs:
        if run.rows_in is None and run.rows_out is None or run.stage == "demo_data":
            run.rows_in, run.rows_out = stage_rows(run.stage, root)
        rows = run.rows_in or run.rows_out
        run.rows_per_s = round(rows / max(run.seconds, 1e-9)) if rows else None


def _fmt(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


# ---------------------------------------------------------------- report


def machine() -> dict:
    """What the figures were measured on."""
    mem_gib = None
    try:
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        mem_gib = round(mem_kb / 1024**2, 1)
    except (OSError, StopIteration):
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_gib": mem_gib,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def growth(sizes: list[dict]) -> dict:
    """Per stage, how time and peak memory grow with the book: the log-log slope over the sizes measured.

    A slope of 1 is linear in accounts (10x the accounts, 10x the time); below 1 a fixed cost
    (process start, imports) still weighs; above 1 something grows faster than the data.
    """
    import numpy as np

    out: dict = {}
    stages = dict.fromkeys(s["stage"] for size in sizes for s in size["stages"])
    for stage in stages:
        points = [
            (size["accounts"], run["seconds"], run["peak_rss_mb"])
            for size in sizes
            for run in size["stages"]
            if run["stage"] == stage
        ]
        if len({p[0] for p in points}) < 2:
            continue
        accounts, seconds, peak = (np.log(np.array(v, dtype=float)) for v in zip(*points))
        out[stage] = {
            "accounts": [int(p[0]) for p in points],
            "seconds": [p[1] for p in points],
            "peak_rss_mb": [p[2] for p in points],
            "time_slope": round(float(np.polyfit(accounts, seconds, 1)[0]), 2),
            "memory_slope": round(float(np.polyfit(accounts, peak, 1)[0]), 2),
        }
    return out


def format_growth(report: dict) -> str:
    """The growth section: per stage, seconds and peak MiB per size, and the log-log slopes."""
    rows = report.get("growth") or {}
    if not rows:
        return ""
    lines = [
        "",
        f"{'stage':<13} {'seconds by size':<28} {'peak MiB by size':<24} {'time slope':>10} {'memory slope':>12}",
    ]
    for stage, g in rows.items():
        secs = " / ".join(f"{v:.1f}" for v in g["seconds"])
        peaks = " / ".join(f"{v:.0f}" for v in g["peak_rss_mb"])
        lines.append(f"{stage:<13} {secs:<28} {peaks:<24} {g['time_slope']:>10.2f} {g['memory_slope']:>12.2f}")
    sizes = " / ".join(f"{a:,}" for a in next(iter(rows.values()))["accounts"])
    lines.append(f"(sizes {sizes} accounts; slope = d log(value) / d log(accounts), 1.0 = linear)")
    return "\n".join(lines)


def format_table(report: dict) -> str:
    """The report as a plain-text table, one line per (size, stage)."""
    lines = [
        f"{'accounts':>9} {'stage':<9} {'seconds':>8} {'peak MiB':>9} {'rows in':>12} {'rows out':>12} {'rows/s':>10}"
    ]
    for size in report["sizes"]:
        for s in size["stages"]:
            lines.append(
                f"{size['accounts']:>9,} {s['stage']:<9} {s['seconds']:>8.1f} {s['peak_rss_mb']:>9.0f} "
                f"{_fmt(s['rows_in']):>12} {_fmt(s['rows_out']):>12} {_fmt(s['rows_per_s']):>10}"
            )
        floor = size["floor"]
        lines.append(
            f"{size['accounts']:>9,} {'floor':<9} {floor['seconds']:>8.1f} {'':>9} {_fmt(floor['rows_in']):>12} "
            f"{_fmt(floor['rows_out']):>12}"
        )
        lines.append(
            f"{size['accounts']:>9,} {'TOTAL':<9} {size['total_seconds']:>8.1f} {size['peak_rss_mb']:>9.0f}   "
            f"features / floor = {size['features_over_floor']}x; after the simulator "
            f"{size['total_seconds'] - _seconds(size, 'demo_data'):.1f} s"
        )
    return "\n".join(lines) + format_growth(report)


def _seconds(size: dict, stage: str) -> float:
    return sum(s["seconds"] for s in size["stages"] if s["stage"] == stage)


def main(
    sizes: list[int] | None = None,
    large: bool = False,
    out: Path | None = None,
    scratch: Path | None = None,
    engine: str = "duckdb",
    keep: bool = False,
    stages: tuple[str, ...] = STAGES,
) -> dict:
    """Benchmark every stage at each size; write ``reports/bench.json`` and print the table."""
    sizes = list(sizes or DEFAULT_SIZES)
    if large and LARGE_SIZE not in sizes:
        sizes.append(LARGE_SIZE)
    out = Path(out) if out is not None else settings().paths.reports / "bench.json"
    report = {"machine": machine(), "sizes": []}
    for accounts in sizes:
        root = Path(tempfile.mkdtemp(prefix=f"churn-bench-{accounts}-", dir=scratch))
        try:
            report["sizes"].append(bench_size(accounts, root, engine, stages))
        finally:
            if not keep:
                shutil.rmtree(root, ignore_errors=True)
        report["growth"] = growth(report["sizes"])
        write_json(report, out)  # after each size, so a long run leaves what it measured
    print(format_table(report))
    LOG.info("bench: wrote %s", out)
    return report
