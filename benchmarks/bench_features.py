"""Sessions + point-in-time features: Spark local mode vs the same plan as DuckDB SQL, same Parquet.

Generates the world once at the largest size as bronze-typed Parquet; each smaller size is the
first users of it. For each size, in the same run: Spark (``sessions_before`` + ``user_features``,
written to Parquet) and DuckDB (the same window-function plan and the same feature definitions,
written to Parquet). Prints both times, the ratio, events/s per core, and peak memory.

Simulating users costs about 2 ms each here (1.3 million users for 10^8 events: 45 minutes on 2
cores), so beyond ``--simulate-up-to`` events the simulated users are copied under new ids (user
``u00000007`` of copy 3 becomes ``u{7 + 3 * users:08d}``, with its event and order ids): each copy
is a user with the same history, so sessions and features do the same work per user.

    .venv/bin/python -m benchmarks.bench_features --events 1000000 10000000
    .venv/bin/python -m benchmarks.bench_features --events 10000000 100000000   # the scale check
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

from pyspark.sql import functions as F

from benchmarks.common import machine, peak_rss_mb, run_duckdb
from ltv_spark.config import load_config
from ltv_spark.contract import classify_events, to_bronze
from ltv_spark.features import sessions_before, user_features
from ltv_spark.session import build_spark
from ltv_spark.world import events_frame

EVENTS_PER_USER = 76  # about, before the cutoff, over the default 540 days
GAP_MINUTES = 30
CAP = 2000

DUCKDB_FEATURES = """
COPY (
WITH ev AS (
  SELECT * FROM read_parquet('{path}/*.parquet')
  WHERE user_id < '{last_user}' AND event_time < TIMESTAMP '{t}'
), capped AS (
  SELECT * FROM ev QUALIFY row_number() OVER (
    PARTITION BY user_id, CAST(event_time AS DATE) ORDER BY event_time, event_id) <= {cap}
), flagged AS (
  SELECT *, CASE WHEN lag(event_time) OVER w IS NULL
              OR epoch_us(event_time) - epoch_us(lag(event_time) OVER w) > {gap_us}
              THEN 1 ELSE 0 END AS starts
  FROM capped WINDOW w AS (PARTITION BY user_id ORDER BY event_time, event_id)
), numbered AS (
  SELECT *, sum(starts) OVER (PARTITION BY user_id ORDER BY event_time, event_id
                              ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session_no
  FROM flagged
), sessions AS (
  SELECT user_id, session_no, min(event_time) AS session_start, max(event_time) AS session_end,
         count(*) FILTER (WHERE event_type = 'cart') AS n_carts,
         count(*) FILTER (WHERE event_type = 'purchase') AS n_purchases
  FROM numbered GROUP BY user_id, session_no
), session_stats AS (
  SELECT user_id, count(*) AS sessions_total,
    count(*) FILTER (WHERE session_start >= TIMESTAMP '{t}' - INTERVAL 7 DAY) AS sessions_7d,
    count(*) FILTER (WHERE session_start >= TIMESTAMP '{t}' - INTERVAL 30 DAY) AS sessions_30d,
    count(*) FILTER (WHERE session_start >= TIMESTAMP '{t}' - INTERVAL 90 DAY) AS sessions_90d,
    count(*) FILTER (WHERE session_start < TIMESTAMP '{t}' - INTERVAL 30 DAY
                       AND session_start >= TIMESTAMP '{t}' - INTERVAL 120 DAY) AS sessions_prior_90d,
    (epoch_us(TIMESTAMP '{t}') - epoch_us(max(session_end))) / 86400e6 AS days_since_last_session,
    count(*) FILTER (WHERE n_carts > 0 AND n_purchases = 0) AS abandoned,
    count(*) FILTER (WHERE n_carts > 0) AS with_cart
  FROM sessions GROUP BY user_id
), event_stats AS (
  SELECT user_id,
    (epoch_us(TIMESTAMP '{t}') - epoch_us(min(event_time))) / 86400e6 AS tenure_days,
    (epoch_us(TIMESTAMP '{t}') - epoch_us(max(event_time) FILTER (WHERE event_type = 'purchase'))) / 86400e6
      AS since_purchase,
    count(DISTINCT order_id) FILTER (WHERE event_type = 'purchase') AS orders,
    count(DISTINCT order_id) FILTER (WHERE event_type = 'purchase'
                                     AND event_time >= TIMESTAMP '{t}' - INTERVAL 7 DAY) AS orders_7d,
    count(DISTINCT order_id) FILTER (WHERE event_type = 'purchase'
                                     AND event_time >= TIMESTAMP '{t}' - INTERVAL 30 DAY) AS orders_30d,
    count(DISTINCT order_id) FILTER (WHERE event_type = 'purchase'
                                     AND event_time >= TIMESTAMP '{t}' - INTERVAL 90 DAY) AS orders_90d,
    coalesce(sum(price * quantity) FILTER (WHERE event_type = 'purchase'), 0) AS gross,
    coalesce(sum(price * quantity) FILTER (WHERE event_type = 'refund'), 0) AS refunded,
    count(*) FILTER (WHERE event_type = 'view') AS views,
    count(*) FILTER (WHERE event_type = 'purchase') AS purchase_events,
    count(DISTINCT category) AS category_diversity
  FROM ev GROUP BY user_id
)
SELECT e.user_id, DATE '{t}' AS cutoff,
  coalesce(since_purchase, tenure_days) AS days_since_last_purchase, orders,
  greatest(orders - 1, 0) AS repeat_orders,
  gross - refunded AS monetary, CASE WHEN orders > 0 THEN gross / orders ELSE 0 END AS avg_order_value,
  tenure_days, CASE WHEN gross > 0 THEN refunded / gross ELSE 0 END AS refund_rate,
  coalesce(sessions_7d, 0) AS sessions_7d, coalesce(sessions_30d, 0) AS sessions_30d,
  coalesce(sessions_90d, 0) AS sessions_90d, orders_7d, orders_30d, orders_90d,
  CASE WHEN with_cart > 0 THEN abandoned / with_cart ELSE 0 END AS cart_abandonment,
  CASE WHEN views > 0 THEN purchase_events / views ELSE 0 END AS view_to_purchase, category_diversity,
  coalesce(days_since_last_session, tenure_days) AS days_since_last_session,
  coalesce(sessions_total, 0) AS sessions_total,
  (coalesce(sessions_30d, 0) + 1) / (coalesce(sessions_prior_90d, 0) / 3 + 1) AS session_trend,
  CAST(orders > 0 AS INT) AS has_purchased
FROM event_stats e LEFT JOIN session_stats s USING (user_id)
) TO '{out}' (FORMAT PARQUET)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument(
        "--simulate-up-to", type=int, default=10_000_000, help="events simulated; copies beyond (see above)"
    )
    args = parser.parse_args()
    config = load_config("local", ["spark.master=local[*]", "spark.driver_memory=6g"])
    spark = build_spark(config)
    spark.sparkContext.setLogLevel("ERROR")
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="ltv-bench-features-"))
    largest_users = math.ceil(max(args.events) / EVENTS_PER_USER)
    simulated_users = min(largest_users, math.ceil(args.simulate_up_to / EVENTS_PER_USER))
    copies = math.ceil(largest_users / simulated_users)
    world = dataclasses.replace(config.world, users=simulated_users, dirty_rate=0.0, users_per_partition=5000)
    cutoff = world.start_date + dt.timedelta(days=world.days - 60)
    started = time.perf_counter()
    _write_bronze_parquet(spark, world, work / "simulated")
    _write_copies(spark, work / "simulated", simulated_users, copies, work / "events")
    print(f"machine: {machine()}")
    print(
        f"generated {simulated_users:,} users x {copies} copies in {time.perf_counter() - started:.0f}s; "
        f"cutoff {cutoff}"
    )
    print(
        "peak memory: the Python driver, its JVM (in local mode it also runs the executors' tasks), DuckDB's"
    )
    print(
        f"{'events':>11} {'spark s':>8} {'duckdb s':>9} {'ratio':>6} {'spark ev/s/core':>16} "
        f"{'duckdb ev/s/core':>17} {'users':>8} {'python MB':>10} {'jvm MB':>8} {'duckdb MB':>9}"
    )
    for target in sorted(args.events):
        last_user = f"u{math.ceil(target / EVENTS_PER_USER):08d}"
        events = spark.read.parquet(str(work / "events")).filter(F.col("user_id") < last_user)
        n = events.filter(F.col("event_time") < F.lit(dt.datetime.combine(cutoff, dt.time()))).count()
        spark_s, users = _spark(events, cutoff, work / f"spark-{target}")
        duck_s, duck_users, duck_mb = _duckdb(
            work / "events", last_user, cutoff, work / f"duck-{target}.parquet"
        )
        if users != duck_users:
            raise RuntimeError(f"Spark found {users} users, DuckDB {duck_users}: the plans differ")
        python_mb, jvm_mb = peak_rss_mb()
        rates = f"{n / spark_s / cores:>16,.0f} {n / duck_s / cores:>17,.0f}"
        memory = f"{python_mb:>10,.0f} {jvm_mb:>8,.0f} {duck_mb:>9,.0f}"
        print(
            f"{n:>11,} {spark_s:>8.1f} {duck_s:>9.1f} {spark_s / duck_s:>6.1f} {rates} {users:>8,} {memory}"
        )
    shutil.rmtree(work, ignore_errors=True)


