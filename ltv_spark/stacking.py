"""A neural model stacked with boosted trees: w * neural + (1 - w) * trees, per user.

Both predictions are in calibrated currency units (ltv_spark.calibration, each fitted on the
validation cutoff), so their weighted mean is a prediction of the same quantity and stays
calibrated. The weight is the one of WEIGHTS whose blend ranks the validation users best
(normalized Gini, computed on Spark); the evaluation cutoff never enters the choice. The churn
score is the neural model's: the blend is of values.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ltv_spark.baselines.base import Baseline, predict_on_spark
from ltv_spark.calibration import DecileCalibration
from ltv_spark.spark_metrics import normalized_ginis

WEIGHTS = tuple(k / 10 for k in range(11))  # on the neural model; 1.0: the neural model alone
TIE_DIGITS = 9  # Ginis equal to this many digits are a tie


@dataclass
class CalibratedBaseline:
    """A fitted baseline whose predicted value goes through a decile calibration."""

    baseline: Baseline
    calibration: DecileCalibration

    @property
    def name(self) -> str:
        return self.baseline.name

    @property
    def churn_from(self) -> str:
        return self.baseline.churn_from

    @classmethod
    def fit(cls, baseline: Baseline, validation: DataFrame) -> CalibratedBaseline:
        """The calibration of ``baseline``'s values on ``validation`` (inputs and net_value)."""
        scored = predict_on_spark(validation, baseline).join(
            validation.select("user_id", F.col("net_value").alias("actual")), "user_id"
        )
        return cls(baseline, DecileCalibration.fit(scored))

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        predicted = self.baseline.predict(frame)
        return predicted.assign(predicted=self.calibration.apply(predicted["predicted"].to_numpy()))


@dataclass(frozen=True)
class Stack:
    """The blend's weight on the neural model, and the validation Gini it was chosen by."""

    weight: float
    validation_gini: float

    @classmethod
    def fit(cls, neural: DataFrame, trees: DataFrame, actuals: DataFrame) -> Stack:
        """neural, trees: (user_id, predicted, churn_score) on the validation users; actuals:
        (user_id, actual, ...). Ties go to the larger weight (the neural model)."""
        pair = _paired(neural, trees).persist(StorageLevel.MEMORY_AND_DISK)  # scored once, blended 11 times
        try:
            blends = {str(weight): _weighted(pair, weight) for weight in WEIGHTS}
            gini = normalized_ginis(blends, actuals)
        finally:
            pair.unpersist()
        # ties (to the rounding of the sums, which depends on partitioning) go to the neural model
        best = max(WEIGHTS, key=lambda weight: (round(gini[str(weight)], TIE_DIGITS), weight))
        return cls(best, gini[str(best)])

    def predict(self, neural: DataFrame, trees: DataFrame) -> DataFrame:
        return blend(neural, trees, self.weight)


def blend(neural: DataFrame, trees: DataFrame, weight: float) -> DataFrame:
    """user_id, predicted = weight * neural + (1 - weight) * trees, churn_score from ``neural``."""
    return _weighted(_paired(neural, trees), weight)


def _paired(neural: DataFrame, trees: DataFrame) -> DataFrame:
    """user_id, both predictions side by side, and the neural model's churn score."""
    return (
        neural.alias("n")
        .join(trees.alias("t"), "user_id")
        .select(
            "user_id",
            F.col("n.predicted").alias("neural"),
            F.col("t.predicted").alias("trees"),
            F.col("n.churn_score").alias("churn_score"),
        )
    )


def _weighted(pair: DataFrame, weight: float) -> DataFrame:
    value = F.lit(weight) * F.col("neural") + F.lit(1.0 - weight) * F.col("trees")
    return pair.select("user_id", value.alias("predicted"), "churn_score")
