"""Progress logging for long jobs: each stage logs its start, rows and elapsed time."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

LOG = logging.getLogger("ltv_spark")


def configure_logging(level: int = logging.INFO) -> None:
    """One line per event on stderr; Spark's own JVM logging stays at WARN."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("py4j").setLevel(logging.WARNING)


class StageTimer:
    """What one stage reports when it ends."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: int | None = None
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


@contextmanager
def stage(name: str) -> Iterator[StageTimer]:
    """``with stage("ingest") as s: ...; s.rows = n`` logs start, then rows and seconds at the end."""
    timer = StageTimer(name)
    LOG.info("[%s] started", name)
    try:
        yield timer
    except Exception:
        LOG.error("[%s] failed after %.1fs", name, timer.elapsed)
        raise
    rows = f", {timer.rows:,} rows" if timer.rows is not None else ""
    LOG.info("[%s] done in %.1fs%s", name, timer.elapsed, rows)


def summary(title: str, lines: list[str]) -> str:
    """A boxed, one-screen summary to print at the end of a job."""
    width = max([len(title), *map(len, lines)]) + 2
    bar = "=" * width
    return "\n".join([bar, f" {title}", bar, *[f" {line}" for line in lines], bar])
