"""Which cutoffs train, validate and evaluate a model, such that no label window overlaps the next.

Training cutoffs T1..Tk end their label windows before the validation cutoff, whose window ends
before the evaluation cutoff: T_k + H <= T_val and T_val + H <= T_eval.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import DataFrame

from ltv_spark.config import FeaturesConfig


@dataclass(frozen=True)
class CutoffPlan:
    """The dates of one experiment."""

    train: tuple[dt.date, ...]
    validation: dt.date
    evaluation: dt.date
    horizon_days: int

    @property
    def all_cutoffs(self) -> tuple[dt.date, ...]:
        return (*self.train, self.validation, self.evaluation)

    @property
    def name(self) -> str:
        """``<evaluation>_h<horizon>_t<training cutoffs>x<days apart>d``: two plans that train on
        different cutoffs get different evaluation runs (tables rows, report folders)."""
        step = (self.train[1] - self.train[0]).days if len(self.train) > 1 else 0
        return f"{self.evaluation}_h{self.horizon_days}_t{len(self.train)}x{step}d"

    def check(self, first_event: dt.date | None = None) -> None:
        """Refuse overlapping label windows, and cutoffs before any data."""
        horizon = dt.timedelta(days=self.horizon_days)
        if any(t + horizon > self.validation for t in self.train):
            raise ValueError(f"a training label window passes the validation cutoff {self.validation}")
        if self.validation + horizon > self.evaluation:
            raise ValueError(f"the validation label window passes the evaluation cutoff {self.evaluation}")
        if first_event is not None and min(self.all_cutoffs) <= first_event:
            raise ValueError(f"cutoff {min(self.all_cutoffs)} is not after the first event ({first_event})")


def plan_cutoffs(features: FeaturesConfig) -> CutoffPlan:
    """Evaluation from config; validation one horizon before; training cutoffs a horizon before that."""
    horizon = dt.timedelta(days=features.horizon_days)
    validation = features.evaluation_cutoff - horizon
    last_train = validation - horizon
    step = dt.timedelta(days=features.cutoff_step_days)
    train = tuple(last_train - step * k for k in reversed(range(features.train_cutoffs)))
    plan = CutoffPlan(train, validation, features.evaluation_cutoff, features.horizon_days)
    plan.check()
    return plan


def join_examples(features: DataFrame, sequences: DataFrame, labels: DataFrame) -> DataFrame:
    """One training example per (user, cutoff): static features, sequence + mask, labels."""
    keys = ["user_id", "cutoff"]
    return features.join(sequences, keys, "inner").join(labels, keys, "inner")
