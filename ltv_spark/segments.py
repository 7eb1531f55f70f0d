"""Segment quality: is the model as good for every kind of customer? Each evaluated user falls in
one segment of each kind below (all observable at the cutoff); every model is scored per segment
(Gini, calibration, churn AUC), and a segment whose total predicted value is off its true total by
more than ``CALIBRATION_TOLERANCE`` is flagged.

Kinds: tenure band, acquisition cohort (quarter of the first event), main category (most bought,
else most viewed), past value decile (net value before the cutoff, among past buyers) and whether
the user had a session in the last 90 days.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ltv_spark.spark_metrics import normalized_gini, rank_auc, rank_sums, total_ratio

SEGMENT_KEYS = ["segment_kind", "segment"]
SEGMENT_METRICS = ["users", "normalized_gini", "total_ratio", "churn_auc"]
SEGMENT_KINDS = ("tenure", "cohort", "main_category", "past_value_decile", "sessions_90d")
CALIBRATION_TOLERANCE = 0.10  # |predicted / true - 1| above this flags a segment
TENURE_BANDS = ((30, "<30d"), (90, "30-90d"), (180, "90-180d"), (365, "180-365d"))  # upper bound, name
NO_CATEGORY, NO_PURCHASE = "none", "no purchase"


def user_segments(features: DataFrame, events: DataFrame) -> DataFrame:
    """One row per (user, kind): user_id, segment_kind, segment, from each user's features at the
    cutoff (``user_features``: cutoff, tenure_days, monetary, orders, sessions_90d) and their events
    before it (the main category)."""
    categories = main_categories(events, features.select("user_id", "cutoff"))
    users = features.join(categories, "user_id", "left")
    kinds = {
        "tenure": _tenure_band(F.col("tenure_days")),
        "cohort": _quarter(F.date_sub(F.col("cutoff"), F.col("tenure_days").cast("int"))),
        "main_category": F.coalesce(F.col("main_category"), F.lit(NO_CATEGORY)),
        "past_value_decile": _past_value_decile(users),
        "sessions_90d": F.when(F.col("sessions_90d") > 0, "with sessions").otherwise("without sessions"),
    }
    wide = users.select("user_id", *[value.alias(kind) for kind, value in kinds.items()])
    pairs = [F.struct(F.lit(kind).alias("segment_kind"), F.col(kind).alias("segment")) for kind in kinds]
    long = wide.select("user_id", F.explode(F.array(*pairs)).alias("s"))
    return long.select("user_id", "s.segment_kind", "s.segment")


def main_categories(events: DataFrame, users: DataFrame) -> DataFrame:
    """user_id, main_category: the category a user bought most often before their cutoff, or viewed
    most often where they bought nothing (ties: the first name). ``users``: user_id, cutoff."""
    before = events.join(users, "user_id").filter(
        (F.col("event_time") < F.col("cutoff").cast("timestamp")) & F.col("category").isNotNull()
    )
    counts = before.groupBy("user_id", "category").agg(
        F.sum((F.col("event_type") == "purchase").cast("int")).alias("purchases"),
        F.count(F.lit(1)).alias("events"),
    )
    order = Window.partitionBy("user_id").orderBy(F.desc("purchases"), F.desc("events"), "category")
    first = counts.withColumn("_rank", F.row_number().over(order)).filter(F.col("_rank") == 1)
    return first.select("user_id", F.col("category").alias("main_category"))


def segment_metrics(scored: DataFrame, segments: DataFrame, by: Sequence[str]) -> DataFrame:
    """Per group of ``by`` (model, seed) and segment: SEGMENT_METRICS, and ``flagged`` where the
    calibration (total_ratio) is off by more than CALIBRATION_TOLERANCE. ``scored``: the evaluation's
    scored users (SCORED_COLUMNS).

    Every metric here is a sum of weights times one rank (``rank_sums``), so the rows are never
    joined back to their ranks: 12.5 s instead of 23.7 s for a million rows like the demo's (11 runs
    x 5 kinds x 19,085 users), the same metrics to 1e-14."""
    keys = [*by, *SEGMENT_KEYS]
    # Materialized once: the three rankings read it, and the segments are computed from every
    # event before the cutoff.
    rows = scored.join(segments, "user_id").localCheckpoint()
    actual, churned = F.col("actual"), F.col("churned").cast("double")
    value = {"true_value": actual}  # weights are named apart from the ranked columns
    by_prediction = rank_sums(rows, "predicted", keys, {**value, "predicted_value": F.col("predicted")})
    by_actual = rank_sums(rows, "actual", keys, value)
    by_churn = rank_sums(rows, "churn_score", keys, {"churned": churned})
    sums = by_prediction.select(
        *keys,
        F.col("rows").alias("users"),
        F.col("true_value").alias("total_actual"),
        F.col("predicted_value").alias("total_predicted"),
        F.col("true_value_x_rank").alias("weighted_by_prediction"),
    )
    sums = sums.join(by_actual.select(*keys, F.col("true_value_x_rank").alias("weighted_by_actual")), keys)
    sums = sums.join(
        by_churn.select(*keys, "churned", F.col("churned_x_rank").alias("churned_rank_sum")), keys
    )
    metrics = sums.select(
        *keys,
        "users",
        normalized_gini("users", "total_actual", "weighted_by_prediction", "weighted_by_actual").alias(
            "normalized_gini"
        ),
        total_ratio("total_predicted", "total_actual").alias("total_ratio"),
        rank_auc("users", "churned", "churned_rank_sum").alias("churn_auc"),
    )
    off = F.abs(F.col("total_ratio") - 1) > CALIBRATION_TOLERANCE
    return metrics.withColumn("flagged", F.coalesce(off, F.lit(False)))


def _tenure_band(days: Column) -> Column:
    band = F.lit(f">={TENURE_BANDS[-1][0]}d")
    for upper, name in reversed(TENURE_BANDS):
        band = F.when(days < upper, name).otherwise(band)
    return band


def _quarter(day: Column) -> Column:
    return F.concat(F.year(day).cast("string"), F.lit("-Q"), F.quarter(day).cast("string"))


def _past_value_decile(users: DataFrame) -> Column:
    """'value d1'..'value d10' (10 = highest net value before the cutoff) among users who bought;
    NO_PURCHASE for the others. Deciles by rank over the past buyers."""
    buyers = Window.partitionBy((F.col("orders") > 0).alias("_bought")).orderBy("monetary")
    decile = F.concat(F.lit("value d"), F.ntile(10).over(buyers).cast("string"))
    return F.when(F.col("orders") > 0, decile).otherwise(NO_PURCHASE)
