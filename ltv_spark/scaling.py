"""Static-feature scaling, fitted on training rows only and saved with the model.

Each feature is squashed with a signed log1p (counts and money are heavy-tailed) and then
standardized with the training mean and standard deviation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def _squash(column: Column) -> Column:
    return F.signum(column) * F.log1p(F.abs(column))


@dataclass(frozen=True)
class FeatureScaling:
    """Per-feature mean and std of signed-log1p values, in ``columns`` order."""

    columns: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, train: DataFrame, columns: tuple[str, ...]) -> FeatureScaling:
        """One aggregation over the training frame (a single row comes back)."""
        squashed = [_squash(F.col(c).cast("double")) for c in columns]
        stats = train.select(
            *[F.mean(s).alias(f"m{i}") for i, s in enumerate(squashed)],
            *[F.stddev_pop(s).alias(f"s{i}") for i, s in enumerate(squashed)],
        ).first()
        mean = tuple(float(stats[f"m{i}"] or 0.0) for i in range(len(columns)))
        std = tuple(float(stats[f"s{i}"] or 0.0) or 1.0 for i in range(len(columns)))
        return cls(tuple(columns), mean, std)

    def static_column(self) -> Column:
        """array<float> of the scaled features, for a Spark frame holding ``columns``."""
        scaled = [
            ((_squash(F.col(c).cast("double")) - m) / s).cast("float")
            for c, m, s in zip(self.columns, self.mean, self.std, strict=True)
        ]
        return F.array(*scaled)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """The same on a (rows, features) numpy array, for the scoring UDF."""
        squashed = np.sign(values) * np.log1p(np.abs(values))
        return ((squashed - np.array(self.mean)) / np.array(self.std)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureScaling:
        return cls(tuple(data["columns"]), tuple(data["mean"]), tuple(data["std"]))
