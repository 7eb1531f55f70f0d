"""Scoring throughput: the Arrow UDF path in Spark vs the bare model in one process, per core.

Same users and same model in the same run. The bare model runs with one torch thread (one core);
the UDF path runs on local[2] (Spark gives each Python worker one thread: OMP_NUM_THREADS =
spark.task.cpus). Prints users/s per core for several batch sizes and the ratio (goal >= 0.9), each
side measured ``--repeats`` times in turn (the median, and the range: this machine's speed moves by
10-20% from one second to the next). Then where the UDF's time goes at the default batch size: the
model's own speed inside the Python workers (``LoadedModel.predict``, timed there) against the bare
model's, and the rest of the job (Arrow transfer, scheduling, the JVM's share of the cores).
Then the same model registered in MLflow (a SQLite store in a temporary folder): the project's UDF
loading the pyfunc from ``models:/`` against ``mlflow.pyfunc.spark_udf`` over the same version, at
the default batch size; and the UDF with reasons (``explain=True``) against without.

    .venv/bin/python -m benchmarks.bench_scoring --users 50000
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from pyspark.sql import functions as F

from benchmarks.common import machine
from ltv_spark.artifacts import save_torch, write_json
from ltv_spark.config import load_config
from ltv_spark.features import FEATURE_COLUMNS
from ltv_spark.model import LTVTransformer, ModelConfig
from ltv_spark.scaling import FeatureScaling
from ltv_spark.score import LoadedModel, loaded_model, model_batches, score_users
from ltv_spark.sequences import SESSION_VECTOR
from ltv_spark.session import build_spark

MODEL = ModelConfig(sequence_length=32, static_features=len(FEATURE_COLUMNS))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each side, median kept")
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
    print(f"{args.users:,} users; model {shape}; median of {args.repeats} runs per side (range)")
    print(f"{'batch':>6} {'udf users/s/core':>24} {'bare users/s/core':>24} {'ratio':>6}")
    torch.set_num_threads(1)
    model = LoadedModel.load(folder)
    score_users(rows, folder, args.batch_sizes[0]).count()  # warm-up: start Python workers, load model
    for batch_size in args.batch_sizes:
        udf, bare = _measure_in_turn(
            {
                "udf": lambda b=batch_size: score_users(rows, folder, b).count() / cores,
                "bare": lambda b=batch_size: _score_bare(model, frame, b),
            },
            args.repeats,
        )
        ratio = statistics.median(udf) / statistics.median(bare)
        print(f"{batch_size:>6} {_median_range(udf):>24} {_median_range(bare):>24} {ratio:>6.2f}")
    default_batch = load_config("local").score.batch_size
    _where_udf_time_goes(rows, folder, frame, model, default_batch, cores, args.repeats)
    _compare_explaining(rows, folder, default_batch, cores)
    _compare_with_spark_udf(spark, rows, folder, frame, cores)


def _measure_in_turn(sides: dict[str, Callable[[], float]], repeats: int) -> list[list[float]]:
    """Each side's rate (units per second), measured ``repeats`` times, the sides in turn so that a
    slow spell of the machine falls on both; each side returns the units it did."""
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, run in sides.items():
            started = time.perf_counter()
            units = run()
            rates[name].append(units / (time.perf_counter() - started))
    return list(rates.values())


def _median_range(rates: list[float]) -> str:
    return f"{statistics.median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"


def _score_bare(model: LoadedModel, frame: pd.DataFrame, batch_size: int) -> int:
    for start in range(0, len(frame), batch_size):
        model.score(frame.iloc[start : start + batch_size])
    return len(frame)


def _where_udf_time_goes(
    rows, folder: str, frame: pd.DataFrame, model: LoadedModel, batch_size: int, cores: int, repeats: int
) -> None:
    """The UDF's job split into the model's time inside the workers and the rest: the same batches
    as score_users, each timed around ``LoadedModel.predict`` in its Python worker."""

    def timed(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        worker_model, seconds, users = loaded_model(folder), 0.0, 0
        for batch in batches:
            for part in model_batches(batch, batch_size):
                started = time.perf_counter()
                worker_model.predict(part)
                seconds, users = seconds + time.perf_counter() - started, users + len(part)
        yield pa.RecordBatch.from_pydict({"users": [users], "seconds": [seconds]})

    job = rows.mapInArrow(timed, "users long, seconds double")
    job.collect()  # warm-up
    jobs, bare_rates = [], []
    for _ in range(repeats):  # the job and the bare model in turn
        started = time.perf_counter()
        parts = job.collect()
        jobs.append((time.perf_counter() - started, parts))
        started = time.perf_counter()
        bare_rates.append(_score_bare(model, frame, batch_size) / (time.perf_counter() - started))
    wall, parts = sorted(jobs, key=lambda job: job[0])[len(jobs) // 2]  # the median job
    users = sum(part["users"] for part in parts)
    model_seconds = sum(part["seconds"] for part in parts) / cores  # per core: the workers ran side by side
    inside = users / (model_seconds * cores)
    bare = statistics.median(bare_rates)
    print(f"where the UDF's time goes, batch {batch_size} (the median of {repeats} jobs):")
    print(f"  job                          {wall:>7.2f} s   {users / wall / cores:>8,.0f} users/s/core")
    print(f"  model inside the workers     {model_seconds:>7.2f} s   {inside:>8,.0f} users/s per worker")
    print(f"  the rest (transfer, tasks)   {wall - model_seconds:>7.2f} s")
    print(f"  bare model, this process     {len(frame) / bare:>7.2f} s   {bare:>8,.0f} users/s")
    print(f"  model inside / bare          {inside / bare:.2f}")


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
    """The registered model: the project's mapInArrow UDF vs MLflow's spark_udf, users/s per core."""
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
