"""Model metrics, with the definitions of DESIGN.md (one place for every caller)."""

from __future__ import annotations

import numpy as np


def normalized_gini(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Gini of the gain curve of true value sorted by prediction, over the same sorted by truth.

    As in google/lifetime_value ``metrics.py``: 1 is a perfect ranking, 0 a random one. Ties in
    the prediction are broken by the original order (stable sort), as there.
    """
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.size == 0 or y_true.sum() <= 0:
        return float("nan")

    def gini(order_by: np.ndarray) -> float:
        order = np.argsort(-order_by, kind="stable")
        gain = np.cumsum(y_true[order]) / y_true.sum()
        return float(np.mean(gain) - (y_true.size + 1) / (2 * y_true.size))

    return gini(y_pred) / gini(y_true)
