"""What the cross-sell head is measured against: three ways to rank each user's next categories
from the events before the cutoff, each returning user_id, category, score for every user and
every category of the vocabulary (the shape ltv_spark.cross_sell ranks).

- popularity: the categories bought by most users, the same order for everyone (its AUC is 0.5 by
  construction: one score per category);
- past_categories: the user's own events per category, weighted as the Transformer's category
  history weighs them (ltv_spark.features.category_strength): a shop's "buy again";
- als: Spark MLlib's implicit-feedback ALS on user x category (purchases, carts and views as
  confidence), the co-purchase baseline: categories bought by users with similar histories.

Every score has the popularity share added at a tiny weight, so ties (a user with no history)
fall back to the popular categories.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.ml.recommendation import ALS
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ltv_spark.features import category_strength, events_before

POPULARITY, PAST_CATEGORIES, CO_PURCHASE = "popularity", "past_categories", "als"
TIE_BREAK = 1e-6  # x the popularity share: orders the ties of a personal score


@dataclass(frozen=True)
class AlsSettings:
    """Implicit ALS (Hu, Koren & Volinsky 2008) as MLlib runs it; fixed, not tuned on any cutoff."""

    rank: int = 8
    max_iter: int = 10
    reg_param: float = 0.1
    alpha: float = 10.0


def category_baselines(
    events: DataFrame,
    users: DataFrame,
    cutoff: dt.date,
    categories: Sequence[str],
    seed: int,
    als: AlsSettings | None = None,
) -> dict[str, DataFrame]:
    """Every baseline's scores (user_id, category, score) for ``users`` (user_id) at ``cutoff``."""
    history = _history(events, cutoff, categories)
    popular = popularity(history, categories)
    grid = users.select("user_id").crossJoin(F.broadcast(popular))
    strength = category_strength(history).localCheckpoint()  # read by two baselines, ALS many times
    return {
        POPULARITY: grid.select("user_id", "category", F.col("share").alias("score")),
        PAST_CATEGORIES: _personal(grid, strength),
        CO_PURCHASE: _personal(grid, als_scores(strength, als or AlsSettings(), seed)),
    }


def popularity(history: DataFrame, categories: Sequence[str]) -> DataFrame:
    """category, share: the share of past buyers who bought in each category (0 for one nobody
    bought). ``history``: user_id, category, event_type, before the cutoff."""
    purchases = history.filter(F.col("event_type") == "purchase")
    buyers = purchases.select("user_id").distinct().count()
    per_category = purchases.groupBy("category").agg(F.countDistinct("user_id").alias("_buyers"))
    every = history.sparkSession.createDataFrame([(name,) for name in categories], "category string")
    share = F.coalesce(F.col("_buyers"), F.lit(0)) / F.lit(max(buyers, 1))
    return every.join(per_category, "category", "left").select("category", share.alias("share"))


def als_scores(strength: DataFrame, settings: AlsSettings, seed: int) -> DataFrame:
    """user_id, category, strength: the ALS preference (user factors . category factors) of every
    user with history for every category with history; fitted on every user's history
    (``strength``: ``category_strength`` of it).

    Users and categories go in as many blocks as the session has cores, not MLlib's default of
    ten each: ten blocks of a few thousand users and about twenty categories made the fit mostly
    task overhead here (8.8 s against 4.6 s on the demo world, 2 cores). The blocks seed the
    initial factors, so the scores differ slightly with the number of cores."""
    blocks = strength.sparkSession.sparkContext.defaultParallelism
    user_ids = _dense_ids(strength.select("user_id").distinct(), "user_id", "_user")  # all who have history
    category_ids = _dense_ids(strength.select("category").distinct(), "category", "_item")
    ratings = strength.join(user_ids, "user_id").join(F.broadcast(category_ids), "category")
    model = ALS(
        rank=settings.rank,
        maxIter=settings.max_iter,
        regParam=settings.reg_param,
        alpha=settings.alpha,
        implicitPrefs=True,
        userCol="_user",
        itemCol="_item",
        ratingCol="strength",
        seed=seed,
        numUserBlocks=blocks,
        numItemBlocks=blocks,
    ).fit(ratings)
    factors = model.userFactors.withColumnRenamed("features", "_u").crossJoin(
        F.broadcast(model.itemFactors.withColumnRenamed("id", "_item_id").withColumnRenamed("features", "_i"))
    )
    scored = factors.select(F.col("id").alias("_user"), F.col("_item_id").alias("_item"), _dot("_u", "_i"))
    return (
        scored.join(user_ids, "_user")
        .join(F.broadcast(category_ids), "_item")
        .select("user_id", "category", "strength")
    )


def _history(events: DataFrame, cutoff: dt.date, categories: Sequence[str]) -> DataFrame:
    """user_id, category, event_type of the events in ``categories`` before ``cutoff``."""
    history = events_before(events, cutoff).filter(F.col("category").isin(list(categories)))
    return history.select("user_id", "category", "event_type")


def _personal(grid: DataFrame, strength: DataFrame) -> DataFrame:
    """The grid (user_id, category, share) scored by ``strength`` (0 where none), ties by share."""
    joined = grid.join(strength, ["user_id", "category"], "left")
    score = F.coalesce(F.col("strength"), F.lit(0.0)) + TIE_BREAK * F.col("share")
    return joined.select("user_id", "category", score.alias("score"))


def _dense_ids(frame: DataFrame, column: str, name: str) -> DataFrame:
    """``column`` and ``name``: 0..n-1, as ALS wants integer ids (zipWithIndex: no driver collect)."""
    indexed = frame.rdd.map(lambda row: row[0]).zipWithIndex()
    return frame.sparkSession.createDataFrame(indexed, f"{column} string, {name} long").withColumn(
        name, F.col(name).cast("int")
    )


def _dot(left: str, right: str) -> Column:
    products = F.zip_with(F.col(left), F.col(right), lambda x, y: x * y)
    return F.aggregate(products, F.lit(0.0), lambda total, x: total + x).alias("strength")
