"""Metrics: the array forms against hand-computed values, the Spark forms against the array forms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from scipy.stats import rankdata

from ltv_spark import metrics
from ltv_spark.spark_metrics import (
    METRIC_COLUMNS,
    decile_table,
    model_metrics,
    normalized_ginis,
    rank_sums,
    ranked,
    with_average_rank,
)


def it_is_one_for_the_perfect_order_and_negative_for_the_reversed_one():
    truth = [0.0, 1.0, 3.0]
    assert metrics.normalized_gini(truth, [0.1, 0.2, 0.3]) == pytest.approx(1.0)
    # reversed: gain curve [0, 1/4, 1] -> area 5/12, Gini -1/6; truth's Gini 5/6
    assert metrics.normalized_gini(truth, [0.3, 0.2, 0.1]) == pytest.approx(-0.2)


def it_gives_tied_predictions_their_average_position():
    # the two orders of the tie give gain areas 11/12 and 10/12: the mean 10.5/12 -> Gini 0.75
    assert metrics.gini([1.0, 0.0, 3.0], [1.0, 1.0, 2.0]) == pytest.approx(0.75)
    assert metrics.normalized_gini([1.0, 0.0, 3.0], [1.0, 1.0, 2.0]) == pytest.approx(0.75 / (5 / 6))


def it_is_undefined_when_nobody_has_value():
    assert math.isnan(metrics.normalized_gini([0.0, 0.0, 0.0], [1.0, 2.0, 3.0]))


def it_computes_spearman_with_ties_and_nan_for_constant_input():
    assert metrics.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    # ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4): Pearson of ranks = 4.5 / sqrt(4.5 * 5)
    assert metrics.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert math.isnan(metrics.spearman([0, 0, 0], [1, 2, 3]))


def it_computes_decile_mape_leaving_out_deciles_without_value():
    truth = np.arange(1.0, 11.0)
    assert metrics.decile_mape(truth, truth * 1.5) == pytest.approx(0.5)
    truth[0] = 0.0  # the lowest decile has no value: 9 deciles of error 0.5 remain
    assert metrics.decile_mape(truth, np.arange(1.0, 11.0) * 1.5) == pytest.approx(0.5)
    assert math.isnan(metrics.decile_mape(np.zeros(10), np.arange(10.0)))


def it_keeps_tied_predictions_in_one_decile():
    assert metrics.deciles(np.array([1.0] * 4 + list(range(2, 8)))).tolist() == [
        1, 1, 1, 1, 4, 5, 6, 7, 8, 9,
    ]  # fmt: skip


def it_computes_churn_auc_with_tied_scores():
    # pairs (churned, stayed): 0.9 vs 0.9 -> 1/2, 0.9 vs 0.1 -> 1, 0.2 vs 0.9 -> 0, 0.2 vs 0.1 -> 1
    assert metrics.churn_auc([1, 0, 1, 0], [0.9, 0.9, 0.2, 0.1]) == pytest.approx(2.5 / 4)
    assert math.isnan(metrics.churn_auc([1, 1], [0.2, 0.3]))


def it_computes_top_shares_and_the_total_ratio():
    truth = np.array([1.0] * 9 + [9.0])
    assert metrics.top_share(truth, np.arange(10.0), 0.1) == pytest.approx(0.5)
    assert metrics.total_ratio(truth, truth * 2) == pytest.approx(2.0)
    assert math.isnan(metrics.top_share(np.zeros(10), np.arange(10.0)))
    assert math.isnan(metrics.total_ratio(np.zeros(3), np.ones(3)))


def _reference(group: pd.DataFrame) -> dict[str, float]:
    actual, predicted = group["actual"].to_numpy(), group["predicted"].to_numpy()
    return {
        "users": len(group),
        "normalized_gini": metrics.normalized_gini(actual, predicted),
        "spearman": metrics.spearman(actual, predicted),
        "decile_mape": metrics.decile_mape(actual, predicted),
        "churn_auc": metrics.churn_auc(group["churned"], group["churn_score"]),
        "top_decile_share": metrics.top_share(actual, predicted, 0.1),
        "top_1pct_share": metrics.top_share(actual, predicted, 0.01),
        "total_ratio": metrics.total_ratio(actual, predicted),
    }


def _scored(seed: int, users: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    actual = np.where(rng.random(users) < 0.6, 0.0, np.round(rng.lognormal(3, 1, users), 1))
    predicted = np.round(actual * rng.uniform(0.2, 2.0, users) + rng.uniform(0, 20, users))  # ties
    return pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(users)],
            "predicted": predicted,
            "actual": actual,
            "churn_score": np.round(rng.random(users), 1),  # many ties
            "churned": actual == 0,
        }
    )


def it_ranks_like_scipy_across_partitions(spark):
    frame = pd.DataFrame({"g": ["a"] * 7 + ["b"] * 5, "v": [3, 1, 3, 2, 9, 3, 1, 5, 5, 5, 0, 7]})
    spark.conf.set("spark.sql.shuffle.partitions", "5")
    try:
        rows = with_average_rank(spark.createDataFrame(frame), "v", ["g"], "r").toPandas()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "2")
    for group, expected in frame.groupby("g"):
        got = rows[rows.g == group].sort_values("v")["r"].to_numpy()
        want = np.sort(rankdata(expected["v"], method="average"))
        np.testing.assert_allclose(got, want)


def it_sums_weights_times_ranks_as_the_rows_ranked_one_by_one(spark):
    frame = pd.DataFrame(
        {"g": ["a"] * 7 + ["b"] * 5, "v": [3, 1, 3, 2, 9, 3, 1, 5, 5, 5, 0, 7], "w": np.arange(12.0)}
    )
    spark.conf.set("spark.sql.shuffle.partitions", "5")
    try:
        got = rank_sums(spark.createDataFrame(frame), "v", ["g"], {"w": F.col("w")}).toPandas()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "2")
    got = got.set_index("g")
    for group, rows in frame.groupby("g"):
        ranks = rankdata(rows["v"], method="average")
        assert got.loc[group, "rows"] == len(rows)
        assert got.loc[group, "w"] == pytest.approx(rows["w"].sum())
        assert got.loc[group, "w_x_rank"] == pytest.approx(float((rows["w"] * ranks).sum()))


def it_refuses_a_weight_named_like_a_ranked_column(spark):
    frame = spark.createDataFrame(pd.DataFrame({"g": ["a"], "v": [1.0]}))
    with pytest.raises(ValueError, match="name them apart"):
        rank_sums(frame, "v", ["g"], {"v": F.col("v")})


def it_equals_the_array_forms_for_every_group(spark):
    models = {"transformer": _scored(1, 800), "baseline": _scored(2, 333)}
    frame = pd.concat([m.assign(model=name) for name, m in models.items()], ignore_index=True)
    spark.conf.set("spark.sql.shuffle.partitions", "7")
    try:
        scored = spark.createDataFrame(frame).repartition(6)
        rows = ranked(scored, ["model"])
        got = {r["model"]: r.asDict() for r in model_metrics(rows, ["model"]).collect()}
        deciles = decile_table(rows, ["model"]).toPandas()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "2")
    for name, group in models.items():
        want = _reference(group)
        for column in METRIC_COLUMNS:
            assert got[name][column] == pytest.approx(want[column], rel=1e-9), (name, column)
        expected_deciles = group.groupby(metrics.deciles(group["predicted"].to_numpy())).size()
        counts = deciles[deciles.model == name].set_index("decile")["users"].sort_index()
        assert counts.to_dict() == expected_deciles.to_dict()


def it_gives_each_named_prediction_the_gini_of_the_array_form(spark):
    scored = _scored(4, 500)
    frame = spark.createDataFrame(scored).repartition(3)
    reversed_order = frame.select("user_id", (-F.col("predicted")).alias("predicted"))
    got = normalized_ginis({"as is": frame, "reversed": reversed_order}, frame)
    actual, predicted = scored["actual"].to_numpy(), scored["predicted"].to_numpy()
    assert got["as is"] == pytest.approx(metrics.normalized_gini(actual, predicted), rel=1e-9)
    assert got["reversed"] == pytest.approx(metrics.normalized_gini(actual, -predicted), rel=1e-9)
    assert got["as is"] > 0.2 > got["reversed"]


def it_leaves_value_metrics_undefined_when_nobody_has_value(spark):
    frame = _scored(3, 50).assign(actual=0.0, churned=True, model="m")
    got = model_metrics(ranked(spark.createDataFrame(frame), ["model"]), ["model"]).first()
    assert got["normalized_gini"] is None and got["decile_mape"] is None
    assert got["churn_auc"] is None and got["total_ratio"] is None
