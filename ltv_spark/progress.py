"""Progress logging for long jobs: each stage logs its start, rows and elapsed time.

Plain text for people, or one JSON object per line for log collectors (``--log-format json``):
a stage's records carry ``stage``, ``event`` (started / done / failed), ``rows`` and ``seconds``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

LOG = logging.getLogger("ltv_spark")


STAGE_FIELDS = ("stage", "event", "rows", "seconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and the stage fields if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: getattr(record, k) for k in STAGE_FIELDS if hasattr(record, k)})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO, fmt: str = "text") -> None:
    """One line per event on stderr (text or JSON); Spark's own JVM logging stays at WARN."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
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
    LOG.info("[%s] started", name, extra={"stage": name, "event": "started"})
    try:
        yield timer
    except Exception:
        failed = {"stage": name, "event": "failed", "seconds": round(timer.elapsed, 3)}
        LOG.error("[%s] failed after %.1fs", name, timer.elapsed, extra=failed)
        raise
    rows = f", {timer.rows:,} rows" if timer.rows is not None else ""
    done = {"stage": name, "event": "done", "rows": timer.rows, "seconds": round(timer.elapsed, 3)}
    LOG.info("[%s] done in %.1fs%s", name, timer.elapsed, rows, extra=done)


class StageClock:
    """Seconds per top-level step of one job, for the table it ends with (``ltv demo``).

    ``with clock.step("train"): ...`` runs the step as a logged ``stage`` and keeps its seconds;
    ``lines()`` is the table: each step in the order run, its share of the whole, and the total.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[StageTimer]:
        with stage(name) as timer:
            yield timer
        self.seconds[name] = self.seconds.get(name, 0.0) + timer.elapsed

    def lines(self) -> list[str]:
        total = sum(self.seconds.values())
        width = max(map(len, [*self.seconds, "total"]))
        rows = [
            f"  {name:<{width}} {seconds:>8.1f} s  {seconds / total if total else 0.0:>6.1%}"
            for name, seconds in self.seconds.items()
        ]
        return [*rows, f"  {'total':<{width}} {total:>8.1f} s"]


def summary(title: str, lines: list[str]) -> str:
    """A boxed, one-screen summary to print at the end of a job."""
    width = max([len(title), *map(len, lines)]) + 2
    bar = "=" * width
    return "\n".join([bar, f" {title}", bar, *[f" {line}" for line in lines], bar])
