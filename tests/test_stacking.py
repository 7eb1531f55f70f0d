"""describe stacking: the weight that ranks the validation users best, chosen on Spark, and boosted
trees put into calibrated units first."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltv_spark.calibration import DecileCalibration
from ltv_spark.stacking import CalibratedBaseline, Stack, blend

USERS = 60


def predictions(spark, values, churn):
    rows = [(f"u{i:02d}", float(v), float(c)) for i, (v, c) in enumerate(zip(values, churn, strict=True))]
    return spark.createDataFrame(rows, "user_id string, predicted double, churn_score double")


def it_picks_the_weight_whose_blend_ranks_the_validation_users_best(spark):
    rng = np.random.default_rng(5)
    first, second = rng.gamma(1.0, 10.0, USERS), rng.gamma(1.0, 10.0, USERS)
    churned = rng.random(USERS) < 0.5
    # each model sees half of the truth: only the even blend ranks every user right
    actuals = spark.createDataFrame(
        [(f"u{i:02d}", float(first[i] + second[i]), bool(churned[i])) for i in range(USERS)],
        "user_id string, actual double, churned boolean",
    )
    neural = predictions(spark, first, churned.astype(float))
    trees = predictions(spark, second, 1 - churned.astype(float))
    stack = Stack.fit(neural, trees, actuals)
    assert stack.weight == 0.5 and stack.validation_gini == pytest.approx(1.0)
    blended = stack.predict(neural, trees).toPandas().sort_values("user_id")
    np.testing.assert_allclose(blended["predicted"], (first + second) / 2)
    np.testing.assert_allclose(blended["churn_score"], churned.astype(float))  # the neural model's


def it_keeps_the_neural_model_alone_when_the_trees_add_nothing(spark):
    truth = np.linspace(1.0, 50.0, USERS)
    actuals = spark.createDataFrame(
        [(f"u{i:02d}", float(t), False) for i, t in enumerate(truth)],
        "user_id string, actual double, churned boolean",
    )
    neural = predictions(spark, truth, np.zeros(USERS))
    trees = predictions(spark, truth[::-1], np.zeros(USERS))  # ranks everyone backwards
    assert Stack.fit(neural, trees, actuals).weight == 1.0
    only_trees = blend(neural, trees, 0.0).toPandas().sort_values("user_id")
    np.testing.assert_allclose(only_trees["predicted"], truth[::-1])


class Doubling:
    """A stand-in baseline that predicts twice each user's x."""

    name, churn_from = "doubling", "probability"

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        x = frame["x"].to_numpy(float)
        return pd.DataFrame({"user_id": frame["user_id"], "predicted": 2 * x, "churn_score": 0.5})


def it_calibrates_a_baseline_on_the_validation_users_before_blending(spark):
    x = np.repeat(np.linspace(1.0, 30.0, 10), USERS // 10)  # exact deciles: no sampling noise to shrink
    validation = spark.createDataFrame(
        [(f"u{i:02d}", float(v), float(v)) for i, v in enumerate(x)],
        "user_id string, x double, net_value double",
    )
    calibrated = CalibratedBaseline.fit(Doubling(), validation)
    assert calibrated.name == "doubling" and calibrated.calibration.users == USERS
    frame = pd.DataFrame({"user_id": ["a", "b"], "x": [3.0, 100.0]})
    np.testing.assert_allclose(calibrated.predict(frame)["predicted"], [3.0, 100.0])  # back to x
    assert DecileCalibration() != calibrated.calibration
