"""Logging set-up and stage timing, shared by every stage."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

LOG = logging.getLogger("churn")


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time, so a swapped or captured stream
    (test runners, notebooks) never leaves the handler holding a closed file."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(verbose: bool = False) -> None:
    """Timestamped lines on stderr; third-party chatter kept at WARNING."""
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    for noisy in ("mlflow", "alembic", "urllib3", "numba", "matplotlib", "shap", "git", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def timed(step: str, rows_in: int | None = None) -> Iterator[dict]:
    """Log the wall time of a step, and rows/s when the caller fills ``rows``."""
    info: dict = {"rows": rows_in}
    start = time.perf_counter()
    LOG.info("%s: started", step)
    yield info
    elapsed = time.perf_counter() - start
    rows = info.get("rows")
    if rows:
        LOG.info("%s: done in %.1f s (%s rows, %.0f rows/s)", step, elapsed, f"{rows:,}", rows / max(elapsed, 1e-9))
    else:
        LOG.info("%s: done in %.1f s", step, elapsed)
    info["seconds"] = elapsed


class Progress:
    """Rows processed and time elapsed for a long step, logged at most every ``every`` seconds.

    At 100,000 accounts a table can take minutes: a line every few seconds tells the user it moves.
    """

    def __init__(self, step: str, every: float = 10.0, logger: logging.Logger = LOG) -> None:
        self.step, self.every, self.log = step, every, logger
        self.start = self.last = time.perf_counter()

    def update(self, rows: int) -> None:
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self.log.info("%s: %s rows read, %.0f s elapsed", self.step, f"{rows:,}", now - self.start)

    def done(self, rows: int) -> None:
        elapsed = time.perf_counter() - self.start
        self.log.info("%s: %s rows in %.1f s (%.0f rows/s)", self.step, f"{rows:,}", elapsed, rows / max(elapsed, 1e-9))
