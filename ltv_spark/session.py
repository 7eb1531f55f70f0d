"""Build (or join) the SparkSession for an environment. Never a module global: callers own it."""

from __future__ import annotations

import logging
import os
import sys

from pyspark import SparkContext
from pyspark.sql import SparkSession

from ltv_spark.config import Config
from ltv_spark.jvm_jars import (
    LOCAL_FS_CLASS,
    LOG_STORE_CLASS,
    cached_jars,
    jars_dir,
    local_fs_jar,
    log_store_jar,
)

LOG = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def build_spark(config: Config) -> SparkSession:
    """The session for ``config.env``.

    local: a fresh ``local[*]`` session with few shuffle partitions. When the JVM engine is asked for
    (``tables.engine`` spark-delta or auto, or ``spark.jvm_connector``) the jars cached by
    ``make`` (ltv_spark.jvm_jars) go on the classpath with Delta's extension and catalog, and our
    conditional-PUT log store for ``s3a://``; those are
    set only when the jars are there, because naming a missing extension class breaks every query.
    Local folders go through our NioLocalFileSystem when ``make`` built it (Hadoop's own starts a
    ``chmod`` process per file and folder written: ltv_spark/jvm/NioLocalFileSystem.java).
    cluster / databricks: the session that spark-submit or the Databricks runtime already started,
    with our settings layered on.
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
    settings = dict(spark_config.conf)
    if spark_config.master and _wants_jvm_connector(config) and "spark.jars" not in settings:
        settings.update(_cached_jars_conf(config.tables.engine))
    if spark_config.master:
        settings = with_local_fs(settings, _local_fs_conf())
    if _delta_jar_requested(settings):
        settings.setdefault("spark.sql.extensions", DELTA_EXTENSION)
        settings.setdefault("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
    builder = SparkSession.builder.appName(spark_config.app_name)
    if spark_config.master:
        builder = builder.master(spark_config.master)
        builder = builder.config("spark.driver.memory", spark_config.driver_memory)
    for key, value in settings.items():
        builder = builder.config(key, value)
    builder = builder.config("spark.sql.shuffle.partitions", str(spark_config.shuffle_partitions))
    spark = builder.getOrCreate()
    _apply_runtime_conf(spark, config)
    return spark


def delta_connector_loaded(spark: SparkSession) -> bool:
    """Whether Spark's Delta connector classes load in this JVM (Databricks, --packages, spark.jars).

    Asked through Spark's own class loader: jars from ``spark.jars`` are not on the system one.
    """
    try:
        spark._jvm.org.apache.spark.util.Utils.classForName("io.delta.tables.DeltaTable", True, False)
        return True
    except Exception:  # py4j raises a generic Py4JJavaError for ClassNotFoundException
        return False


def _wants_jvm_connector(config: Config) -> bool:
    return config.tables.engine != "delta-rs" or config.spark.jvm_connector


def _cached_jars_conf(engine: str) -> dict[str, str]:
    """The jars fetched by ``make`` for a local session's classpath: nothing resolves at start."""
    jars = cached_jars()
    if jars:
        settings = {"spark.jars": ",".join(str(jar) for jar in jars)}
        if log_store_jar() in jars:  # commits on s3a:// safe across drivers (S3 conditional PUT)
            settings["spark.delta.logStore.s3a.impl"] = LOG_STORE_CLASS
        else:
            LOG.warning("s3a log store not built (run `make`): s3a:// tables are safe for one driver only")
        return settings
    missing = f"Delta's JVM connector is not cached in {jars_dir()} (run `make`; the fetch needs Maven)"
    if engine == "spark-delta":
        raise RuntimeError(f"{missing}: tables.engine=spark-delta cannot run; use tables.engine=delta-rs")
    LOG.warning("%s: tables run on delta-rs", missing)
    return {}


def _local_fs_conf() -> dict[str, str]:
    """Our local file system for ``file:`` paths, on the driver's and the executors' class path
    (``local-cluster`` executors are JVMs of their own); nothing when it is not built.

    Under ``spark-submit`` the JVM is already running with its own class path: the file system is
    used only where it is on it (``--driver-class-path <the jar>``).
    """
    if os.environ.get("PYSPARK_GATEWAY_PORT"):  # set by spark-submit for its Python driver
        return {"spark.hadoop.fs.file.impl": LOCAL_FS_CLASS} if _jvm_loads(LOCAL_FS_CLASS) else {}
    jar = local_fs_jar()
    if not jar.exists():
        LOG.warning("%s is not built (run `make`; needs javac): Hadoop's local file system runs", jar.name)
        return {}
    return {
        "spark.driver.extraClassPath": str(jar),
        "spark.executor.extraClassPath": str(jar),
        "spark.hadoop.fs.file.impl": LOCAL_FS_CLASS,
    }


CLASS_PATH_KEYS = ("spark.driver.extraClassPath", "spark.executor.extraClassPath")


def with_local_fs(settings: dict[str, str], local_fs: dict[str, str]) -> dict[str, str]:
    """``settings`` with our local file system added: the configuration's own settings win, except
    that a class path it sets gets our jar appended (replacing it would leave ``fs.file.impl``
    naming a class the JVM cannot load, and every local read would fail).
    """
    merged = {**local_fs, **settings}
    for key in CLASS_PATH_KEYS:
        if key in settings and key in local_fs and local_fs[key] not in settings[key].split(os.pathsep):
            merged[key] = os.pathsep.join([settings[key], local_fs[key]])
    return merged


def _jvm_loads(class_name: str) -> bool:
    """Whether the running JVM (started by spark-submit) finds ``class_name``."""
    SparkContext._ensure_initialized()
    try:
        SparkContext._jvm.java.lang.Class.forName(class_name)
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
