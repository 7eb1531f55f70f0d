"""Point-in-time user features at a cutoff T: RFM plus behaviour, from events strictly before T.

Every function here filters ``event_time < cutoff`` itself, so no caller can leak the future into
a feature by passing the whole event table (the leakage test changes every event at or after T).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ltv_spark.frames import days_between, distinct_count
from ltv_spark.sessions import SESSION_COLUMNS, cap_user_days, sessionize

FEATURE_COLUMNS = (
    "days_since_last_purchase",
    "orders",
    "repeat_orders",
    "monetary",
    "avg_order_value",
    "tenure_days",
    "refund_rate",
    "sessions_7d",
    "sessions_30d",
    "sessions_90d",
    "orders_7d",
    "orders_30d",
    "orders_90d",
    "cart_abandonment",
    "view_to_purchase",
    "category_diversity",
    "days_since_last_session",
    "sessions_total",
    "session_trend",
    "has_purchased",
)
CATEGORY_HISTORY = "category_history"  # each category's share of the user's events (category_history)
HISTORY_TYPE = "array<struct<category: string, share: float>>"
CATEGORY_EVENT_WEIGHTS = {"purchase": 1.0, "cart": 0.3, "view": 0.1}  # an event's weight in that share


def events_before(events: DataFrame, cutoff: dt.date) -> DataFrame:
    """The only view of the events a cutoff-T computation may use."""
    before = F.col("event_time") < F.lit(dt.datetime.combine(cutoff, dt.time()))
    return on_days(events, last=cutoff).filter(before)


def on_days(events: DataFrame, first: dt.date | None = None, last: dt.date | None = None) -> DataFrame:
    """``events`` of the days ``first`` to ``last`` (either open), by ``event_date``: bronze's
    partition column, so Spark leaves the other days' files unopened (a cutoff early in the data
    reads a fraction of them; bronze.events holds a file per day). Callers still filter the exact
    times: a time window [a, b) lies inside the days a.date() - 1 to b.date() however far Python's
    local zone, in which a datetime literal is read, is from the session's. Events without the
    column are returned whole."""
    if "event_date" not in events.columns:
        return events
    days = F.lit(True)
    if first is not None:
        days &= F.col("event_date") >= F.lit(first)
    if last is not None:
        days &= F.col("event_date") <= F.lit(last)
    return events.filter(days)


def sessions_before(
    events: DataFrame, cutoff: dt.date, gap_minutes: int, max_events_per_user_day: int
) -> DataFrame:
    """Sessions built from the events before the cutoff only (a session spanning T is cut at T)."""
    capped = cap_user_days(events_before(events, cutoff), max_events_per_user_day)
    return sessionize(capped, gap_minutes)


def sessions_from_silver(
    sessions: DataFrame,
    events: DataFrame,
    cutoff: dt.date,
    gap_minutes: int,
    max_events_per_user_day: int,
) -> DataFrame:
    """``sessions_before(events, cutoff, ...)``, read from ``silver.sessions`` instead of re-sessionized.

    ``sessions`` are all of the events' sessions (silver.sessions, built with the same gap and cap).
    A session that ended before T is the same as sessionizing only the events before T would make
    it: a boundary depends only on the gap to the previous event, and the cap counts whole days,
    which end at T (a cutoff is midnight). The one session per user that spans T is re-cut: its
    events before T, capped over the whole days it covers, sessionized again. So only the few users
    active across midnight of T are re-sessionized, not every event before T.
    """
    t = F.lit(dt.datetime.combine(cutoff, dt.time()))
    started = sessions.filter((F.col("session_date") < F.lit(cutoff)) & (F.col("session_start") < t))
    ended = started.filter(F.col("session_end") < t).select(*SESSION_COLUMNS)
    spanning = started.filter(F.col("session_end") >= t).select(
        "user_id", F.col("session_start").alias("_cut_from")
    )
    first_day = spanning.agg(F.min(F.to_date("_cut_from"))).first()[0]  # one value
    if first_day is None:
        return ended
    days = on_days(events_before(events, cutoff), first=first_day)
    covered = days.join(F.broadcast(spanning), "user_id").filter(
        F.col("event_date") >= F.to_date("_cut_from")
    )
    capped = cap_user_days(covered, max_events_per_user_day)
    recut = sessionize(capped.filter(F.col("event_time") >= F.col("_cut_from")), gap_minutes)
    return ended.unionByName(recut.select(*SESSION_COLUMNS))


def user_features(sessions: DataFrame, events: DataFrame, cutoff: dt.date) -> DataFrame:
    """One row per user active before ``cutoff``: the cutoff, FEATURE_COLUMNS, then CATEGORY_HISTORY.

    ``sessions`` must come from ``sessions_before(events, cutoff, ...)`` or ``sessions_from_silver``.
    """
    t = F.lit(dt.datetime.combine(cutoff, dt.time()))
    past = events_before(events, cutoff)
    session_stats = sessions.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("sessions_total"),
        *[_within(F.col("session_start"), t, days).alias(f"sessions_{days}d") for days in (7, 30, 90)],
        _between(F.col("session_start"), t, 30, 120).alias("sessions_prior_90d"),
        days_between(t, F.max("session_end")).alias("days_since_last_session"),
        F.sum(F.when((F.col("n_carts") > 0) & (F.col("n_purchases") == 0), 1).otherwise(0)).alias(
            "_abandoned"
        ),
        F.sum(F.when(F.col("n_carts") > 0, 1).otherwise(0)).alias("_with_cart"),
    )
    purchase_time = F.when(F.col("event_type") == "purchase", F.col("event_time"))
    amount = F.col("price") * F.col("quantity")
    order_id = F.when(F.col("event_type") == "purchase", F.col("order_id"))
    event_stats = past.groupBy("user_id").agg(
        days_between(t, F.min("event_time")).alias("tenure_days"),
        days_between(t, F.max(purchase_time)).alias("_since_purchase"),
        distinct_count(order_id).alias("orders"),
        *[
            distinct_count(F.when(_recent(t, days), order_id)).alias(f"orders_{days}d")
            for days in (7, 30, 90)
        ],
        F.coalesce(F.sum(F.when(F.col("event_type") == "purchase", amount)), F.lit(0.0)).alias("_gross"),
        F.coalesce(F.sum(F.when(F.col("event_type") == "refund", amount)), F.lit(0.0)).alias("_refunded"),
        F.sum(F.when(F.col("event_type") == "view", 1).otherwise(0)).alias("_views"),
        F.sum(F.when(F.col("event_type") == "purchase", 1).otherwise(0)).alias("_purchase_events"),
        distinct_count("category").alias("category_diversity"),
    )
    joined = event_stats.join(session_stats, "user_id", "left").join(
        category_history(past), "user_id", "left"
    )
    return joined.select(
        "user_id",
        F.lit(cutoff).alias("cutoff"),
        F.coalesce(F.col("_since_purchase"), F.col("tenure_days")).alias("days_since_last_purchase"),
        F.col("orders").cast("long").alias("orders"),
        F.greatest(F.col("orders") - 1, F.lit(0)).cast("long").alias("repeat_orders"),
        (F.col("_gross") - F.col("_refunded")).alias("monetary"),
        _ratio(F.col("_gross"), F.col("orders")).alias("avg_order_value"),
        "tenure_days",
        _ratio(F.col("_refunded"), F.col("_gross")).alias("refund_rate"),
        *[
            F.coalesce(F.col(f"sessions_{d}d"), F.lit(0)).cast("long").alias(f"sessions_{d}d")
            for d in (7, 30, 90)
        ],
        *[F.col(f"orders_{d}d").cast("long").alias(f"orders_{d}d") for d in (7, 30, 90)],
        _ratio(F.col("_abandoned"), F.col("_with_cart")).alias("cart_abandonment"),
        _ratio(F.col("_purchase_events"), F.col("_views")).alias("view_to_purchase"),
        F.col("category_diversity").cast("long").alias("category_diversity"),
        F.coalesce(F.col("days_since_last_session"), F.col("tenure_days")).alias("days_since_last_session"),
        F.coalesce(F.col("sessions_total"), F.lit(0)).cast("long").alias("sessions_total"),
        # sessions in the last 30 days over the monthly rate of the 90 days before, smoothed by 1
        (
            (F.coalesce(F.col("sessions_30d"), F.lit(0)) + 1)
            / (F.coalesce(F.col("sessions_prior_90d"), F.lit(0)) / 3 + 1)
        ).alias("session_trend"),
        (F.col("orders") > 0).cast("int").alias("has_purchased"),
        F.coalesce(F.col(CATEGORY_HISTORY), F.array().cast(HISTORY_TYPE)).alias(CATEGORY_HISTORY),
    )


def category_strength(events: DataFrame) -> DataFrame:
    """user_id, category, strength: the user's events in each category, weighted by
    CATEGORY_EVENT_WEIGHTS (a purchase counts ten views). Callers pass the events they may use."""
    weight = F.lit(0.0)
    for event_type, value in CATEGORY_EVENT_WEIGHTS.items():
        weight = F.when(F.col("event_type") == event_type, F.lit(value)).otherwise(weight)
    known = events.filter(
        F.col("category").isNotNull() & F.col("event_type").isin(list(CATEGORY_EVENT_WEIGHTS))
    )
    return known.groupBy("user_id", "category").agg(F.sum(weight).alias("strength"))


def category_history(past: DataFrame) -> DataFrame:
    """user_id, category_history: each category's share of the user's weighted events in ``past``,
    as (category, share) pairs sorted by category (what the cross-sell head reads beside the
    sessions: which categories the user engages with). An array, not a map: rows stay comparable.
    The shares are taken of the user's own array, not over a window: one shuffle, not two."""
    pairs = F.array_sort(F.collect_list(F.struct("category", "strength")))
    per_user = category_strength(past).groupBy("user_id").agg(pairs.alias("_pairs"))
    total = F.aggregate("_pairs", F.lit(0.0).cast("double"), lambda sum_, pair: sum_ + pair["strength"])
    shares = F.transform(
        "_pairs",
        lambda pair: F.struct(
            pair["category"].alias("category"), (pair["strength"] / total).cast("float").alias("share")
        ),
    )
    return per_user.select("user_id", shares.alias(CATEGORY_HISTORY))


def _recent(t: Column, days: int) -> Column:
    return F.col("event_time") >= t - F.expr(f"INTERVAL {days} DAYS")


def _within(time: Column, t: Column, days: int) -> Column:
    return F.sum(F.when(time >= t - F.expr(f"INTERVAL {days} DAYS"), 1).otherwise(0))


def _between(time: Column, t: Column, newer_days: int, older_days: int) -> Column:
    inside = (time < t - F.expr(f"INTERVAL {newer_days} DAYS")) & (
        time >= t - F.expr(f"INTERVAL {older_days} DAYS")
    )
    return F.sum(F.when(inside, 1).otherwise(0))


def _ratio(numerator: Column, denominator: Column) -> Column:
    return F.when(denominator > 0, numerator / denominator).otherwise(F.lit(0.0)).cast("double")
