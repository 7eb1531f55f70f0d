"""Shared by the benchmarks: the machine line and the driver's peak memory."""

from __future__ import annotations

import os
import platform
import resource
from pathlib import Path

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
