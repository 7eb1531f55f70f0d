"""describe the JVM jars: fetched once by make, refused clearly where they are missing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ltv_spark.config import load_config
from ltv_spark.jvm_jars import ARTIFACTS, LOCAL_FS_CLASS, cached_jars, jars_dir
from ltv_spark.session import build_spark, with_local_fs


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


def it_writes_local_folders_through_our_file_system_with_the_permissions_hadoop_asks_for(spark, tmp_path):
    """Hadoop's own runs a chmod process per file and folder (bench_ingest: the cost of a write
    partitioned by day); ours sets the same bits through java.nio."""
    jvm = spark._jvm
    conf = jvm.org.apache.hadoop.conf.Configuration(spark._jsc.hadoopConfiguration())
    conf.set("fs.permissions.umask-mode", "027")  # not the process's umask (022): Hadoop's bits must win
    root = jvm.org.apache.hadoop.fs.Path(str(tmp_path))
    fs = jvm.org.apache.hadoop.fs.FileSystem.newInstance(root.toUri(), conf)
    assert fs.getClass().getName() == LOCAL_FS_CLASS
    fs.mkdirs(jvm.org.apache.hadoop.fs.Path(str(tmp_path / "a" / "b")))
    fs.create(jvm.org.apache.hadoop.fs.Path(str(tmp_path / "a" / "b" / "part.parquet"))).close()
    fs.close()
    assert oct((tmp_path / "a" / "b").stat().st_mode & 0o777) == oct(0o750)
    assert oct((tmp_path / "a" / "b" / "part.parquet").stat().st_mode & 0o777) == oct(0o640)
    assert (tmp_path / "a" / "b" / ".part.parquet.crc").exists()  # still Hadoop's checksummed local FS

    spark.range(4).selectExpr("id", "id % 2 AS day").write.partitionBy("day").parquet(str(tmp_path / "t"))
    assert sorted(r.id for r in spark.read.parquet(str(tmp_path / "t")).collect()) == [0, 1, 2, 3]


def it_appends_our_file_system_to_a_class_path_the_configuration_sets():
    """A local config with its own extraClassPath must not drop our jar while fs.file.impl names it."""
    ours = {
        "spark.driver.extraClassPath": "/cache/nio-local-fs.jar",
        "spark.executor.extraClassPath": "/cache/nio-local-fs.jar",
        "spark.hadoop.fs.file.impl": LOCAL_FS_CLASS,
    }
    theirs = {"spark.driver.extraClassPath": "/opt/jdbc.jar", "spark.sql.shuffle.partitions": "4"}
    merged = with_local_fs(theirs, ours)
    both = os.pathsep.join(["/opt/jdbc.jar", "/cache/nio-local-fs.jar"])
    assert merged["spark.driver.extraClassPath"] == both
    assert merged["spark.executor.extraClassPath"] == "/cache/nio-local-fs.jar"
    assert merged["spark.hadoop.fs.file.impl"] == LOCAL_FS_CLASS
    assert merged["spark.sql.shuffle.partitions"] == "4"
    assert with_local_fs(merged, ours) == merged  # already there: not appended twice
    assert with_local_fs(theirs, {}) == theirs  # not built: the configuration as it is
