"""Shared test data builders."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ltv_spark.config import WorldConfig
from ltv_spark.contract import classify_events, to_bronze
from ltv_spark.world import events_frame

INGESTED_AT = dt.datetime(2025, 8, 1)


def bronze_from_world(spark: SparkSession, users: int = 300, days: int = 90) -> DataFrame:
    """A small generated world as bronze rows, typed by the event contract as ingest types them."""
    world = WorldConfig(users=users, days=days, seed=5, dirty_rate=0.0, users_per_partition=150)
    raw = events_frame(spark, world).withColumn("source_file", F.lit("generated"))
    classified = classify_events(raw, dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1))
    return to_bronze(classified.filter(F.col("reason").isNull()), INGESTED_AT, 0)
