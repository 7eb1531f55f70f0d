"""The table layer: the only code that reads or writes tables.

``open_store`` picks the engine: Spark's Delta connector when its classes load (Databricks,
clusters with --packages), delta-rs otherwise (laptop, tests, CI).
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from ltv_spark.config import TablesConfig
from ltv_spark.session import delta_connector_loaded
from ltv_spark.tables.base import (
    DuplicateMergeKey,
    SchemaMismatch,
    TableError,
    TableNotFound,
    TableStore,
    UnsupportedTableFeature,
)
from ltv_spark.tables.delta_rs import DeltaRsStore
from ltv_spark.tables.spark_delta import SparkDeltaStore

__all__ = [
    "DeltaRsStore",
    "DuplicateMergeKey",
    "SchemaMismatch",
    "SparkDeltaStore",
    "TableError",
    "TableNotFound",
    "TableStore",
    "UnsupportedTableFeature",
    "open_store",
]


def open_store(spark: SparkSession, config: TablesConfig) -> TableStore:
    """The TableStore for this session and configuration."""
    engine = config.engine
    if engine == "auto":
        engine = "spark-delta" if delta_connector_loaded(spark) else "delta-rs"
    if engine == "spark-delta":
        if not delta_connector_loaded(spark):
            raise TableError(
                "tables.engine=spark-delta but Spark's Delta connector is not on the classpath: "
                "add --packages io.delta:delta-spark_2.12:3.3.3 (or set tables.engine=delta-rs)"
            )
        return SparkDeltaStore(spark, config.root, config.catalog)
    return DeltaRsStore(spark, config.root, config.staging_dir)
