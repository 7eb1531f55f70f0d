"""Labels at cutoff T and horizon H: what each user active before T did in [T, T + H)."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ltv_spark.features import events_before, on_days


def user_labels(
    events: DataFrame, cutoff: dt.date, horizon_days: int, users: DataFrame | None = None
) -> DataFrame:
    """user_id, cutoff, horizon_days, net_value (purchases - refunds), bought (0/1), orders_in_horizon,
    next_categories (the categories bought in the window, sorted: the cross-sell label).

    Users are those with any event before T; a user with nothing in the window gets zeros and [].
    ``users`` (user_id, distinct): those users where the caller has them already (the features at
    T have a row for each), so the events before T are not read again.
    """
    start = dt.datetime.combine(cutoff, dt.time())
    active = users if users is not None else events_before(events, cutoff).select("user_id").distinct()
    outcome = window_outcomes(events, start, start + dt.timedelta(days=horizon_days), with_categories=True)
    joined = active.join(outcome, "user_id", "left")
    orders = F.coalesce(F.col("orders"), F.lit(0)).cast("long")
    return joined.select(
        "user_id",
        F.lit(cutoff).alias("cutoff"),
        F.lit(horizon_days).alias("horizon_days"),
        F.coalesce(F.col("net_value"), F.lit(0.0)).alias("net_value"),
        (orders > 0).cast("int").alias("bought"),
        orders.alias("orders_in_horizon"),
        F.coalesce(F.col("categories"), F.array().cast("array<string>")).alias("next_categories"),
    )


def window_outcomes(
    events: DataFrame, start: dt.datetime, end: dt.datetime, with_categories: bool = False
) -> DataFrame:
    """user_id, net_value (purchases - refunds) and orders of the users with events in [start, end);
    ``with_categories``: also ``categories``, the (sorted, distinct) categories they bought."""
    days = on_days(events, first=start.date() - dt.timedelta(days=1), last=end.date())
    window = days.filter((F.col("event_time") >= F.lit(start)) & (F.col("event_time") < F.lit(end)))
    amount = F.col("price") * F.col("quantity")
    purchase = F.col("event_type") == "purchase"
    categories = F.array_sort(F.collect_set(F.when(purchase, F.col("category")))).alias("categories")
    return window.groupBy("user_id").agg(
        (
            F.coalesce(F.sum(F.when(F.col("event_type") == "purchase", amount)), F.lit(0.0))
            - F.coalesce(F.sum(F.when(F.col("event_type") == "refund", amount)), F.lit(0.0))
        ).alias("net_value"),
        F.countDistinct(F.when(purchase, F.col("order_id"))).alias("orders"),
        *([categories] if with_categories else []),
    )
