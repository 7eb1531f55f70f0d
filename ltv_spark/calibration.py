"""Decile calibration of a model's expected value, fitted on the validation cutoff.

The ZILN mean p * exp(mu + sigma^2 / 2) ranks users well but its level swings with sigma: on the
demo world three seeds of one Transformer predicted 0.97x, 1.24x and 1.02x the true total of the
evaluation cutoff. The calibration maps each raw prediction onto what users with that prediction
were actually worth on a cutoff the model never trained on: users are put in deciles of the raw
prediction, each decile gives one knot (mean raw prediction, mean actual value), and a value is
interpolated linearly between knots, from (0, 0) below the first and in proportion above the last.

A decile's mean actual value is itself an estimate, and on a small validation set (CDNOW: about
1,150 customers per fold) the heavy tail of spend makes it a noisy one: there the calibration
learned the noise and moved the total from 0.99 to 0.905 of the truth (so CDNOW's evaluation now
fits it on the training and validation customers together: ltv_spark.pipeline.evaluation). Each
knot is shrunk toward the raw prediction by its sampling variance (empirical Bayes, as
James-Stein): with d_k the decile's relative miscalibration actual_k / predicted_k - 1 and v_k
its sampling variance var_k / (n_k predicted_k^2), the knot becomes
predicted_k (1 + d_k tau^2 / (tau^2 + v_k)), tau^2 the spread of the true miscalibrations. A
well-measured decile keeps its correction, a noisy one keeps nearer to the raw prediction.

tau^2 is the Paule-Mandel estimate (as in meta-analysis): the tau^2 >= 0 at which
sum_k d_k^2 / (tau^2 + v_k) equals K, the number of deciles (each term's expectation is 1). Each
decile counts by its precision. The plain moment estimate mean(d_k^2 - v_k), used until
2026-12-07, counted them alike, and the lowest decile, whose relative variance is the largest
(its mean prediction is near 0), could outweigh the rest: for one weekly-plan Transformer of the
demo world it came out 0 (v_1 = 0.17 against d_k^2 of 0.05-0.09 in the top deciles), every
knot stayed raw, and the model predicted 1.27x the validation cutoff's own total (README).

The map is strictly increasing, so the ranking (Gini, Spearman, AUC) is exactly the raw one: where
the deciles' actual means do not increase, they are pooled (pool adjacent violators, as isotonic
regression) and then given the minimum slope MIN_SLOPE. Only nine cut points and the ten knots
reach the driver.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy.optimize import brentq
from sklearn.isotonic import IsotonicRegression

from ltv_spark.artifacts import read_json, write_json
from ltv_spark.metrics import DECILES
from ltv_spark.storage import Location

CALIBRATION_FILE = "calibration.json"
QUANTILE_ERROR = 1e-4  # relative rank error of the decile cuts
MIN_SLOPE = 1e-6  # between knots whose actual means were pooled: keeps the map strictly increasing
METHOD = "decile knots, Paule-Mandel shrinkage"  # a saved calibration fitted otherwise is refitted


@dataclass(frozen=True)
class DecileCalibration:
    """Knots of the map raw expected value -> calibrated expected value, ascending in both."""

    predicted: tuple[float, ...] = ()  # mean raw prediction per decile of the validation users
    actual: tuple[float, ...] = ()  # their mean actual value, pooled to be non-decreasing
    users: int = 0  # validation users the knots come from (0: the identity map)
    method: str = ""  # how the knots were fitted (METHOD); "" before it was recorded

    @classmethod
    def fit(cls, scored: DataFrame) -> DecileCalibration:
        """scored (predicted, actual), one row per validation user -> the knots of its deciles."""
        scored = scored.select("predicted", "actual").persist(StorageLevel.MEMORY_AND_DISK)
        try:  # read twice: the decile cuts, then the knots
            knots = _decile_means(scored)
        finally:
            scored.unpersist()
        if not knots:
            return cls()
        predicted = [row["predicted"] for row in knots]
        users = [row["users"] for row in knots]
        shrunk = shrunk_toward_raw(
            np.array(predicted),
            np.array([row["actual"] for row in knots]),
            np.array([row["variance"] or 0.0 for row in knots]),  # null for a decile of one user
            np.array(users),
        )
        actual = _increasing(list(shrunk), users, predicted)
        return cls(tuple(predicted), tuple(actual), sum(users), METHOD)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated expected values of raw ones (non-negative); the identity without knots."""
        raw = np.asarray(raw, dtype=float)
        if not self.users or self.predicted[-1] <= 0:
            return raw
        x = np.array((0.0, *self.predicted))
        y = np.array((0.0, *self.actual))
        beyond = raw > x[-1]
        return np.where(beyond, raw * (y[-1] / x[-1]), np.interp(raw, x, y))

    def write(self, folder: Location | str) -> None:
        write_json(folder, CALIBRATION_FILE, asdict(self))

    @classmethod
    def read(cls, folder: Location | str) -> DecileCalibration:
        """The folder's calibration; the identity for a model folder without one (one built by hand)."""
        try:
            saved = read_json(folder, CALIBRATION_FILE)
        except FileNotFoundError:
            return cls()
        return cls(
            tuple(saved["predicted"]), tuple(saved["actual"]), int(saved["users"]), saved.get("method", "")
        )

    def describe(self) -> str:
        if not self.users:
            return "uncalibrated"
        top = self.actual[-1] / self.predicted[-1] if self.predicted[-1] else float("nan")
        return (
            f"decile calibration from {self.users:,} validation users "
            f"(lowest decile {self.predicted[0]:.2f} -> {self.actual[0]:.2f}, "
            f"top decile x{top:.3f})"
        )


