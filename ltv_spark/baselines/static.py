"""Baselines on the static features alone: gradient boosting and linear regression (scikit-learn)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ltv_spark.baselines.base import predictions


def _signed_log1p(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))


@dataclass
class GradientBoostingBaseline:
    """Histogram gradient boosting: a regressor for the value, a classifier for "bought"."""

    features: list[str]
    value: HistGradientBoostingRegressor
    bought: HistGradientBoostingClassifier
    name: str = "gradient_boosting"
    churn_from: str = "probability"

    @classmethod
    def fit(cls, train: pd.DataFrame, features: list[str], seed: int) -> GradientBoostingBaseline:
        """``train`` holds ``features``, ``net_value`` and ``bought`` (one row per user and cutoff)."""
        x = train[features].to_numpy(float)
        value = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=seed)
        bought = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=seed)
        value.fit(x, train["net_value"].to_numpy(float))
        bought.fit(x, train["bought"].to_numpy(bool))
        return cls(features, value, bought)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        x = frame[self.features].to_numpy(float)
        stays = self.bought.predict_proba(x)[:, list(self.bought.classes_).index(True)]
        return predictions(frame, self.value.predict(x), 1 - stays)


@dataclass
class LinearBaseline:
    """Least squares on signed-log, standardized features (the seeds' simplest model).

    It has no probability of buying: users are ranked for churn by their predicted value.
    """

    features: list[str]
    model: Pipeline
    name: str = "linear_regression"
    churn_from: str = "value"

    @classmethod
    def fit(cls, train: pd.DataFrame, features: list[str]) -> LinearBaseline:
        model = make_pipeline(FunctionTransformer(_signed_log1p), StandardScaler(), LinearRegression())
        model.fit(train[features].to_numpy(float), train["net_value"].to_numpy(float))
        return cls(features, model)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        predicted = self.model.predict(frame[self.features].to_numpy(float))
        return predictions(frame, predicted, -predicted)
