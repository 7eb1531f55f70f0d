"""Ingest benchmark: Spark (ltv ingest) vs DuckDB doing the same contract checks on the same files.

Generates a world of about ``--events`` raw CSV events (dirty rate 1%), then, in the same run:
- Spark local mode: ``ingest_raw`` (file inspection, contract, dedupe, Delta commits);
- DuckDB: the same parse, the same reason rules and dedupe, written to Parquet.
Prints both times, the ratio, events/s per core, the peak memory of the Python driver, its JVM and
DuckDB (in a process of its own), and the machine.

    .venv/bin/python -m benchmarks.bench_ingest --events 1000000 10000000
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import DuckDBRun, machine, peak_rss_mb, run_duckdb
from ltv_spark.config import IngestConfig, load_config
from ltv_spark.contract import RAW_COLUMNS
from ltv_spark.pipeline import ingest_raw
from ltv_spark.session import build_spark
from ltv_spark.tables import DeltaRsStore
from ltv_spark.world import events_frame, write_drops

EVENTS_PER_USER = 100  # about, over the default 540 days

# The dialect is given, not sniffed: at 10^7 events DuckDB's sniffer gives up on the first day's
# small file, whose malformed lines have fewer fields (Spark is told the same: CSV with a header).
DUCKDB_SQL = """
CREATE TABLE raw AS SELECT * FROM read_csv('{glob}', all_varchar=true, header=true, null_padding=true,
    auto_detect=false, delim=',', quote='"', escape='"',
    filename=true, columns={columns});
CREATE TABLE classified AS SELECT *,
  CASE
    -- a line with missing trailing fields is null-padded: every generated event has a price
    WHEN price IS NULL AND quantity IS NULL AND order_id IS NULL THEN 'malformed_line'
    WHEN coalesce(trim(event_id), '') = '' THEN 'missing_event_id'
    WHEN coalesce(trim(user_id), '') = '' THEN 'missing_user'
    WHEN try_cast(event_time AS TIMESTAMPTZ) IS NULL THEN 'unparsable_time'
    WHEN try_cast(event_time AS TIMESTAMPTZ) < TIMESTAMPTZ '2000-01-01 00:00:00+00'
      OR try_cast(event_time AS TIMESTAMPTZ) > now() + INTERVAL 1 DAY THEN 'time_out_of_range'
    WHEN lower(trim(event_type)) NOT IN ('view','cart','purchase','refund') THEN 'unknown_event_type'
    WHEN coalesce(trim(price), '') <> ''
      AND (try_cast(price AS DOUBLE) IS NULL OR try_cast(price AS DOUBLE) < 0) THEN 'bad_price'
    WHEN lower(event_type) IN ('purchase','refund') AND coalesce(try_cast(quantity AS INT), 0) < 1
      THEN 'bad_quantity'
    WHEN lower(event_type) IN ('purchase','refund') AND coalesce(order_id, '') = '' THEN 'missing_order_id'
  END AS reason
FROM raw;
COPY (SELECT * EXCLUDE (rank) FROM (
    SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY event_time, filename) AS rank
    FROM classified WHERE reason IS NULL) WHERE rank = 1)
  TO '{out}/bronze.parquet' (FORMAT PARQUET);
COPY (SELECT reason, filename FROM classified WHERE reason IS NOT NULL)
  TO '{out}/quarantine.parquet' (FORMAT PARQUET);
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, nargs="+", default=[200_000, 1_000_000, 10_000_000])
    args = parser.parse_args()
    config = load_config("local", ["spark.master=local[*]", "spark.driver_memory=4g"])
    spark = build_spark(config)
    spark.sparkContext.setLogLevel("ERROR")
    cores = os.cpu_count() or 1
    print(f"machine: {machine()}")
    print("peak memory: the Python driver (it generates the world too), its JVM (in local mode it runs")
    print("the executors' tasks too), DuckDB's process")
    print(
        f"{'events':>10} {'spark s':>9} {'duckdb s':>9} {'ratio':>6} {'spark ev/s/core':>16} "
        f"{'duckdb ev/s/core':>17} {'python MB':>10} {'jvm MB':>8} {'duckdb MB':>9}"
    )
    for target in args.events:
        work = Path(tempfile.mkdtemp(prefix="ltv-bench-"))
        world = dataclasses.replace(
            config.world, users=max(1, target // EVENTS_PER_USER), dirty_rate=0.01, out=str(work / "raw")
        )
        write_drops(events_frame(spark, world), world, world.out).collect()
        store = DeltaRsStore(spark, str(work / "warehouse"))
        started = time.perf_counter()
        counts = ingest_raw(spark, store, IngestConfig(raw_dir=world.out), now=dt.datetime(2030, 1, 1))
        spark_s = time.perf_counter() - started
        duck = _duckdb(world.out, work / "duck")
        python_mb, jvm_mb = peak_rss_mb()
        duck_s = duck.seconds
        n = counts.input_rows
        print(
            f"{n:>10,} {spark_s:>9.1f} {duck_s:>9.1f} {spark_s / duck_s:>6.1f} {n / spark_s / cores:>16,.0f} "
            f"{n / duck_s / cores:>17,.0f} {python_mb:>10,.0f} {jvm_mb:>8,.0f} {duck.peak_mb:>9,.0f}"
        )
        shutil.rmtree(work, ignore_errors=True)


def _duckdb(raw: str, out: Path) -> DuckDBRun:
    out.mkdir(parents=True)
    columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in RAW_COLUMNS) + "}"
    return run_duckdb(DUCKDB_SQL.format(glob=f"{raw}/*/*.csv", out=out, columns=columns))


if __name__ == "__main__":
    main()