def _decile_means(scored: DataFrame) -> list:
    """Per decile of ``predicted`` (cut at approximate quantiles: nine numbers reach the driver):
    users, mean predicted, mean actual; ascending, empty deciles absent. Tied predictions share
    a decile."""
    cuts = scored.approxQuantile("predicted", [k / DECILES for k in range(1, DECILES)], QUANTILE_ERROR)
    decile = F.lit(0)
    for k, cut in enumerate(cuts):  # the last assignment (the highest cut) is tested first
        decile = F.when(F.col("predicted") > F.lit(cut), F.lit(k + 1)).otherwise(decile)
    return (
        scored.groupBy(decile.alias("decile"))
        .agg(
            F.count(F.lit(1)).alias("users"),
            F.mean("predicted").alias("predicted"),
            F.mean("actual").alias("actual"),
            F.var_samp("actual").alias("variance"),
        )
        .orderBy("decile")
        .collect()
    )


def shrunk_toward_raw(
    predicted: np.ndarray, actual: np.ndarray, variance: np.ndarray, users: np.ndarray
) -> np.ndarray:
    """Each decile's mean actual value shrunk toward its mean raw prediction by its sampling
    variance (the empirical Bayes estimate in the module docstring). Deciles predicted at <= 0
    keep their actual mean: they have no relative miscalibration."""
    positive = predicted > 0
    if not positive.any():
        return actual
    level = np.where(positive, predicted, 1.0)
    miscalibration = np.where(positive, actual / level - 1.0, 0.0)  # d_k
    sampling = np.where(positive, variance / (np.maximum(users, 1) * level**2), 0.0)  # v_k
    spread = miscalibration_spread(miscalibration[positive], sampling[positive])  # tau^2
    kept = np.where(spread + sampling > 0, spread / np.maximum(spread + sampling, 1e-300), 1.0)
    return np.where(positive, predicted * (1.0 + kept * miscalibration), actual)


def miscalibration_spread(miscalibration: np.ndarray, sampling: np.ndarray) -> float:
    """tau^2, the variance of the deciles' true relative miscalibrations around 0, from their
    measured ones d_k and sampling variances v_k: the Paule-Mandel root of
    sum_k d_k^2 / (tau^2 + v_k) = K (0 where the measured spread is within the sampling noise)."""
    squared = np.asarray(miscalibration, dtype=float) ** 2
    sampling = np.asarray(sampling, dtype=float)

    def excess(spread: float) -> float:  # decreasing in spread
        total = spread + sampling
        terms = np.divide(squared, total, out=np.where(squared > 0, np.inf, 0.0), where=total > 0)
        return float(terms.sum()) - len(squared)

    if len(squared) == 0 or excess(0.0) <= 0:
        return 0.0
    return float(brentq(excess, 0.0, float(squared.sum()), xtol=1e-12))  # excess(sum d^2) <= 0


def _increasing(actual: list[float], users: list[int], predicted: list[float]) -> list[float]:
    """Isotonic (pool adjacent violators, weighted by users), then at least MIN_SLOPE between knots."""
    pooled = IsotonicRegression().fit(predicted, actual, sample_weight=users).predict(predicted)
    strict = [max(float(pooled[0]), MIN_SLOPE * predicted[0])]
    for k in range(1, len(pooled)):
        strict.append(max(float(pooled[k]), strict[-1] + MIN_SLOPE * (predicted[k] - predicted[k - 1])))
    return strict
