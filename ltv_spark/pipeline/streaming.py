"""Near-real-time scoring: raw files picked up as they land, their users re-scored per micro-batch.

A Structured Streaming file source reads new drops under the raw folder (the contract's columns,
a malformed line kept in ``_corrupt_record``). Each micro-batch (``foreachBatch``):

1. contract-checks its rows: good ones are appended to ``bronze.stream_events``, bad ones to
   ``bronze.stream_quarantine``, each append tagged with the micro-batch id (a Delta transaction
   id), so a micro-batch replayed after a crash appends nothing twice; rows naming a customer on
   the suppression list (``ltv forget``) are counted and kept nowhere;
2. takes the users with new events and the as-of date that sees them (the day after the batch's
   last event), rebuilds those users' features and sequences from bronze.events plus the stream's
   events (deduplicated by event_id), scores them with the champion model, places them among the
   population's last full scoring (deciles, segments), and MERGEs them into gold.predictions.

``bronze.events`` stays the daily batch's table (its batch ids drive silver's progress); the daily
refresh ingests the same files from the raw folder and supersedes the stream's scores by date.
The checkpoint makes a restart neither lose nor repeat a micro-batch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StringType, StructField, StructType

from ltv_spark.config import Config
from ltv_spark.contract import CORRUPT_COLUMN, RAW_COLUMNS, classify_events, to_bronze, to_quarantine
from ltv_spark.features import sessions_before, user_features
from ltv_spark.forget import names_hashed_users
from ltv_spark.pipeline.bronze import EVENTS
from ltv_spark.pipeline.forget import forgotten_hashes
from ltv_spark.pipeline.scoring import PREDICTIONS, prediction_rows, resolve_model
from ltv_spark.progress import LOG
from ltv_spark.score import add_deciles_and_segments, score_users, with_sequences
from ltv_spark.sequences import SESSION_VECTOR, user_sequences
from ltv_spark.tables import TableStore

STREAM_EVENTS = "bronze.stream_events"
STREAM_QUARANTINE = "bronze.stream_quarantine"
STREAM_APP_ID = "ltv_spark.stream"
RAW_SCHEMA = StructType([StructField(c, StringType()) for c in (*RAW_COLUMNS, CORRUPT_COLUMN)])


@dataclass
class MicroBatch:
    """What one micro-batch did (logged, and kept by the caller for tests and summaries)."""

    batch_id: int
    events: int
    quarantined: int
    users: int
    as_of: dt.date | None
    forgotten: int = 0  # rows of customers deleted on request: counted, not kept


def start_stream(
    spark: SparkSession,
    store: TableStore,
    config: Config,
    available_now: bool = False,
    on_batch=None,
) -> StreamingQuery:
    """Start the query; ``available_now`` processes what has landed and stops (a catch-up run)."""
    fmt = config.ingest.format
    reader = spark.readStream.schema(RAW_SCHEMA).option("recursiveFileLookup", "true")
    reader = reader.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT_COLUMN)
    if fmt == "csv":
        raw = reader.option("header", True).option("enforceSchema", True).csv(config.ingest.raw_dir)
    elif fmt == "json":
        raw = reader.json(config.ingest.raw_dir)
    else:
        raise ValueError("streaming reads csv or json drops; parquet drops are ingested by the daily refresh")
    landed = raw.withColumn("source_file", F.col("_metadata.file_path"))

    def process(batch: DataFrame, batch_id: int) -> None:
        result = score_micro_batch(spark, store, config, batch, batch_id)
        LOG.info("[stream] %s", result)
        if on_batch is not None:
            on_batch(result)

    settings = config.stream
    writer = landed.writeStream.foreachBatch(process).option("checkpointLocation", settings.checkpoint)
    every = f"{settings.trigger_seconds} seconds"
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=every)
    return writer.queryName("ltv_near_real_time_scoring").start()


def score_micro_batch(
    spark: SparkSession, store: TableStore, config: Config, batch: DataFrame, batch_id: int
) -> MicroBatch:
    """Steps 1 and 2 of the module docstring for one micro-batch."""
    batch = batch.persist()
    try:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        max_time = now + dt.timedelta(hours=config.ingest.max_future_hours)
        min_time = dt.datetime.combine(config.ingest.min_event_time, dt.time())
        forgotten = forgotten_hashes(store)
        naming = names_hashed_users(F.col("user_id"), F.col("raw"), forgotten) if forgotten else F.lit(False)
        every_row = classify_events(batch, min_time, max_time).withColumn("_forgotten", naming).persist()
        classified = every_row.filter(~F.col("_forgotten")).drop("_forgotten")
        good = classified.filter(F.col("reason").isNull())
        store.append(to_bronze(good, now, batch_id), STREAM_EVENTS, ["event_date"], STREAM_APP_ID, batch_id)
        bad = classified.filter(F.col("reason").isNotNull())
        store.append(to_quarantine(bad, now, batch_id), STREAM_QUARANTINE, (), STREAM_APP_ID, batch_id)
        new = store.read(STREAM_EVENTS).filter(F.col("batch_id") == batch_id)
        stats = new.agg(F.countDistinct("user_id").alias("users"), F.max("event_date").alias("last")).first()
        kind = (
            F.when(F.col("_forgotten"), "forgotten").when(F.col("reason").isNull(), "good").otherwise("bad")
        )
        by_kind = {
            row["kind"]: row["count"] for row in every_row.groupBy(kind.alias("kind")).count().collect()
        }
        every_row.unpersist()
        as_of = stats["last"] + dt.timedelta(days=1) if stats["last"] is not None else None
        if as_of is not None:
            _rescore(store, config, new.select("user_id").distinct(), as_of)
        return MicroBatch(
            batch_id,
            by_kind.get("good", 0),
            by_kind.get("bad", 0),
            stats["users"],
            as_of,
            by_kind.get("forgotten", 0),
        )
    finally:
        batch.unpersist()


def _rescore(store: TableStore, config: Config, users: DataFrame, as_of: dt.date) -> None:
    """Features, sequences and scores at ``as_of`` for ``users`` only, MERGEd into gold.predictions."""
    features = config.features
    events = _user_events(store, users)
    sessions = sessions_before(events, as_of, features.session_gap_minutes, features.max_events_per_user_day)
    rows = with_sequences(
        user_features(sessions, events, as_of),
        user_sequences(sessions, as_of, features.sequence_length),
        features.sequence_length,
        len(SESSION_VECTOR),
    )
    model = resolve_model(config, config.refresh.model)
    scores = score_users(
        rows, model.uri, config.score.batch_size, explain=True, explain_steps=config.score.explain_steps
    ).localCheckpoint()
    scored = add_deciles_and_segments(scores, _population(store))
    store.merge(prediction_rows(scored, as_of, model), PREDICTIONS, ["user_id", "as_of"], ["as_of"])


def _user_events(store: TableStore, users: DataFrame) -> DataFrame:
    """Every known event of ``users``: the batch table's and the stream's, each event_id once."""
    columns = ["event_id", "user_id", "event_time", "event_type", "product_id", "category", "price",
               "quantity", "order_id", "ingested_at"]  # fmt: skip
    sources = [store.read(name) for name in (EVENTS, STREAM_EVENTS) if store.exists(name)]
    events = sources[0].select(*columns)
    for other in sources[1:]:
        events = events.unionByName(other.select(*columns))
    mine = events.join(users, "user_id", "left_semi")
    first = Window.partitionBy("event_id").orderBy("ingested_at")
    return mine.withColumn("_n", F.row_number().over(first)).filter(F.col("_n") == 1).drop("_n")


def _population(store: TableStore) -> DataFrame | None:
    """The latest full scoring (the as-of date with the most users; micro-batches score few), to
    place a micro-batch's users among everyone's scores."""
    if not store.exists(PREDICTIONS):
        return None
    predictions = store.read(PREDICTIONS)
    largest = predictions.groupBy("as_of").count().orderBy(F.desc("count"), F.desc("as_of")).first()
    return predictions.filter(F.col("as_of") == F.lit(largest["as_of"])) if largest is not None else None
