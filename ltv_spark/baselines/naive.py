"""The naive baseline: each user's next horizon is worth what their last one was.

The net value of the window of the horizon's length just before the cutoff, [T - H, T): what a
shop tries first, before any model. Every model has to beat it to be worth running.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ltv_spark.labels import window_outcomes

NAIVE = "last_window_value"


def last_window_predictions(
    events: DataFrame, users: DataFrame, cutoff: dt.date, horizon_days: int
) -> DataFrame:
    """PREDICTION_SCHEMA rows for ``users``: the net value of [cutoff - horizon, cutoff), 0 without
    events there; churn ranked by that value (no probability: ``churn_from`` is "value")."""
    end = dt.datetime.combine(cutoff, dt.time())
    last = window_outcomes(events, end - dt.timedelta(days=horizon_days), end)
    value = F.coalesce(F.col("net_value"), F.lit(0.0)).cast("double")
    joined = users.select("user_id").join(last, "user_id", "left")
    return joined.select("user_id", value.alias("predicted"), (-value).alias("churn_score"))