def _write_bronze_parquet(spark, world, out: Path) -> None:
    """The world's events typed by the event contract, as ingest writes them to bronze."""
    raw = events_frame(spark, world).withColumn("source_file", F.lit("generated"))
    classified = classify_events(raw, dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1))
    bronze = to_bronze(classified.filter(F.col("reason").isNull()), dt.datetime(2030, 1, 1), 0)
    bronze.drop("event_date").write.mode("overwrite").parquet(str(out))


def _write_copies(spark, simulated: Path, users: int, copies: int, out: Path) -> None:
    """The simulated users, then ``copies - 1`` copies of them under new user, event and order ids."""
    for copy in range(copies):
        frame = spark.read.parquet(str(simulated))
        if copy:
            frame = _renumbered(frame, copy * users)
        frame.write.mode("append").parquet(str(out))


def _renumbered(events, offset: int):
    """The events with every user's index moved by ``offset`` (``u00000007`` -> ``u{7 + offset:08d}``),
    in the user, event and order ids alike."""
    index = F.substring("user_id", 2, 8).cast("long") + F.lit(offset)
    new_uid = F.format_string("u%08d", index)
    return events.withColumns(
        {
            "event_id": F.concat(new_uid, F.expr("substring(event_id, 10)")),
            "order_id": F.when(
                F.col("order_id").isNotNull(),
                F.concat(F.lit("o"), F.substring(new_uid, 2, 8), F.expr("substring(order_id, 10)")),
            ),
            "user_id": new_uid,
        }
    )


def _spark(events, cutoff: dt.date, out: Path) -> tuple[float, int]:
    started = time.perf_counter()
    sessions = sessions_before(events, cutoff, GAP_MINUTES, CAP)
    user_features(sessions, events, cutoff).write.parquet(str(out))
    elapsed = time.perf_counter() - started
    return elapsed, events.sparkSession.read.parquet(str(out)).count()


def _duckdb(events: Path, last_user: str, cutoff: dt.date, out: Path) -> tuple[float, int, float]:
    """Run the DuckDB peer in its own process, so that its memory is not counted as the driver's."""
    sql = DUCKDB_FEATURES.format(
        path=events,
        last_user=last_user,
        t=cutoff.isoformat(),
        cap=CAP,
        gap_us=GAP_MINUTES * 60 * 1_000_000,
        out=out,
    )
    run = run_duckdb(sql, f"SELECT count(*) FROM read_parquet('{out}')")
    return run.seconds, run.rows, run.peak_mb


if __name__ == "__main__":
    main()
