"""Build (or join) the SparkSession for an environment. Never a module global: callers own it."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from ltv_spark.config import Config

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def build_spark(config: Config) -> SparkSession:
    """The session for ``config.env``.

    local: a fresh ``local[*]`` session with few shuffle partitions; Delta's extension and catalog are
    set only when the connector jar is on the classpath (``spark.jars``/``--packages``), because
    naming a missing extension class breaks every query. cluster / databricks: the session that
    spark-submit or the Databricks runtime already started, with our settings layered on.
    """
    spark_config = config.spark
    if config.env != "local":
        active = SparkSession.getActiveSession()
        if active is not None:
            _apply_runtime_conf(active, config)
            return active
    # Workers must run the same interpreter as the driver (the project's venv), also under pytest.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(spark_config.app_name)
    if spark_config.master:
        builder = builder.master(spark_config.master)
        builder = builder.config("spark.driver.memory", spark_config.driver_memory)
    for key, value in spark_config.conf.items():
        builder = builder.config(key, value)
    builder = builder.config("spark.sql.shuffle.partitions", str(spark_config.shuffle_partitions))
    if _delta_jar_requested(spark_config.conf):
        builder = builder.config("spark.sql.extensions", DELTA_EXTENSION)
        builder = builder.config("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
    spark = builder.getOrCreate()
    _apply_runtime_conf(spark, config)
    return spark


def delta_connector_loaded(spark: SparkSession) -> bool:
    """Whether Spark's Delta connector classes load in this JVM (Databricks, --packages)."""
    try:
        spark._jvm.java.lang.Class.forName("io.delta.tables.DeltaTable")
        return True
    except Exception:  # py4j raises a generic Py4JJavaError for ClassNotFoundException
        return False


def _apply_runtime_conf(spark: SparkSession, config: Config) -> None:
    spark.conf.set("spark.sql.shuffle.partitions", str(config.spark.shuffle_partitions))
    spark.conf.set("spark.sql.session.timeZone", "UTC")


def _delta_jar_requested(conf: dict[str, str]) -> bool:
    wanted = " ".join(conf.get(key, "") for key in ("spark.jars", "spark.jars.packages"))
    wanted += " " + os.environ.get("PYSPARK_SUBMIT_ARGS", "")
    return "delta-spark" in wanted or "delta-core" in wanted
