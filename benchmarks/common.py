"""Shared by the benchmarks: the machine line, the driver's peak memory, and DuckDB (the peer) run in a
process of its own."""

from __future__ import annotations

import multiprocessing
import os
import platform
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psutil


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line
        ]
        cpu = names[0] if names else cpu
    memory_gib = psutil.virtual_memory().total / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, {platform.platform()}"


def peak_rss_mb() -> tuple[float, float]:
    """Peak resident memory (MB) of this Python driver, and of its JVM (VmHWM).

    In local mode the JVM also runs the executors' tasks, so its peak is driver + executors.
    """
    python_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    jvm_mb = 0.0
    for child in psutil.Process().children(recursive=True):
        if "java" in child.name():
            status = Path(f"/proc/{child.pid}/status").read_text()
            jvm_mb += (
                int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024
            )
    return python_mb, jvm_mb


@dataclass(frozen=True)
class DuckDBRun:
    seconds: float  # the SQL only: connecting and counting are not timed
    rows: int | None  # what ``count_sql`` returned, when given
    peak_mb: float  # the DuckDB process's peak resident memory


def run_duckdb(sql: str, count_sql: str | None = None) -> DuckDBRun:
    """Run the DuckDB peer in its own process on every core, so that its memory is not counted as
    the Python driver's (DuckDB runs inside the process that calls it)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_duckdb_process, (sql, count_sql))


def _duckdb_process(sql: str, count_sql: str | None) -> DuckDBRun:
    connection = duckdb.connect()
    connection.execute(f"SET threads = {os.cpu_count() or 1}")
    connection.execute("SET enable_progress_bar = false")
    started = time.perf_counter()
    connection.execute(sql)
    seconds = time.perf_counter() - started
    rows = connection.execute(count_sql).fetchone()[0] if count_sql else None
    connection.close()
    return DuckDBRun(seconds, rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
