"""Training rows from Spark to torch through Petastorm, sharded by rank.

``to_model_rows`` turns joined examples into the four fixed-length columns the model reads;
``petastorm_converter`` materializes them once (under a configured cache folder) and each rank
reads its own shard with ``make_torch_dataloader(cur_shard=rank, shard_count=size)``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from petastorm.spark import SparkDatasetConverter, make_spark_converter
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ltv_spark.scaling import FeatureScaling

MODEL_COLUMNS = ("static", "sequence", "mask", "value")

# Petastorm 0.12 calls pyarrow 14's legacy dataset API (STACK.md pins both): one FutureWarning per
# file and row group, in every training process. They say nothing actionable, so they are muted.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\.|$)")
warnings.filterwarnings("ignore", category=FutureWarning, message=r".*(pyarrow|ParquetDataset|legacy).*")
logging.getLogger("petastorm").setLevel(logging.WARNING)


def to_model_rows(examples: DataFrame, scaling: FeatureScaling) -> DataFrame:
    """static (array<float>, scaled), sequence, mask, value (net value in the horizon, >= 0)."""
    return examples.select(
        scaling.static_column().alias("static"),
        F.col("sequence"),
        F.col("mask"),
        F.greatest(F.col("net_value"), F.lit(0.0)).cast("float").alias("value"),
    )


def petastorm_converter(
    spark: SparkSession, rows: DataFrame, cache_dir: str, min_files: int = 8
) -> SparkDatasetConverter:
    """Materialize ``rows`` as Parquet under ``cache_dir`` for Petastorm readers (delete() when done).

    Petastorm shards by row group and refuses more shards than row groups, so the rows are spread
    over at least ``min_files`` files (one row group each at these sizes): enough for 8 ranks.
    """
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, Path(cache_dir).resolve().as_uri())
    selected = rows.select(*MODEL_COLUMNS)
    if selected.rdd.getNumPartitions() < min_files:
        selected = selected.repartition(min_files)
    return make_spark_converter(selected)


def steps_per_epoch(rows: int, batch_size: int, world_size: int) -> int:
    """Every rank takes the same number of steps, so collective ops never wait on a finished rank."""
    return max(1, math.ceil(rows / (batch_size * world_size)))


@contextmanager
def shard_batches(
    converter: SparkDatasetConverter, batch_size: int, rank: int, world_size: int, epochs: int | None = None
) -> Iterator[Iterator[dict[str, torch.Tensor]]]:
    """Batches of this rank's shard as tensors; ``epochs=None`` repeats forever (fixed steps per epoch)."""
    with converter.make_torch_dataloader(
        batch_size=batch_size,
        num_epochs=epochs,
        cur_shard=rank,
        shard_count=world_size,
        workers_count=1,
        shuffle_row_groups=False,  # a fixed order: same seed and data give the same weights
    ) as loader:
        yield iter(loader)
