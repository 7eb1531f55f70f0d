"""Shared test data builders."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

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


# A model small enough to train in seconds on a 150-user, 90-day world (2025-06-01 .. 2025-08-29).
TINY_TRAINING = [
    "features.horizon_days=14",
    "features.train_cutoffs=2",
    "features.cutoff_step_days=7",
    "features.sequence_length=4",
    "train.epochs=1",
    "train.batch_size=32",
    "train.d_model=8",
    "train.n_heads=2",
    "train.n_layers=1",
    "train.d_ff=16",
]


def tiny_overrides(base: Path) -> list[str]:
    """Config overrides for a tiny generated world with every folder under ``base``."""
    return [
        "world.users=150",
        "world.days=90",
        "world.dirty_rate=0.0",
        "world.users_per_partition=75",
        f"world.out={base / 'raw'}",
        f"ingest.raw_dir={base / 'raw'}",
        f"tables.root={base / 'warehouse'}",
        *TINY_TRAINING,
        f"train.models_root={base / 'models'}",
        f"train.cache_dir={base / 'cache'}",
        *tracking_overrides(base),
    ]


def tracking_overrides(base: Path) -> list[str]:
    """An MLflow tracking store, artifacts and registry of its own under ``base``."""
    return [
        f"tracking.tracking_uri=sqlite:///{base / 'mlflow.db'}",
        f"tracking.artifact_root={base / 'mlflow'}",
    ]


def users_in_drops(folder: Path) -> set[str]:
    """The user ids of a folder of csv drops (the second column), read without Spark."""
    return {line.split(",")[1] for path in folder.glob("*.csv") for line in path.read_text().splitlines()[1:]}
