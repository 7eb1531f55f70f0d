"""One local Spark session for the whole run; a fresh table folder per test."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from ltv_spark.config import Config, load_config
from ltv_spark.session import build_spark
from ltv_spark.tables import DeltaRsStore

TEST_OVERRIDES = ["spark.master=local[2]", "spark.shuffle_partitions=2", "spark.driver_memory=2g"]


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config("local", TEST_OVERRIDES)


@pytest.fixture(scope="session")
def spark(config: Config) -> SparkSession:
    session = build_spark(config)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture()
def store(spark: SparkSession, tmp_path) -> DeltaRsStore:
    return DeltaRsStore(spark, str(tmp_path / "warehouse"))
