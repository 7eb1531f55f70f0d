"""A saved model + the gold tables at an as-of date -> gold.predictions (MERGE on user_id, as_of)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ltv_spark.artifacts import latest_version_dir, promoted_version_dir, read_json
from ltv_spark.config import Config
from ltv_spark.pipeline.bronze import EVENTS
from ltv_spark.pipeline.gold import FEATURES, SEQUENCES, build_cutoff
from ltv_spark.progress import stage
from ltv_spark.score import add_deciles_and_segments, score_users, with_sequences
from ltv_spark.sequences import SESSION_VECTOR
from ltv_spark.storage import Location
from ltv_spark.tables import TableStore

PREDICTIONS = "gold.predictions"


@dataclass
class ScoreSummary:
    as_of: dt.date
    model: str
    users: int
    table_rows: int
    top: list[dict]
    deciles: list[dict]

    def lines(self) -> list[str]:
        lines = [
            f"as of {self.as_of}, model {self.model}: {self.users:,} users scored; "
            f"{PREDICTIONS} holds {self.table_rows:,} rows"
        ]
        lines.append("top users:  user_id     expected_ltv   p_buy   churn   segment")
        lines += [
            f"            {r['user_id']}  {r['expected_ltv']:>11,.2f}   {r['p_buy']:.3f}   "
            f"{r['churn_probability']:.3f}   {r['segment']}"
            for r in self.top
        ]
        lines.append("decile  users   mean expected LTV   share of expected value")
        total = sum(d["total"] for d in self.deciles) or 1.0
        lines += [
            f"{d['value_decile']:>6}  {d['users']:>6,}   {d['mean']:>17,.2f}   {d['total'] / total:>22.1%}"
            for d in self.deciles
        ]
        return lines


def score_as_of(
    spark: SparkSession, store: TableStore, config: Config, as_of: dt.date, model: str | None = None
) -> ScoreSummary:
    """Build features and sequences at ``as_of``, score every user, MERGE into gold.predictions."""
    artifact_dir = resolve_model(model or config.score.model, config.train.models_root)
    build_cutoff(spark, store, config.features, as_of)
    with stage(f"score as of {as_of}") as timer:
        rows = _rows_at(store, as_of, config.features.sequence_length)
        scores = score_users(rows, str(artifact_dir), config.score.batch_size).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        predictions = prediction_rows(add_deciles_and_segments(scores), as_of, artifact_dir)
        store.merge(predictions, PREDICTIONS, keys=["user_id", "as_of"], partition_by=["as_of"])
        timer.rows = scores.count()
        scores.unpersist()
    written = store.read(PREDICTIONS)
    today = written.filter(F.col("as_of") == F.lit(as_of))
    top = [r.asDict() for r in today.orderBy(F.col("expected_ltv").desc()).limit(5).collect()]
    deciles = [
        r.asDict()
        for r in today.groupBy("value_decile")
        .agg(
            F.count(F.lit(1)).alias("users"),
            F.mean("expected_ltv").alias("mean"),
            F.sum("expected_ltv").alias("total"),
        )
        .orderBy("value_decile")
        .collect()
    ]
    return ScoreSummary(as_of, artifact_dir.name, timer.rows, written.count(), top, deciles)


def prediction_rows(scored: DataFrame, as_of: dt.date | Column, artifact_dir: Location) -> DataFrame:
    """Scores with deciles and segments -> gold.predictions rows (model and data lineage added)."""
    lineage = json.dumps(read_json(artifact_dir, "data_versions.json"), sort_keys=True)
    return scored.select(
        "user_id",
        (as_of if isinstance(as_of, Column) else F.lit(as_of)).alias("as_of"),
        "expected_ltv",
        "p_buy",
        "churn_probability",
        "value_decile",
        "segment",
        F.lit(artifact_dir.name).alias("model_version"),
        F.lit(lineage).alias("data_versions"),
        F.current_timestamp().alias("scored_at"),
    )


def day_after_data(store: TableStore) -> dt.date:
    """The day after the last event in bronze: the as-of date that sees every event."""
    last = store.read(EVENTS).agg(F.max("event_date")).first()[0]
    if last is None:
        raise ValueError(f"{EVENTS} holds no events: ingest first (ltv ingest)")
    return last + dt.timedelta(days=1)


def resolve_model(model: str, models_root: str) -> Location:
    """``latest`` -> the newest complete version; ``promoted`` -> the promoted one (the latest
    before any promotion); otherwise the folder itself."""
    if model in ("latest", "promoted"):
        found = latest_version_dir(models_root) if model == "latest" else promoted_version_dir(models_root)
        if found is None:
            raise FileNotFoundError(f"no complete model under {models_root}: run `ltv train` first")
        return found
    return Location.of(model)


def _rows_at(store: TableStore, as_of: dt.date, sequence_length: int) -> DataFrame:
    at = F.col("cutoff") == F.lit(as_of)
    features = store.read(FEATURES).filter(at)
    sequences = store.read(SEQUENCES).filter(at)
    return with_sequences(features, sequences, sequence_length, len(SESSION_VECTOR))
