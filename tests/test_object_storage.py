"""Every path beside the tables on s3a:// (ltv_spark.storage): models, the Petastorm cache and
reports read and written like a local folder; Horovod trains on a two-executor local-cluster with
the models root and the cache on the local S3 server, and the driver scores from that model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ltv_spark.artifacts import (
    UnsafeArtifact,
    latest_version_dir,
    load_torch,
    mark_complete,
    next_version_dir,
    read_json,
    save_torch,
    write_json,
)
from ltv_spark.feed import petastorm_converter, shard_batches
from ltv_spark.report import PLOTS, write_report
from ltv_spark.storage import Location
from tests.conftest import require_jvm_engine
from tests.s3_training import USERS
from tests.test_evaluation import two_model_tables
from tests.test_training import model_rows

ROOT = Path(__file__).resolve().parent.parent


class TouchesAFileWhenUnpickled:
    """What an attacker would put in a checkpoint: unpickling it calls Path.touch (here harmless)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def it_refuses_a_checkpoint_that_would_run_code_when_loaded(tmp_path):
    marker = tmp_path / "code-ran"
    save_torch(tmp_path, "model.pt", {"model": {}, "config": TouchesAFileWhenUnpickled(marker)})
    assert not marker.exists()  # saving did not run it either
    with pytest.raises(UnsafeArtifact, match="model.pt: refused to load"):
        load_torch(tmp_path, "model.pt")
    assert not marker.exists()


@pytest.fixture(params=["local", "s3a"])
def models_root(request, s3, tmp_path) -> str:
    return str(tmp_path / "models") if request.param == "local" else s3.uri(f"models-{tmp_path.name}")


def it_keeps_model_versions_the_same_way_in_a_folder_and_on_s3a(models_root):
    first = next_version_dir(models_root)
    save_torch(first, "model.pt", {"weights": [1.0, 2.0]})
    write_json(first, "scaling.json", {"columns": ["a"]})
    assert latest_version_dir(models_root) is None  # not complete yet
    mark_complete(first)
    second = next_version_dir(models_root)
    assert [first.name, second.name] == ["v0001", "v0002"]
    assert latest_version_dir(models_root) == first  # v0002 has not completed
    assert load_torch(first, "model.pt") == {"weights": [1.0, 2.0]}
    assert read_json(first, "scaling.json") == {"columns": ["a"]}
    assert load_torch(second, "model.pt") is None
    with pytest.raises(FileNotFoundError, match="scaling.json"):
        read_json(second, "scaling.json")
    mark_complete(second)
    assert latest_version_dir(models_root) == second
    (first / "cache").mkdir()
    Location.of(models_root).delete()
    assert not Location.of(models_root).exists()


def it_writes_the_evaluation_report_to_s3a(s3):
    page = write_report(s3.uri("reports/run-1"), "title", ["a note"], two_model_tables())
    assert page.uri == s3.uri("reports/run-1/index.html") and "a note" in page.read_text()
    keys = set(s3.keys("reports/run-1/"))
    assert {f"reports/run-1/{name}.png" for name in PLOTS} <= keys
    assert "reports/run-1/metrics.csv" in keys


def it_feeds_every_row_through_petastorm_from_a_cache_on_s3a(spark, s3):
    require_jvm_engine(spark)  # hadoop-aws comes with the cached jars
    rows = model_rows(spark, 40)
    converter = petastorm_converter(spark, rows, s3.uri("feed/cache"))
    try:
        assert converter.file_urls and all(u.startswith(s3.uri("feed/cache/")) for u in converter.file_urls)
        values = []
        for rank in (0, 1):
            with shard_batches(converter, 8, rank, 2, epochs=1) as batches:
                values += [v for batch in batches for v in batch["value"].tolist()]
        assert sorted(values) == pytest.approx(sorted(r["value"] for r in rows.collect()))
    finally:
        converter.delete()
    assert not [key for key in s3.keys("feed/cache/") if key.endswith(".parquet")]


def it_trains_with_horovod_on_two_executors_with_models_and_cache_on_s3a_then_scores(spark, s3, tmp_path):
    require_jvm_engine(spark)  # hadoop-aws comes with the cached jars
    models_root, cache_root = s3.uri("cluster/models"), s3.uri("cluster/petastorm")
    overrides = [
        "spark.master=local-cluster[2,1,1024]",
        "spark.shuffle_partitions=2",
        "spark.driver_memory=1g",
    ]
    overrides += ["spark.jvm_connector=true", *s3.spark_overrides(), *s3.executor_overrides()]
    overrides += ["spark.conf.spark.ui.enabled=false", f"spark.conf.spark.executorEnv.PYTHONPATH={ROOT}"]
    environment = {
        **os.environ,
        **s3.environment(),
        "PYTHONPATH": str(ROOT),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_WORKER_DIR": str(tmp_path / "work"),  # the executors' logs, not under pyspark/
    }
    child = subprocess.run(
        [sys.executable, "-m", "tests.s3_training", models_root, cache_root, "--", *overrides],
        capture_output=True, text=True, timeout=540, cwd=tmp_path, env=environment,
    )  # fmt: skip
    assert child.returncode == 0, _python_error(child.stderr)
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    assert outcome["executors"] == 2
    assert outcome["epochs"] == outcome["metrics_epochs"] == 2
    assert outcome["artifact_dir"] == f"{models_root}/v0001"
    assert all(url.startswith(f"{cache_root}/v0001/") for url in outcome["cache_files"])
    assert outcome["scored"] == USERS  # the driver's UDF loaded rank 0's model from S3
    written = {key.rsplit("/", 1)[-1] for key in s3.keys("cluster/models/v0001/")}
    assert {"model.pt", "checkpoint.pt", "metrics.json", "scaling.json", "COMPLETE"} <= written
    assert outcome["cache_left"] == []  # the converters' delete() removed their files from S3
    assert not any(tmp_path.rglob("*.pt"))  # nothing landed on a local disk


def _python_error(stderr: str) -> str:
    """The child's Python traceback, not the JVM's shutdown noise after it."""
    start = stderr.rfind("Traceback (most recent call last)")
    return stderr[start : start + 6000] if start >= 0 else stderr[-4000:]


def it_reads_a_local_file_uri_in_both_spellings_as_the_same_folder(tmp_path):
    assert Location.of(tmp_path.as_uri()) == Location.of(f"file:{tmp_path}") == Location.of(tmp_path)
