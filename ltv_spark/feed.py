"""Training rows from Spark to torch through Petastorm, sharded by rank.

``to_model_rows`` turns joined examples into the four fixed-length columns the model reads;
``petastorm_converter`` materializes them once (under a configured cache folder) and each rank
reads its own shard with ``make_torch_dataloader(cur_shard=rank, shard_count=size)``.

The cache is a local folder (one machine, or a shared mount) or an ``s3a://`` URI, which every
executor of a multi-node cluster reads. Petastorm opens non-local URLs through fsspec, whose own
S3 implementation (s3fs) is not installed: this module registers pyarrow's S3 client (the one
ltv_spark.storage uses, configured by the AWS environment) under the s3a and s3 protocols, in
every process that imports it (the driver and each training rank).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import fsspec
import numpy as np
import pyarrow.filesystem as legacy_pyarrow_fs
import torch
from fsspec.implementations.arrow import ArrowFSWrapper
from petastorm.pytorch import BatchedDataLoader
from petastorm.spark import SparkDatasetConverter, make_spark_converter
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ltv_spark.cross_sell import category_targets, history_vector
from ltv_spark.scaling import FeatureScaling
from ltv_spark.storage import OBJECT_STORE_SCHEMES, Location, object_store_filesystem

MODEL_COLUMNS = ("static", "sequence", "mask", "value")
ROW_KEY = "row_key"  # xxhash64(user_id, cutoff): the fixed order the rows are written and fed in
CROSS_SELL_COLUMNS = ("categories", "history")  # a cross-sell head's targets and input (C wide each)

# Petastorm 0.12 calls pyarrow 14's legacy dataset API (STACK.md pins both): one FutureWarning per
# file and row group, in every training process. They say nothing actionable, so they are muted.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\.|$)")
warnings.filterwarnings("ignore", category=FutureWarning, message=r".*(pyarrow|ParquetDataset|legacy).*")
logging.getLogger("petastorm").setLevel(logging.WARNING)


class ObjectStoreFileSystem(ArrowFSWrapper, legacy_pyarrow_fs.FileSystem):
    """fsspec's face on pyarrow's S3 client, for the s3a:// URLs Petastorm resolves.

    Also a (deprecated) ``pyarrow.filesystem.FileSystem``: Petastorm 0.12 then opens the files with
    pyarrow's legacy ParquetDataset, as it does local ones (the new one refuses its arguments).
    """

    protocol = OBJECT_STORE_SCHEMES

    def __init__(self, **kwargs: object) -> None:
        super().__init__(object_store_filesystem(), **kwargs)


for _scheme in OBJECT_STORE_SCHEMES:
    fsspec.register_implementation(_scheme, ObjectStoreFileSystem, clobber=True)


def to_model_rows(examples: DataFrame, scaling: FeatureScaling, categories: Sequence[str] = ()) -> DataFrame:
    """static (array<float>, scaled), sequence, mask, value (net value in the horizon, >= 0), the
    example's ``row_key``; and, given the cross-sell head's ``categories``, their targets and the
    user's history in them (ltv_spark.cross_sell)."""
    cross_sell = (
        [category_targets(categories).alias("categories"), history_vector(categories).alias("history")]
        if categories
        else []
    )
    return examples.select(
        scaling.static_column().alias("static"),
        F.col("sequence"),
        F.col("mask"),
        F.greatest(F.col("net_value"), F.lit(0.0)).cast("float").alias("value"),
        F.xxhash64("user_id", "cutoff").alias(ROW_KEY),
        *cross_sell,
    )


def petastorm_converter(
    spark: SparkSession, rows: DataFrame, cache_dir: str | Location, min_files: int = 8
) -> SparkDatasetConverter:
    """Materialize ``rows`` as Parquet under ``cache_dir`` for Petastorm readers (delete() when done).

    Petastorm shards by row group and refuses more shards than row groups, so the rows are spread
    over at least ``min_files`` files (one row group each at these sizes): enough for 8 ranks.
    They are written in a fixed pseudo-random order, by ``row_key`` (or, without one, a hash of
    their content), because a shuffle hands rows over in a different order on every run, and read
    file by file in name order (Spark lists the files it wrote in any order): the same examples
    then feed the same batches, and the same seed trains the same weights.
    """
    cache = Location.of(cache_dir)
    cache.mkdir()
    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, cache.as_uri())
    columns = [*MODEL_COLUMNS, *[c for c in CROSS_SELL_COLUMNS if c in rows.columns]]
    key = F.col(ROW_KEY) if ROW_KEY in rows.columns else F.xxhash64(*MODEL_COLUMNS)
    files = max(min_files, rows.rdd.getNumPartitions())
    ordered = (
        rows.withColumn("_order", key)
        .repartition(files, "_order")
        .sortWithinPartitions("_order")
        .select(*columns)
    )
    written = make_spark_converter(ordered)
    return SparkDatasetConverter(written.cache_dir_url, sorted(written.file_urls), len(written))


def steps_per_epoch(rows: int, batch_size: int, world_size: int) -> int:
    """Every rank takes the same number of steps, so collective ops never wait on a finished rank."""
    return max(1, math.ceil(rows / (batch_size * world_size)))


@contextmanager
def shard_batches(
    converter: SparkDatasetConverter, batch_size: int, rank: int, world_size: int, epochs: int | None = None
) -> Iterator[Iterator[dict[str, torch.Tensor]]]:
    """Batches of this rank's shard as tensors; ``epochs=None`` repeats forever (fixed steps per epoch).

    Petastorm's BatchedDataLoader turns each Parquet row group into tensors at once and cuts them
    into batches; its default loader makes a Python dict per row and collates them again (feed
    alone: about 25,000 rows/s against 40,000-48,000 here). Rows come in the same order either way.
    """
    with converter.make_torch_dataloader(
        batch_size=batch_size,
        num_epochs=epochs,
        cur_shard=rank,
        shard_count=world_size,
        workers_count=1,
        shuffle_row_groups=False,  # a fixed order: same seed and data give the same weights
        data_loader_fn=_batched_loader,
    ) as loader:
        yield iter(loader)


def _batched_loader(reader, batch_size: int, shuffling_queue_capacity: int = 0) -> BatchedDataLoader:
    return BatchedDataLoader(reader, batch_size, _writable_tensor, shuffling_queue_capacity)


def _writable_tensor(column: np.ndarray) -> torch.Tensor:
    """A row group's column as a tensor; Arrow's buffers are read-only, so those are copied once."""
    return torch.as_tensor(np.require(column, requirements="W"))
