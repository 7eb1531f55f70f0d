"""Drift at each refresh: the PSI (ltv_spark.drift) of every static feature and of the predicted
value today against the cutoffs the scoring model was trained on.

The reference (bin edges and shares) is computed once per model version, from gold.user_features
at its training cutoffs and that model's own predictions there, and kept in ops.drift_reference;
each refresh that scores writes one row per column to ops.drift (its date's partition replaced, so
a re-run leaves one copy) and names the columns over ``refresh.drift_threshold``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from ltv_spark.config import Config
from ltv_spark.drift import Bins, reference_bins, stability
from ltv_spark.features import FEATURE_COLUMNS
from ltv_spark.pipeline.gold import FEATURES
from ltv_spark.pipeline.scoring import PREDICTIONS, rows_at
from ltv_spark.registry import ModelRef
from ltv_spark.score import score_users
from ltv_spark.tables import TableStore

DRIFT = "ops.drift"  # one row per (refresh_date, column)
DRIFT_REFERENCE = "ops.drift_reference"  # one row per (model_version, column)
PREDICTED = "expected_ltv"
DRIFT_SCHEMA = "refresh_date date, model_version string, column string, psi double, flagged boolean"
REFERENCE_SCHEMA = (
    "model_version string, column string, edges array<double>, bins array<int>, shares array<double>"
)


@dataclass
class DriftReport:
    psi: dict[str, float]  # column -> PSI; empty when there was no reference to compare with
    threshold: float
    skipped: str = ""  # why nothing was measured

    @property
    def over(self) -> dict[str, float]:
        """The columns whose PSI is above the threshold, largest first."""
        over = {column: value for column, value in self.psi.items() if value > self.threshold}
        return dict(sorted(over.items(), key=lambda item: -item[1]))

    def detail(self) -> str:
        """One line for the refresh summary and ops.refresh_runs: ALERT and the columns when any
        crossed the threshold, else the largest PSI."""
        if self.skipped:
            return f"not measured: {self.skipped}"
        if self.over:
            named = ", ".join(f"{column} {value:.2f}" for column, value in self.over.items())
            return f"ALERT: PSI over {self.threshold} in {len(self.over)} of {len(self.psi)} columns: {named}"
        worst = max(self.psi, key=self.psi.__getitem__)
        return f"largest PSI {self.psi[worst]:.3f} ({worst}); none over {self.threshold}"


def measure_drift(
    spark: SparkSession, store: TableStore, config: Config, day: dt.date, model: ModelRef
) -> DriftReport:
    """The PSI of every static feature and of the predicted value at ``day`` (features and
    predictions as of ``day`` must be written) against ``model``'s training cutoffs."""
    reference = _reference(spark, store, config, model)
    if not reference:
        cutoffs = ", ".join(map(str, training_cutoffs(model)))
        return DriftReport({}, config.refresh.drift_threshold, f"no rows of {FEATURES} at {cutoffs}")
    features = store.read(FEATURES).filter(F.col("cutoff") == F.lit(day))
    predictions = store.read(PREDICTIONS).filter(F.col("as_of") == F.lit(day))
    psi = {
        **stability({c: reference[c] for c in FEATURE_COLUMNS}, features),
        **stability({PREDICTED: reference[PREDICTED]}, predictions),
    }
    report = DriftReport(psi, config.refresh.drift_threshold)
    rows = [(day, model.label, column, value, value > report.threshold) for column, value in psi.items()]
    store.overwrite(
        spark.createDataFrame(rows, DRIFT_SCHEMA),
        DRIFT,
        ["refresh_date"],
        {"refresh_date": [day.isoformat()]},
    )
    return report


def training_cutoffs(model: ModelRef) -> list[dt.date]:
    """The cutoffs ``model`` learnt from: its data_versions list the training cutoffs, then the
    validation cutoff (gold.examples_identity)."""
    cutoffs = [dt.date.fromisoformat(c) for c in model.data_versions.get("cutoffs", [])]
    if not cutoffs:
        raise ValueError(f"model {model.label} names no training cutoffs in its data_versions")
    return cutoffs[:-1] or cutoffs


def _reference(spark: SparkSession, store: TableStore, config: Config, model: ModelRef) -> dict[str, Bins]:
    """``model``'s reference bins: read from ops.drift_reference, or computed and saved there."""
    saved = _saved_reference(store, model.label)
    if saved:
        return saved
    cutoffs = training_cutoffs(model)
    features = store.read(FEATURES).filter(F.col("cutoff").isin(cutoffs))
    if features.limit(1).count() == 0:  # trained on another warehouse's cutoffs
        return {}
    rows = rows_at(store, cutoffs, config.features.sequence_length)
    predicted = score_users(rows, model.uri, config.score.batch_size).select(PREDICTED).persist()
    reference = {**reference_bins(features, FEATURE_COLUMNS), **reference_bins(predicted, [PREDICTED])}
    predicted.unpersist()
    saved_rows = [
        (model.label, column, bins.edges, list(bins.shares), list(bins.shares.values()))
        for column, bins in reference.items()
    ]
    store.append(spark.createDataFrame(saved_rows, REFERENCE_SCHEMA), DRIFT_REFERENCE)
    return reference


def _saved_reference(store: TableStore, model_version: str) -> dict[str, Bins]:
    if not store.exists(DRIFT_REFERENCE):
        return {}
    rows = store.read(DRIFT_REFERENCE).filter(F.col("model_version") == model_version).collect()
    return {
        row["column"]: Bins(list(row["edges"]), dict(zip(row["bins"], row["shares"], strict=True)))
        for row in rows
    }
