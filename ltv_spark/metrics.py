"""Model metrics on arrays, with the definitions of DESIGN.md (one place for every caller).

These are the reference forms: they run on one machine and are what the tests check by hand.
ltv_spark.spark_metrics computes the same numbers on Spark for tables that do not fit.

Ties in a prediction are given their average rank, so a metric never depends on row order:
``rank`` below is the 1-based average rank, ascending. Every metric is NaN where it is undefined
(no rows, a total true value of 0, a churn label with one class).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import roc_auc_score

DECILES = 10


def gain_area(y_true: np.ndarray, order_by: np.ndarray) -> float:
    """Mean of the cumulative share of true value, users taken by ``order_by`` from the top.

    With descending rank d_i (1 = highest), the mean of the gain curve is
    sum_i y_i (n - d_i + 1) / (n * sum y); tied users share their average position.
    """
    y_true, order_by = _floats(y_true), _floats(order_by)
    total = y_true.sum()
    if y_true.size == 0 or total == 0:
        return float("nan")
    ascending = rankdata(order_by, method="average")  # n - d_i + 1 for descending rank d_i
    return float((y_true * ascending).sum() / (y_true.size * total))


def gini(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Raw Gini of the gain curve, as google/lifetime_value's ``gini_from_gain``: 2 * area - 1."""
    return 2 * gain_area(y_true, y_pred) - 1


def normalized_gini(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Gini of the gain curve sorted by prediction over the Gini of the curve sorted by truth.

    1 is the perfect ranking, 0 a random one.
    """
    return gini(y_true, y_pred) / gini(y_true, y_true)


def spearman(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    y_true, y_pred = _floats(y_true), _floats(y_pred)
    if y_true.size < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return float("nan")
    return float(spearmanr(y_true, y_pred).statistic)


def deciles(y_pred: np.ndarray) -> np.ndarray:
    """0 (lowest predictions) .. 9: equal-size groups by rank; tied predictions stay in one group."""
    y_pred = _floats(y_pred)
    rank = rankdata(y_pred, method="average")
    return np.minimum(np.floor((rank - 1) * DECILES / y_pred.size), DECILES - 1).astype(int)


def decile_mape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over deciles of |mean predicted - mean true| / mean true (deciles with mean true 0 left out)."""
    y_true, y_pred = _floats(y_true), _floats(y_pred)
    if y_true.size == 0:
        return float("nan")
    group = deciles(y_pred)
    errors = []
    for decile in np.unique(group):
        true_mean = y_true[group == decile].mean()
        if true_mean != 0:
            errors.append(abs(y_pred[group == decile].mean() - true_mean) / abs(true_mean))
    return float(np.mean(errors)) if errors else float("nan")


def churn_auc(churned: np.ndarray, churn_score: np.ndarray) -> float:
    """ROC AUC of the churn score against "no purchase in the horizon"; NaN with one class only."""
    churned = np.asarray(churned, dtype=bool)
    if churned.all() or not churned.any():
        return float("nan")
    return float(roc_auc_score(churned, _floats(churn_score)))


def top_share(y_true: np.ndarray, y_pred: np.ndarray, fraction: float = 0.1) -> float:
    """Share of the total true value held by the top ``fraction`` of users by prediction.

    A user belongs to the top when floor((rank - 1) / n * 100) >= 100 * (1 - fraction), the same
    percentile cut the Spark form uses.
    """
    y_true, y_pred = _floats(y_true), _floats(y_pred)
    total = y_true.sum()
    if y_true.size == 0 or total == 0:
        return float("nan")
    percentile = np.floor((rankdata(y_pred, method="average") - 1) * 100 / y_pred.size)
    return float(y_true[percentile >= round(100 * (1 - fraction))].sum() / total)


def total_ratio(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Total predicted value over total true value (1 = unbiased in total)."""
    total = _floats(y_true).sum()
    return float(_floats(y_pred).sum() / total) if total != 0 else float("nan")


def _floats(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=float)
