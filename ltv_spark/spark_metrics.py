"""The metrics of ltv_spark.metrics computed on Spark, for tables too large for one machine.

Every rank metric reduces to sums over per-user average ranks, so the one distributed piece is
``with_average_rank``: distinct values are range-partitioned and counted per partition, and only
one number per (partition, group) reaches the driver to turn local counts into global ranks.
The results equal the array forms exactly (tests compare them); nothing is sampled.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from pyspark import TaskContext
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ltv_spark.frames import union_all
from ltv_spark.metrics import DECILES

PERCENTILES = 100
TRUTH = "_truth"  # the group of the actual values, ranked with the predictions
METRIC_COLUMNS = (
    "users",
    "normalized_gini",
    "spearman",
    "decile_mape",
    "churn_auc",
    "top_decile_share",
    "top_1pct_share",
    "total_ratio",
)


def with_average_rank(frame: DataFrame, value: str, by: Sequence[str], name: str) -> DataFrame:
    """``frame`` plus ``name``: the 1-based average rank of ``value`` (ascending) within ``by``.

    ``by`` names at least one column (the model being scored, for example).
    """
    by = list(by)
    if not by:
        raise ValueError("with_average_rank needs at least one grouping column")
    counts = frame.groupBy(*by, value).agg(F.count(F.lit(1)).alias("_count"))
    ordered = counts.repartitionByRange(*by, value).sortWithinPartitions(*by, value)
    schema = f"{', '.join(f'`{f.name}` {f.dataType.simpleString()}' for f in counts.schema.fields)}, "
    # Read twice (partition totals, then ranks), so materialized once. A local checkpoint, not a
    # persist: nothing is left cached for the caller to release, the blocks go with the frame (a
    # persist stayed cached with its whole plan for the life of the session, about 100 MB of
    # driver heap per ranking in the evaluation tests).
    local = ordered.mapInPandas(_local_counts(by), schema + "_before long, _partition int").localCheckpoint()
    per_partition = local.groupBy("_partition", *by).agg(F.sum("_count").alias("_in_partition"))
    earlier = Window.partitionBy(*by).orderBy("_partition").rowsBetween(Window.unboundedPreceding, -1)
    offsets = per_partition.select(
        "_partition", *by, F.coalesce(F.sum("_in_partition").over(earlier), F.lit(0)).alias("_offset")
    )
    ranks = local.join(F.broadcast(offsets), ["_partition", *by]).select(
        *by, value, (F.col("_offset") + F.col("_before") + (F.col("_count") + 1) / 2.0).alias(name)
    )
    return frame.join(ranks, [*by, value])


def _local_counts(by: list[str]):
    """Within one range partition, sorted: how many rows of the same group come before each value."""

    def count(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        partition = TaskContext.get().partitionId()
        seen: dict[tuple, int] = {}  # rows of each group in this partition's earlier batches
        for batch in batches:
            counts = batch["_count"].to_numpy(dtype=np.int64)
            before = np.empty(len(batch), dtype=np.int64)
            for key, positions in batch.groupby(by, sort=False, dropna=False).indices.items():
                key = key if isinstance(key, tuple) else (key,)
                rows = counts[positions]
                before[positions] = seen.get(key, 0) + np.cumsum(rows) - rows
                seen[key] = seen.get(key, 0) + int(rows.sum())
            yield batch.assign(_before=before, _partition=partition)

    return count


def ranked(scored: DataFrame, by: Sequence[str]) -> DataFrame:
    """scored (by..., user_id, predicted, actual, churn_score, churned) + ranks, n and percentile."""
    by = list(by)
    frame = with_average_rank(scored, "predicted", by, "rank_predicted")
    frame = with_average_rank(frame, "actual", by, "rank_actual")
    frame = with_average_rank(frame, "churn_score", by, "rank_churn")
    sizes = scored.groupBy(*by).agg(F.count(F.lit(1)).alias("n"))
    frame = frame.join(F.broadcast(sizes), by)
    return frame.withColumn(
        "percentile", F.floor((F.col("rank_predicted") - 1) * PERCENTILES / F.col("n")).cast("int")
    )


def model_metrics(ranked_rows: DataFrame, by: Sequence[str]) -> DataFrame:
    """One row per group of ``by`` with METRIC_COLUMNS (see ltv_spark.metrics for each definition)."""
    by = list(by)
    actual, churned = F.col("actual"), F.col("churned").cast("double")
    sums = ranked_rows.groupBy(*by).agg(
        F.count(F.lit(1)).alias("users"),
        F.sum(actual).alias("total_actual"),
        F.sum("predicted").alias("total_predicted"),
        F.sum(actual * F.col("rank_predicted")).alias("weighted_by_prediction"),
        F.sum(actual * F.col("rank_actual")).alias("weighted_by_actual"),
        F.corr("rank_predicted", "rank_actual").alias("spearman"),
        F.sum(churned).alias("churned"),
        F.sum(churned * F.col("rank_churn")).alias("churned_rank_sum"),
        F.sum(F.when(F.col("percentile") >= PERCENTILES - PERCENTILES // DECILES, actual)).alias("top_10"),
        F.sum(F.when(F.col("percentile") >= PERCENTILES - 1, actual)).alias("top_1"),
    )
    n, total = F.col("users"), F.col("total_actual")

    def gini_of(weighted: str):
        return 2 * F.col(weighted) / (n * total) - 1

    positives, negatives = F.col("churned"), n - F.col("churned")
    auc = (F.col("churned_rank_sum") - positives * (positives + 1) / 2) / (positives * negatives)
    defined = total != 0
    metrics = sums.select(
        *by,
        "users",
        F.when(defined, gini_of("weighted_by_prediction") / gini_of("weighted_by_actual")).alias(
            "normalized_gini"
        ),
        F.col("spearman"),
        F.when((positives > 0) & (negatives > 0), auc).alias("churn_auc"),
        F.when(defined, F.col("top_10") / total).alias("top_decile_share"),
        F.when(defined, F.coalesce(F.col("top_1"), F.lit(0.0)) / total).alias("top_1pct_share"),
        F.when(defined, F.col("total_predicted") / total).alias("total_ratio"),
    )
    return metrics.join(decile_mape(ranked_rows, by), by, "left").select(*by, *METRIC_COLUMNS)


def decile_table(ranked_rows: DataFrame, by: Sequence[str]) -> DataFrame:
    """Per group and decile (0 = lowest predictions): users, mean predicted, mean actual."""
    decile = F.floor(F.col("percentile") * DECILES / PERCENTILES).cast("int").alias("decile")
    return ranked_rows.groupBy(*by, decile).agg(
        F.count(F.lit(1)).alias("users"),
        F.mean("predicted").alias("mean_predicted"),
        F.mean("actual").alias("mean_actual"),
    )


def decile_mape(ranked_rows: DataFrame, by: Sequence[str]) -> DataFrame:
    """Mean over deciles with a non-zero mean actual of |mean predicted - mean actual| / |mean actual|."""
    error = F.abs(F.col("mean_predicted") - F.col("mean_actual")) / F.abs(F.col("mean_actual"))
    return (
        decile_table(ranked_rows, by)
        .filter(F.col("mean_actual") != 0)
        .groupBy(*by)
        .agg(F.mean(error).alias("decile_mape"))
    )


def gain_table(ranked_rows: DataFrame, by: Sequence[str]) -> DataFrame:
    """Per group and percentile of prediction (99 = top 1%): users, actual and predicted sums.

    The gain (Lorenz) curve, the deciles and the top segments of the report are cumulative sums of
    these 100 rows per model, so the report never needs the users themselves.
    """
    return ranked_rows.groupBy(*by, "percentile").agg(
        F.count(F.lit(1)).alias("users"),
        F.sum("actual").alias("actual"),
        F.sum("predicted").alias("predicted"),
    )


def churn_table(ranked_rows: DataFrame, by: Sequence[str]) -> DataFrame:
    """Per group and percentile of churn score: users and churned users (the ROC curve's points)."""
    bucket = F.floor((F.col("rank_churn") - 1) * PERCENTILES / F.col("n")).cast("int").alias("percentile")
    return ranked_rows.groupBy(*by, bucket).agg(
        F.count(F.lit(1)).alias("users"), F.sum(F.col("churned").cast("long")).alias("churned")
    )


def normalized_ginis(predictions: dict[str, DataFrame], actuals: DataFrame) -> dict[str, float]:
    """Normalized Gini (ltv_spark.metrics) of each named frame of (user_id, predicted) against
    ``actuals`` (user_id, actual), with one distributed ranking for all of them: the truth's own
    Gini, the normalizer, is ranked as one more group. Only one row per name reaches the driver."""
    frames = [
        frame.select(F.lit(name).alias("_name"), "user_id", "predicted")
        for name, frame in predictions.items()
    ]
    actuals = actuals.select("user_id", "actual")
    truth = actuals.select(F.lit(TRUTH).alias("_name"), "user_id", F.col("actual").alias("predicted"))
    rows = union_all([*frames, truth]).join(actuals, "user_id")
    sums = (
        with_average_rank(rows, "predicted", ["_name"], "_rank")
        .groupBy("_name")
        .agg(
            F.sum(F.col("actual") * F.col("_rank")).alias("weighted"),
            F.sum("actual").alias("total"),
            F.count(F.lit(1)).alias("users"),
        )
        .collect()
    )
    gini = {row["_name"]: gini_from_sums(row["weighted"], row["total"], row["users"]) for row in sums}
    return {name: gini[name] / gini[TRUTH] if gini[TRUTH] else 0.0 for name in predictions}


def gini_from_sums(weighted: float, total: float, users: int) -> float:
    """2 * gain area - 1, the gain area being sum(actual * ascending rank) / (users * sum(actual))."""
    return 2 * weighted / (users * total) - 1 if total else 0.0
