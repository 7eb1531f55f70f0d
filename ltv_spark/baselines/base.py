"""What every baseline offers: fitted on the driver from a bounded sample, applied on the executors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame

PREDICTION_SCHEMA = "user_id string, predicted double, churn_score double"


class Baseline(Protocol):
    """A fitted model: ``predict`` maps rows of its inputs to PREDICTION_SCHEMA columns.

    ``churn_score`` orders users by how likely they are to buy nothing in the horizon: a probability
    where the model has one, otherwise minus the predicted value (recorded in ``churn_from``).
    """

    name: str
    churn_from: str  # "probability" or "value"

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame: ...


def predictions(frame: pd.DataFrame, predicted: np.ndarray, churn_score: np.ndarray) -> pd.DataFrame:
    """PREDICTION_SCHEMA rows for the users of ``frame``."""
    return pd.DataFrame(
        {"user_id": frame["user_id"].to_numpy(), "predicted": predicted, "churn_score": churn_score}
    )


def predict_on_spark(rows: DataFrame, baseline: Baseline) -> DataFrame:
    """Apply ``baseline`` to every row in parallel (the fitted model travels in the closure)."""

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield baseline.predict(batch)

    return rows.mapInPandas(predict, PREDICTION_SCHEMA)


def fit_sample(frame: DataFrame, columns: list[str], max_rows: int, seed: int) -> pd.DataFrame:
    """At most about ``max_rows`` rows of ``frame`` as pandas, for a fit on the driver.

    Fitting a BTYD model or a boosted tree on one machine is the usual practice; the sample bound
    keeps the driver's memory independent of the data size.
    """
    rows = frame.count()
    if rows > max_rows:
        frame = frame.sample(fraction=max_rows / rows, seed=seed)
    return frame.select(*columns).toPandas()
