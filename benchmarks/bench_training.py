"""Training throughput: the Petastorm feed vs the same tensors in memory; Horovod x2 vs one process.

Synthetic rows with the demo's shapes (32 sessions x 11 numbers, 20 static features), in the same
run: (1) reading batches only, Petastorm vs in-memory tensors; (2) the training loop itself
(ltv_spark.train.train_epoch) fed by Petastorm vs the same rows held in memory, for the default
model and for the previous one (dropout 0.1, Petastorm's per-row loader), so that the
speed-up is measured in the same run; (3) training epochs with the local launcher vs Horovod with
2 processes over Spark tasks. Prints samples/s and ratios.

    .venv/bin/python -m benchmarks.bench_training --rows 20000
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time

import numpy as np
import torch

from benchmarks.common import machine
from ltv_spark.config import load_config
from ltv_spark.distributed import SingleProcess
from ltv_spark.feed import petastorm_converter, shard_batches
from ltv_spark.launchers import launch
from ltv_spark.model import ModelConfig, build_model
from ltv_spark.session import build_spark
from ltv_spark.train import EpochSchedule, TrainJob, fit, train_epoch

MODEL = ModelConfig(sequence_length=32, static_features=20)
PREVIOUS_MODEL = ModelConfig(sequence_length=32, static_features=20, dropout=0.1)
BATCH = 256


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    spark = build_spark(load_config("local", ["spark.master=local[2]"]))
    spark.sparkContext.setLogLevel("ERROR")
    print(f"machine: {machine()}; torch threads {torch.get_num_threads()}")
    print(f"{args.rows:,} rows, batch {BATCH}")
    cache = tempfile.mkdtemp(prefix="ltv-bench-train-")
    frame = _rows(spark, args.rows)
    train, validation = (
        petastorm_converter(spark, frame, cache),
        petastorm_converter(spark, frame.limit(2000), cache),
    )
    try:
        feed = _petastorm_rate(train, args.rows)
        memory = _memory_rate(args.rows)
        print(
            f"feed only  petastorm {feed:>9,.0f}/s   in memory {memory:>10,.0f}/s  ratio {feed / memory:.3f}"
        )
        _compare_loops(train)
        job = TrainJob(
            MODEL,
            tempfile.mkdtemp(),
            train,
            validation,
            len(train),
            len(validation),
            epochs=args.epochs,
            batch_size=BATCH,
            patience=99,
        )
        one = _training_rate(fit(job, SingleProcess()).history)
        job.artifact_dir = tempfile.mkdtemp()
        two = _training_rate(launch(spark, "horovod", job, num_proc=2).history)
        print(f"training   1 process {one:>9,.0f}/s   horovod x2 {two:>9,.0f}/s  ratio {two / one:.2f}")
    finally:
        train.delete()
        validation.delete()


def _rows(spark, rows: int):
    rng = np.random.default_rng(0)
    width = MODEL.sequence_length * MODEL.session_features
    static = rng.normal(size=(rows, MODEL.static_features)).astype(np.float32)
    data = [
        (
            static[i].tolist(),
            rng.normal(size=width).astype(np.float32).tolist(),
            [1.0] * MODEL.sequence_length,
            float(np.exp(2 + static[i, 1])) if static[i, 0] > 0 else 0.0,
        )
        for i in range(rows)
    ]
    schema = "static array<float>, sequence array<float>, mask array<float>, value float"
    return spark.createDataFrame(data, schema).repartition(4)


def _petastorm_rate(converter, rows: int) -> float:
    started, seen = time.perf_counter(), 0
    with shard_batches(converter, BATCH, 0, 1, epochs=1) as batches:
        for batch in batches:
            seen += len(batch["value"])
    assert seen == rows, (seen, rows)
    return seen / (time.perf_counter() - started)


def _memory_rate(rows: int) -> float:
    tensors = {
        "static": torch.randn(rows, MODEL.static_features),
        "sequence": torch.randn(rows, MODEL.sequence_length * MODEL.session_features),
        "mask": torch.ones(rows, MODEL.sequence_length),
        "value": torch.rand(rows),
    }
    started, seen = time.perf_counter(), 0
    for start in range(0, rows, BATCH):
        batch = {k: v[start : start + BATCH].clone() for k, v in tensors.items()}
        seen += len(batch["value"])
    return seen / (time.perf_counter() - started)


def _compare_loops(converter) -> None:
    """The training loop fed by Petastorm vs the same rows in memory; today's model and the previous."""
    with shard_batches(converter, BATCH, 0, 1, epochs=1) as batches:
        in_memory = list(batches)  # the same rows, in the same batches, read once
    steps = len(in_memory)
    for label, config in (("previous", PREVIOUS_MODEL), ("default", MODEL)):
        memory = _loop_rate(config, itertools.cycle(in_memory), steps)
        with shard_batches(converter, BATCH, 0, 1) as batches:
            fed = _loop_rate(config, batches, steps)
        print(
            f"loop ({label:>8} model) fed by petastorm {fed:>7,.0f}/s   in memory {memory:>7,.0f}/s"
            f"  ratio {fed / memory:.3f}"
        )
    after = fed  # the default model's, fed by Petastorm (the last of the loop)
    with _row_wise_batches(converter) as loader:
        before = _loop_rate(PREVIOUS_MODEL, iter(loader), steps)
    print(
        f"loop fed by petastorm: previous model + per-row loader {before:>7,.0f}/s   "
        f"default model + batched loader {after:>7,.0f}/s  speed-up {after / before:.2f}x"
    )


def _loop_rate(config: ModelConfig, batches, steps: int) -> float:
    """Samples/s of one epoch of ``train_epoch`` (after one warm-up step) over ``batches``."""
    torch.manual_seed(0)
    model = build_model(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = EpochSchedule("constant", 1e-3, 0, steps, 1)
    device = torch.device("cpu")
    train_epoch(model, optimizer, batches, 1, device, schedule)
    started = time.perf_counter()
    train_epoch(model, optimizer, batches, steps, device, schedule)
    return steps * BATCH / (time.perf_counter() - started)


def _row_wise_batches(converter):
    """Petastorm's default torch loader (a dict per row, collated), which ltv_spark used before."""
    return converter.make_torch_dataloader(
        batch_size=BATCH, num_epochs=None, workers_count=1, shuffle_row_groups=False
    )


def _training_rate(history: list[dict]) -> float:
    return sum(h["samples"] for h in history) / sum(h["seconds"] for h in history)


if __name__ == "__main__":
    main()
