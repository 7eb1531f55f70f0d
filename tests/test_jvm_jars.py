"""describe the JVM jars: fetched once by make, refused clearly where they are missing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ltv_spark.config import load_config
from ltv_spark.jvm_jars import ARTIFACTS, cached_jars, jars_dir
from ltv_spark.session import build_spark


def it_lists_the_cached_connector_and_s3_jars():
    names = {jar.name for jar in cached_jars()}
    assert {"delta-spark_2.12-3.3.3.jar", "delta-storage-3.3.3.jar", "hadoop-aws-3.3.4.jar"} <= names
    assert any(name.startswith("aws-java-sdk-bundle-") for name in names)
    assert not any(name.startswith(("scala-library", "antlr4-runtime")) for name in names)  # pyspark's own
    assert len(ARTIFACTS) == 2 and str(jars_dir()).startswith(os.path.expanduser("~/.cache/ltv_spark/jars"))


def it_says_once_without_maven_that_tables_run_on_delta_rs(tmp_path):
    environment = {**os.environ, "LTV_JARS_DIR": str(tmp_path / "jars"), "PATH": "/nonexistent"}
    done = subprocess.run(
        [sys.executable, "-m", "ltv_spark.jvm_jars"], env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0  # make goes on: delta-rs needs no jars
    assert done.stderr.count("tables will run on delta-rs only") == 1 and "mvn not found" in done.stderr
    assert not (tmp_path / "jars").exists()


def it_refuses_the_jvm_engine_before_starting_spark_when_the_jars_are_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("LTV_JARS_DIR", str(tmp_path / "empty"))
    config = load_config("local", ["tables.engine=spark-delta"])
    with pytest.raises(RuntimeError, match=r"not cached in .*empty.*tables.engine=spark-delta cannot run"):
        build_spark(config)
