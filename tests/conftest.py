"""One local Spark session for the whole run, with both Delta engines; a fresh table folder per test.

The session carries Delta's JVM connector (the jars ``make`` caches), so every table-layer test runs
once per engine through the ``store`` fixture. On a machine where the jars could not be fetched the
JVM-engine cases are skipped with that reason; under CI they fail instead, so CI never passes
without having run them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from ltv_spark.config import Config, TablesConfig, load_config
from ltv_spark.jvm_jars import cached_jars, jars_dir, local_fs_jar
from ltv_spark.session import build_spark, delta_connector_loaded
from ltv_spark.tables import TableStore, open_store
from tests.helpers import tracking_overrides
from tests.s3_server import LocalS3

TEST_OVERRIDES = [
    "spark.master=local[2]",
    "spark.shuffle_partitions=2",
    "spark.driver_memory=4g",
    "spark.jvm_connector=true",
    # One session serves the whole run: cap what its status store keeps of finished work (every
    # SQL execution's plan by default up to 1,000 of them; the evaluation's plans are large). With
    # 2g and the defaults the driver spent its time in full GCs from test_metrics on (43% of the suite).
    "spark.conf.spark.sql.ui.retainedExecutions=50",
    "spark.conf.spark.ui.retainedJobs=100",
    "spark.conf.spark.ui.retainedStages=100",
]
ENGINES = ("delta-rs", "spark-delta")


@pytest.fixture(scope="session")
def s3() -> LocalS3:
    """The local S3 server, for the whole run (its state is per key: tests use their own prefixes).

    Its AWS environment is set before the Spark session starts, so that the JVM and every Python
    worker it forks (which score and read files through ltv_spark.storage) inherit it, as
    executors get it from ``spark.executorEnv`` on a cluster.
    """
    with LocalS3() as server, pytest.MonkeyPatch.context() as environment:
        for key, value in server.environment().items():
            environment.setenv(key, value)
        yield server


@pytest.fixture(scope="session")
def metastore(tmp_path_factory) -> Path:
    """A Hive metastore (embedded Derby) and warehouse for catalog tables, outside the checkout."""
    return tmp_path_factory.mktemp("metastore")


@pytest.fixture(scope="session")
def config(s3: LocalS3, metastore: Path) -> Config:
    catalog = [
        "spark.conf.spark.sql.catalogImplementation=hive",
        f"spark.conf.spark.sql.warehouse.dir={metastore / 'warehouse'}",
        f"spark.conf.spark.hadoop.javax.jdo.option.ConnectionURL="
        f"jdbc:derby:;databaseName={metastore / 'metastore_db'};create=true",
        f"spark.conf.spark.driver.extraJavaOptions=-Dderby.system.home={metastore}",
    ]
    tracking = tracking_overrides(metastore.parent / "mlflow")  # the run's MLflow store, outside the checkout
    return load_config("local", [*TEST_OVERRIDES, *s3.spark_overrides(), *catalog, *tracking])


@pytest.fixture(scope="session")
def spark(config: Config) -> SparkSession:
    if os.environ.get("CI") and not (cached_jars() and local_fs_jar().exists()):
        pytest.exit(
            f"CI: our jars or Delta's JVM connector are not in {jars_dir()}: run `make`", returncode=3
        )
    session = build_spark(config)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def require_jvm_engine(spark: SparkSession) -> None:
    """Skip (never under CI: see the ``spark`` fixture) where the JVM connector could not load."""
    if not delta_connector_loaded(spark):
        pytest.skip(f"Delta's JVM connector is not cached in {jars_dir()} (needs Maven)")


def open_engine(spark: SparkSession, engine: str, root: str) -> TableStore:
    """A store of the named engine on ``root``, opened as the jobs open theirs (``open_store``)."""
    if engine == "spark-delta":
        require_jvm_engine(spark)
    return open_store(spark, TablesConfig(engine=engine, root=root))


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


@pytest.fixture()
def store(spark: SparkSession, engine: str, tmp_path) -> TableStore:
    return open_engine(spark, engine, str(tmp_path / "warehouse"))
