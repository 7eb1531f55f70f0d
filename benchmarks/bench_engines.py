"""Table engines benchmark: delta-rs vs Delta's JVM connector on the same data in the same run.

Generates a world of about ``--events`` raw CSV events once, then for each engine, on its own
warehouse: ingest (raw files -> bronze.events), sessions (bronze -> silver.sessions), and the
scoring MERGE (one row per user into gold.predictions, then the same MERGE again with every value
changed: the second is the one a daily refresh pays). Prints the seconds of each stage per engine,
the ratio JVM / delta-rs, and the machine.

    .venv/bin/python -m benchmarks.bench_engines --events 200000 1000000
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks.common import machine
from ltv_spark.config import IngestConfig, load_config
from ltv_spark.pipeline import EVENTS, build_sessions, ingest_raw
from ltv_spark.session import build_spark
from ltv_spark.tables import DeltaRsStore, SparkDeltaStore, TableStore
from ltv_spark.world import events_frame, write_drops

EVENTS_PER_USER = 100  # about, over the default 540 days
ENGINES: dict[str, Callable[[SparkSession, str], TableStore]] = {
    "delta-rs": DeltaRsStore,
    "spark-delta": SparkDeltaStore,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, nargs="+", default=[200_000, 1_000_000])
    args = parser.parse_args()
    config = load_config(
        "local", ["spark.master=local[*]", "spark.driver_memory=4g", "spark.jvm_connector=true"]
    )
    spark = build_spark(config)
    spark.sparkContext.setLogLevel("ERROR")
    print(f"machine: {machine()}")
    print(f"{'events':>10} {'stage':<14} {'delta-rs s':>11} {'spark-delta s':>14} {'ratio':>6}")
    for target in args.events:
        work = Path(tempfile.mkdtemp(prefix="ltv-bench-engines-"))
        world = dataclasses.replace(
            config.world, users=max(1, target // EVENTS_PER_USER), dirty_rate=0.0, out=str(work / "raw")
        )
        write_drops(events_frame(spark, world), world, world.out).collect()
        seconds = {
            name: _stages(spark, make(spark, str(work / name)), world.out, config)
            for name, make in ENGINES.items()
        }
        for stage in seconds["delta-rs"]:
            rs, jvm = seconds["delta-rs"][stage], seconds["spark-delta"][stage]
            print(f"{target:>10,} {stage:<14} {rs:>11.1f} {jvm:>14.1f} {jvm / rs:>6.2f}")
        shutil.rmtree(work, ignore_errors=True)


def _stages(spark: SparkSession, store: TableStore, raw_dir: str, config) -> dict[str, float]:
    timed = {}
    started = time.perf_counter()
    ingest_raw(spark, store, IngestConfig(raw_dir=raw_dir), now=dt.datetime(2030, 1, 1))
    timed["ingest"] = time.perf_counter() - started
    started = time.perf_counter()
    build_sessions(spark, store, config.features)
    timed["sessions"] = time.perf_counter() - started
    for label, bump in (("merge (new)", 0.0), ("merge (again)", 1.0)):
        started = time.perf_counter()
        store.merge(
            _predictions(store, bump), "gold.predictions", keys=["user_id", "as_of"], partition_by=["as_of"]
        )
        timed[label] = time.perf_counter() - started
    return timed


def _predictions(store: TableStore, bump: float) -> DataFrame:
    """One prediction row per user, shaped like the scoring job's output."""
    users = store.read(EVENTS).select("user_id").distinct()
    return users.select(
        "user_id",
        F.lit(dt.date(2030, 1, 1)).alias("as_of"),
        (F.abs(F.hash("user_id")) % 1000 / 10.0 + bump).alias("expected_value"),
        (F.abs(F.hash("user_id")) % 100 / 100.0).alias("p_buy"),
    )


if __name__ == "__main__":
    main()
