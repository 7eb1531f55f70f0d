"""Next-category propensity (cross-sell): which categories each user buys in the horizon.

The label is gold.labels.next_categories (the categories bought in [T, T + H)). A model with a
cross-sell head predicts one probability per category of its vocabulary: the categories bought by
most users in its training labels. Its quality, and its baselines' (ltv_spark.baselines.categories),
is measured on Spark over one row per (model, seed, user, category):

- per-category AUC: does the score rank the category's buyers above its non-buyers (rank-based,
  ties averaged, as ltv_spark.spark_metrics computes the churn AUC); ``mean_auc`` averages it over
  the categories with buyers and non-buyers;
- top-k hit rate: the share of the users who bought in some category of the vocabulary whose
  k highest-scored categories hold at least one they bought.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ltv_spark.features import CATEGORY_HISTORY
from ltv_spark.spark_metrics import rank_auc, rank_sums

TOP_K = 3  # categories shown per user (gold.predictions.top_categories) and judged by the hit rate
MIN_CATEGORIES = 2  # fewer categories in the training labels: no cross-sell head (CDNOW has one)
CATEGORY_RUN_COLUMNS = "model string, seed int, user_id string, category string, score double"
PER_CATEGORY = ["users", "buyers", "auc"]
SUMMARY = ["users", "buyers", "categories", "mean_auc", "top_k_hit_rate"]


def category_vocabulary(labels: DataFrame, limit: int) -> list[str]:
    """The (at most ``limit``) categories bought by most users in ``labels``' next_categories, most
    bought first (ties by name); [] when fewer than MIN_CATEGORIES were bought. ``limit`` names reach
    the driver, nothing per user."""
    if limit < MIN_CATEGORIES:
        return []
    bought = labels.select(F.explode("next_categories").alias("category"))
    counts = bought.groupBy("category").agg(F.count(F.lit(1)).alias("buyers"))
    names = [row.category for row in counts.orderBy(F.desc("buyers"), "category").limit(limit).collect()]
    return names if len(names) >= MIN_CATEGORIES else []


def category_targets(categories: Sequence[str]) -> Column:
    """array<float> with 1.0 at position i where next_categories holds ``categories[i]``."""
    return F.array(*[F.array_contains("next_categories", name).cast("float") for name in categories])


def history_vector(categories: Sequence[str]) -> Column:
    """array<float>: the user's category_history (ltv_spark.features) at each of ``categories``, 0
    where the user has no event in it; what the cross-sell head reads."""
    history = F.map_from_entries(CATEGORY_HISTORY)
    return F.array(*[F.coalesce(history[name], F.lit(0.0)).cast("float") for name in categories])


def bought_categories(examples: DataFrame) -> DataFrame:
    """user_id, category: one row per category each user bought in the horizon."""
    return examples.select("user_id", F.explode("next_categories").alias("category"))


def category_metrics(
    runs: DataFrame, bought: DataFrame, by: Sequence[str] = ("model", "seed"), top: int = TOP_K
) -> tuple[DataFrame, DataFrame]:
    """(per category, summary) of ``runs`` (CATEGORY_RUN_COLUMNS: every user scored on every
    category), against ``bought`` (user_id, category).

    Per (by..., category): users, buyers, auc (null where nobody or everybody bought). Per (by...):
    users, buyers (users who bought in some scored category), categories, mean_auc, top_k_hit_rate.
    """
    by = list(by)
    labelled = runs.join(bought.withColumn("bought", F.lit(1)), ["user_id", "category"], "left").withColumn(
        "bought", F.coalesce(F.col("bought"), F.lit(0))
    )
    keys = [*by, "category"]
    sums = rank_sums(labelled, "score", keys, {"bought": F.col("bought")})
    per_category = sums.select(
        *keys,
        F.col("rows").alias("users"),
        F.col("bought").alias("buyers"),
        rank_auc("rows", "bought", "bought_x_rank").alias("auc"),
    )
    summary = per_category.groupBy(*by).agg(
        F.count(F.lit(1)).alias("categories"), F.mean("auc").alias("mean_auc")
    )
    hits = _top_k_hits(labelled, by, top)
    return per_category, hits.join(summary, by).select(*by, *SUMMARY)


def _top_k_hits(labelled: DataFrame, by: list[str], top: int) -> DataFrame:
    """Per group: users, buyers, and the share of buyers with a bought category in their top ``top``
    (ties broken by the category's name, so the result does not depend on the row order)."""
    order = Window.partitionBy(*by, "user_id").orderBy(F.desc("score"), "category")
    ranked = labelled.withColumn("_position", F.row_number().over(order))
    per_user = ranked.groupBy(*by, "user_id").agg(
        F.max("bought").alias("_bought_any"),
        F.max(F.when(F.col("_position") <= top, F.col("bought"))).alias("_hit"),
    )
    return per_user.groupBy(*by).agg(
        F.count(F.lit(1)).alias("users"),
        F.sum("_bought_any").alias("buyers"),
        (F.sum(F.col("_hit") * F.col("_bought_any")) / F.sum("_bought_any")).alias("top_k_hit_rate"),
    )
