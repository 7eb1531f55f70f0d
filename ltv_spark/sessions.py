"""Events -> sessions: a new session after ``gap_minutes`` of inactivity, one row per session.

Pure DataFrame functions built on window functions. Heavy users and bots are capped per user and
day before the user-ordered window, so one user cannot make a partition run out of memory.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ltv_spark.frames import distinct_count

SESSION_COLUMNS = (
    "session_id",
    "user_id",
    "session_start",
    "session_end",
    "duration_s",
    "n_events",
    "n_views",
    "n_carts",
    "n_purchases",
    "n_refunds",
    "n_orders",
    "revenue",
    "refunded",
    "n_products",
    "n_categories",
    "main_category",
    "session_date",
)


def cap_user_days(events: DataFrame, max_events_per_user_day: int) -> DataFrame:
    """Keep at most ``max_events_per_user_day`` events per (user, day): the earliest ones."""
    day = F.to_date("event_time")
    window = Window.partitionBy("user_id", day).orderBy("event_time", "event_id")
    ranked = events.withColumn("_rank", F.row_number().over(window))
    return ranked.filter(F.col("_rank") <= max_events_per_user_day).drop("_rank")


def sessionize(events: DataFrame, gap_minutes: int = 30) -> DataFrame:
    """One row per session. A gap longer than ``gap_minutes`` starts a new session (equal: same one)."""
    numbered = number_sessions(events, gap_minutes)
    return summarize_sessions(numbered)


def number_sessions(events: DataFrame, gap_minutes: int) -> DataFrame:
    """Events with ``session_start``: the time of their session's first event (same for all of it)."""
    by_time = Window.partitionBy("user_id").orderBy("event_time", "event_id")
    micros = F.unix_micros("event_time")
    gap = micros - F.lag(micros).over(by_time)
    starts = gap.isNull() | (gap > F.lit(gap_minutes * 60 * 1_000_000))
    running = by_time.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    with_flag = events.withColumn("_starts", starts)
    start_time = F.when(F.col("_starts"), F.col("event_time"))
    return with_flag.withColumn("session_start", F.last(start_time, ignorenulls=True).over(running)).drop(
        "_starts"
    )


def summarize_sessions(numbered: DataFrame) -> DataFrame:
    """Aggregate numbered events into SESSION_COLUMNS."""
    per_category = Window.partitionBy("user_id", "session_start", "category")
    ranked = numbered.withColumn("_category_events", F.count(F.lit(1)).over(per_category))
    value = F.col("price") * F.col("quantity")
    sessions = ranked.groupBy("user_id", "session_start").agg(
        F.max("event_time").alias("session_end"),
        F.count(F.lit(1)).alias("n_events"),
        _count_type("view").alias("n_views"),
        _count_type("cart").alias("n_carts"),
        _count_type("purchase").alias("n_purchases"),
        _count_type("refund").alias("n_refunds"),
        distinct_count(F.when(F.col("event_type") == "purchase", F.col("order_id"))).alias("n_orders"),
        F.coalesce(F.sum(F.when(F.col("event_type") == "purchase", value)), F.lit(0.0)).alias("revenue"),
        F.coalesce(F.sum(F.when(F.col("event_type") == "refund", value)), F.lit(0.0)).alias("refunded"),
        distinct_count("product_id").alias("n_products"),
        distinct_count("category").alias("n_categories"),
        # most events; ties go to the first category name
        F.min(F.struct(-F.col("_category_events"), F.col("category")))
        .getField("category")
        .alias("main_category"),
    )
    return sessions.select(
        F.concat_ws("-", "user_id", F.date_format("session_start", "yyyyMMddHHmmssSSS")).alias("session_id"),
        "user_id",
        "session_start",
        "session_end",
        (F.unix_micros("session_end") - F.unix_micros("session_start"))
        .cast("double")
        .__truediv__(1e6)
        .alias("duration_s"),
        *SESSION_COLUMNS[5:16],
        F.to_date("session_start").alias("session_date"),
    )


def _count_type(event_type: str) -> Column:
    return F.sum(F.when(F.col("event_type") == event_type, 1).otherwise(0)).cast("long")
