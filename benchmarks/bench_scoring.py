"""Scoring throughput: the pandas-UDF path in Spark vs the bare model in one process, per core.

Same users and same model in the same run. The bare model runs with one torch thread (one core);
the UDF path runs on local[2] (Spark gives each Python worker one thread: OMP_NUM_THREADS =
spark.task.cpus). Prints users/s per core for several batch sizes and the ratio (goal >= 0.8).
Then the same model registered in MLflow (a SQLite store in a temporary folder): the project's UDF
loading the pyfunc from ``models:/`` against ``mlflow.pyfunc.spark_udf`` over the same version, at
the default batch size; and the UDF with reasons (``explain=True``) against without.

    .venv/bin/python -m benchmarks.bench_scoring --users 50000
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from pyspark.sql import functions as F

from benchmarks.common import machine
from ltv_spark.artifacts import save_torch, write_json
from ltv_spark.config import load_config
from ltv_spark.features import FEATURE_COLUMNS
from ltv_spark.model import LTVTransformer, ModelConfig
from ltv_spark.scaling import FeatureScaling
from ltv_spark.score import LoadedModel, score_users
from ltv_spark.sequences import SESSION_VECTOR
from ltv_spark.session import build_spark

MODEL = ModelConfig(sequence_length=32, static_features=len(FEATURE_COLUMNS))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024, 4096])
    args = parser.parse_args()
    spark = build_spark(load_config("local", ["spark.master=local[2]"]))
    spark.sparkContext.setLogLevel("ERROR")
    cores = spark.sparkContext.defaultParallelism
    folder = _model_folder()
    rows = _rows(spark, args.users).cache()
    rows.count()
    frame = rows.toPandas()  # the bare model's input: the same users, in this process
    print(f"machine: {machine()}")
    shape = f"d_model {MODEL.d_model}, {MODEL.n_layers} layers, {MODEL.sequence_length} sessions"
    print(f"{args.users:,} users; model {shape}")
    print(f"{'batch':>6} {'udf users/s/core':>17} {'bare users/s/core':>18} {'ratio':>6}")
    torch.set_num_threads(1)
    model = LoadedModel.load(folder)
    score_users(rows, folder, args.batch_sizes[0]).count()  # warm-up: start Python workers, load model
    for batch_size in args.batch_sizes:
        started = time.perf_counter()
        scored = score_users(rows, folder, batch_size).count()
        udf = scored / (time.perf_counter() - started) / cores
        started = time.perf_counter()
        for start in range(0, len(frame), batch_size):
            model.score(frame.iloc[start : start + batch_size])
        bare = len(frame) / (time.perf_counter() - started)
        print(f"{batch_size:>6} {udf:>17,.0f} {bare:>18,.0f} {udf / bare:>6.2f}")
    _compare_explaining(rows, folder, load_config("local").score.batch_size, cores)
    _compare_with_spark_udf(spark, rows, folder, frame, cores)


def _compare_explaining(rows, folder: str, batch_size: int, cores: int) -> None:
    """What the reasons cost (ltv_spark.explain): the UDF with ``explain`` against without, same
    users, default batch size, users/s per core."""
    speeds = {}
    for explain in (False, True):
        score_users(rows, folder, batch_size, explain=explain).count()  # warm-up
        started = time.perf_counter()
        users = score_users(rows, folder, batch_size, explain=explain).count()
        speeds[explain] = users / (time.perf_counter() - started) / cores
    print(f"reasons (integrated gradients), batch {batch_size}:")
    print(f"  scores only          {speeds[False]:>10,.0f} users/s/core")
    print(f"  scores with reasons  {speeds[True]:>10,.0f} users/s/core")
    print(f"  ratio with / without {speeds[True] / speeds[False]:.2f}")


def _compare_with_spark_udf(spark, rows, folder: str, frame, cores: int) -> None:
    """The registered model: the project's mapInPandas UDF vs MLflow's spark_udf, users/s per core."""
    import mlflow

    from ltv_spark.config import TrackingConfig
    from ltv_spark.registry import register_folder, version_uri
    from ltv_spark.score import PREDICTION_COLUMNS
    from ltv_spark.tracking import tracked_run

    store = Path(tempfile.mkdtemp(prefix="ltv-bench-mlflow-"))
    settings = TrackingConfig(f"sqlite:///{store / 'mlflow.db'}", artifact_root=str(store / "artifacts"))
    with tracked_run(settings, "bench_scoring"):
        version = register_folder(folder, settings, frame.drop(columns="user_id").head(5))
    uri = version_uri(settings.registered_model, version)
    batch_size = load_config("local").score.batch_size
    model = mlflow.pyfunc.load_model(uri)
    inputs = model.metadata.get_input_schema().input_names()
    result_type = ", ".join(f"{c} double" for c in PREDICTION_COLUMNS)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))  # spark_udf's batch
    theirs = mlflow.pyfunc.spark_udf(spark, uri, result_type=result_type, env_manager="local")
    paths = {
        "project UDF (models:/)": lambda: score_users(rows, uri, batch_size).count(),
        "mlflow spark_udf": lambda: _count_scored(rows.select(theirs(*inputs).alias("s")).select("s.*")),
    }
    speeds = {}
    for name, run in paths.items():
        run()  # warm-up: workers started, model loaded
        started = time.perf_counter()
        users = run()
        speeds[name] = users / (time.perf_counter() - started) / cores
    print(f"registered model {uri}, batch {batch_size}:")
    for name, speed in speeds.items():
        print(f"  {name:<24} {speed:>10,.0f} users/s/core")
    ours, mlflows = speeds.values()
    print(f"  ratio project / spark_udf {ours / mlflows:.2f}")


def _count_scored(scored) -> int:
    """Rows scored, summing a score so that the optimizer cannot prune the UDF away."""
    return scored.agg(F.sum("expected_ltv"), F.count(F.lit(1))).first()[1]


def _model_folder() -> str:
    folder = Path(tempfile.mkdtemp(prefix="ltv-bench-score-"))
    torch.manual_seed(0)
    save_torch(
        folder, "model.pt", {"model": LTVTransformer(MODEL).state_dict(), "config": dataclasses.asdict(MODEL)}
    )
    scaling = FeatureScaling(FEATURE_COLUMNS, (0.0,) * len(FEATURE_COLUMNS), (1.0,) * len(FEATURE_COLUMNS))
    write_json(folder, "scaling.json", scaling.to_dict())
    write_json(folder, "data_versions.json", {})  # no tables behind it: registered with empty lineage
    return str(folder)


def _rows(spark, users: int):
    rng = np.random.default_rng(0)
    width = MODEL.sequence_length * len(SESSION_VECTOR)
    data = [
        (
            f"u{i:08d}",
            *rng.gamma(1.0, 3.0, len(FEATURE_COLUMNS)).tolist(),
            rng.normal(size=width).astype(np.float32).tolist(),
            [1.0] * MODEL.sequence_length,
        )
        for i in range(users)
    ]
    schema = (
        "user_id string, "
        + ", ".join(f"{c} double" for c in FEATURE_COLUMNS)
        + ", sequence array<float>, mask array<float>"
    )
    return spark.createDataFrame(data, schema).repartition(max(2, os.cpu_count() or 2))


if __name__ == "__main__":
    main()
