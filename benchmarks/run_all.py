"""``make bench``: every benchmark in turn, each in its own process, and one dated results page.

Each benchmark prints its own table (both sides measured in the same run, their ratio, the
absolute figures and the machine). This runs them one after the other, streams their output, and
writes it all to ``benchmarks/results/<date>.md`` under the machine's line, with each benchmark's
command and wall time, so the figures of a run stay together and the README can point at them.

    .venv/bin/python -m benchmarks.run_all                       # every benchmark, default sizes
    .venv/bin/python -m benchmarks.run_all bench_training -- --rows 5000
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import machine

BENCHMARKS = ("bench_ingest", "bench_features", "bench_training", "bench_scoring", "bench_engines")
RESULTS = Path(__file__).parent / "results"


@dataclass
class BenchRun:
    name: str
    command: list[str]
    seconds: float
    returncode: int
    output: str

    def section(self) -> str:
        status = "" if self.returncode == 0 else f" — **failed, exit code {self.returncode}**"
        return "\n".join(
            [
                f"## {self.name}{status}",
                "",
                f"`{' '.join(self.command[1:])}` — {self.seconds:.0f} s",
                "",
                "```",
                self.output.rstrip(),
                "```",
                "",
            ]
        )


def run_benchmark(name: str, extra_args: list[str]) -> BenchRun:
    """Run ``benchmarks.<name>``, echoing its output as it comes; keep what it prints (its stderr,
    where Spark, Petastorm and the warnings write, goes to the console only)."""
    command = [sys.executable, "-m", f"benchmarks.{name}", *extra_args]
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        if not _noise(line):
            lines.append(line)
    returncode = process.wait()
    return BenchRun(name, command, time.perf_counter() - started, returncode, "".join(lines))


def results_page(runs: list[BenchRun], day: dt.date) -> str:
    header = [
        f"# Benchmarks, {day}",
        "",
        f"machine: {machine()}",
        "",
        f"code: {_commit()}",
        "",
        "Every figure below was measured in this run; each benchmark runs its peer on the same data.",
        "",
    ]
    return "\n".join([*header, *[run.section() for run in runs]])


def _commit() -> str:
    """The checkout's commit, and whether it had changes not committed: what the figures are of."""
    root = Path(__file__).parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown (not a git checkout)"
    return f"{commit} with changes not committed" if git("status", "--porcelain") else commit


def _noise(line: str) -> bool:
    """Not results: Spark's start-up lines, and Horovod's workers' stderr relayed by its launcher."""
    relayed_stderr = "]<stderr>:" in line
    return relayed_stderr or " WARN " in line or line.startswith(("Setting default log level", "To adjust"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(BENCHMARKS), help="benchmarks to run (default: all)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the dated results page")
    args, extra = parser.parse_known_args()
    extra = [arg for arg in extra if arg != "--"]  # passed on to the one benchmark named
    if extra and len(args.names) != 1:
        parser.error(f"arguments {' '.join(extra)}: name the one benchmark they are for")
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}: expected some of {', '.join(BENCHMARKS)}")
    runs = [run_benchmark(name, extra) for name in args.names]
    args.results.mkdir(parents=True, exist_ok=True)
    page = args.results / f"{dt.date.today()}.md"
    page.write_text(results_page(runs, dt.date.today()))
    print(f"results: {page}")
    return max(run.returncode for run in runs)


if __name__ == "__main__":
    sys.exit(main())
