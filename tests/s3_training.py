"""Horovod on a two-executor ``local-cluster`` with the models root and the Petastorm cache on
``s3a://``, then the driver scoring every user with the model rank 0 wrote there.

Run by tests/test_object_storage.py as ``python -m tests.s3_training <models_root> <cache_root>
-- <config overrides>``; prints one JSON line of what happened.
"""

from __future__ import annotations

import json
import sys

from pyspark.sql import functions as F

from ltv_spark.artifacts import next_version_dir, read_json
from ltv_spark.config import load_config
from ltv_spark.features import FEATURE_COLUMNS
from ltv_spark.feed import petastorm_converter, to_model_rows
from ltv_spark.launchers import launch
from ltv_spark.scaling import FeatureScaling
from ltv_spark.score import score_users
from ltv_spark.session import build_spark
from ltv_spark.storage import Location
from ltv_spark.train import TrainJob
from tests.test_scoring import MODEL, user_rows

USERS = 120


def main(models_root: str, cache_root: str, overrides: list[str]) -> None:
    spark = build_spark(load_config("local", overrides))
    spark.sparkContext.setLogLevel("ERROR")
    users = user_rows(spark, USERS).withColumn("net_value", F.col(FEATURE_COLUMNS[0]) * 2.0)
    scaling = FeatureScaling.fit(users, FEATURE_COLUMNS)
    folder = next_version_dir(models_root)
    cache = Location.of(cache_root) / folder.name
    train = petastorm_converter(spark, to_model_rows(users, scaling), cache)
    validation = petastorm_converter(spark, to_model_rows(users.limit(40), scaling), cache)
    job = TrainJob(
        model=MODEL,
        artifact_dir=str(folder),
        train_converter=train,
        validation_converter=validation,
        train_rows=len(train),
        validation_rows=len(validation),
        epochs=2,
        batch_size=16,
        learning_rate=5e-3,
        seed=3,
        patience=10,
        metadata={"scaling": scaling.to_dict(), "features": list(FEATURE_COLUMNS), "data_versions": {}},
    )
    result = launch(spark, "horovod", job, num_proc=2)
    outcome = {
        "artifact_dir": str(folder),
        "cache_files": train.file_urls,
        "epochs": len(result.history),
        "metrics_epochs": len(read_json(folder, "metrics.json")),
        "executors": spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1,
        "scored": score_users(users, str(folder), batch_size=16).filter(F.col("expected_ltv") >= 0).count(),
    }
    train.delete()
    validation.delete()
    outcome["cache_left"] = [p.name for p in cache.children()]
    print(json.dumps(outcome), flush=True)
    spark.stop()


if __name__ == "__main__":
    separator = sys.argv.index("--")
    main(*sys.argv[1:separator], sys.argv[separator + 1 :])
