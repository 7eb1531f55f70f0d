"""A model (registered, or a folder) + the gold tables at an as-of date -> gold.predictions (MERGE on
user_id, as_of), each row naming the model version that scored it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ltv_spark.config import Config
from ltv_spark.pipeline.bronze import EVENTS
from ltv_spark.pipeline.gold import FEATURES, SEQUENCES, build_cutoff
from ltv_spark.progress import stage
from ltv_spark.registry import ModelRef, resolve
from ltv_spark.score import add_deciles_and_segments, score_users, with_sequences
from ltv_spark.sequences import SESSION_VECTOR
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
        for r in self.top:
            lines.append(
                f"            {r['user_id']}  {r['expected_ltv']:>11,.2f}   {r['p_buy']:.3f}   "
                f"{r['churn_probability']:.3f}   {r['segment']}"
            )
            lines.append(f"              why: {'; '.join(r['reasons'] or [])}")
            if r["top_categories"]:
                named = ", ".join(f"{c['category']} {c['probability']:.0%}" for c in r["top_categories"])
                lines.append(f"              next: {named}")
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
    """Build features and sequences at ``as_of``, score every user with ``model`` (default:
    score.model; see ltv_spark.registry.resolve), MERGE into gold.predictions."""
    ref = resolve_model(config, model or config.score.model)
    build_cutoff(spark, store, config.features, as_of)
    with stage(f"score as of {as_of}") as timer:
        rows = rows_at(store, [as_of], config.features.sequence_length)
        scores = score_users(
            rows, ref.uri, config.score.batch_size, explain=True, explain_steps=config.score.explain_steps
        )
        scores = scores.persist(StorageLevel.MEMORY_AND_DISK)
        predictions = prediction_rows(add_deciles_and_segments(scores), as_of, ref)
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
    return ScoreSummary(as_of, ref.label, timer.rows, written.count(), top, deciles)


def prediction_rows(scored: DataFrame, as_of: dt.date | Column, model: ModelRef) -> DataFrame:
    """Scores with deciles, segments, reasons and top categories -> gold.predictions rows (model
    and data lineage added)."""
    lineage = json.dumps(model.data_versions, sort_keys=True)
    return scored.select(
        "user_id",
        (as_of if isinstance(as_of, Column) else F.lit(as_of)).alias("as_of"),
        "expected_ltv",
        "p_buy",
        "churn_probability",
        "value_decile",
        "segment",
        "reasons",
        "top_categories",
        F.lit(model.label).alias("model_version"),
        F.lit(lineage).alias("data_versions"),
        F.current_timestamp().alias("scored_at"),
    )


def day_after_data(store: TableStore) -> dt.date:
    """The day after the last event in bronze: the as-of date that sees every event."""
    last = store.read(EVENTS).agg(F.max("event_date")).first()[0]
    if last is None:
        raise ValueError(f"{EVENTS} holds no events: ingest first (ltv ingest)")
    return last + dt.timedelta(days=1)


def resolve_model(config: Config, model: str) -> ModelRef:
    """``model`` as score.model names it (an alias, a registry URI, ``latest`` or a folder), pinned."""
    return resolve(model, config.tracking, config.train.models_root)


def rows_at(store: TableStore, cutoffs: Sequence[dt.date], sequence_length: int) -> DataFrame:
    """The model's input rows (features with sequences) of every user at each of ``cutoffs``."""
    at = F.col("cutoff").isin(list(cutoffs))
    features = store.read(FEATURES).filter(at)
    sequences = store.read(SEQUENCES).filter(at)
    return with_sequences(features, sequences, sequence_length, len(SESSION_VECTOR))
