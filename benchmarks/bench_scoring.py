"""Scoring throughput: the pandas-UDF path in Spark vs the bare model in one process, per core.

Same users and same model in the same run. The bare model runs with one torch thread (one core);
the UDF path runs on local[2] (Spark gives each Python worker one thread: OMP_NUM_THREADS =
spark.task.cpus). Prints users/s per core for several batch sizes and the ratio (goal >= 0.8).

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


def _model_folder() -> str:
    folder = Path(tempfile.mkdtemp(prefix="ltv-bench-score-"))
    torch.manual_seed(0)
    save_torch(
        folder, "model.pt", {"model": LTVTransformer(MODEL).state_dict(), "config": dataclasses.asdict(MODEL)}
    )
    scaling = FeatureScaling(FEATURE_COLUMNS, (0.0,) * len(FEATURE_COLUMNS), (1.0,) * len(FEATURE_COLUMNS))
    write_json(folder, "scaling.json", scaling.to_dict())
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
