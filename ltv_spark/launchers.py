"""Three ways to run ltv_spark.train.fit: one process, Horovod on Spark tasks, TorchDistributor."""

from __future__ import annotations

import functools

from pyspark.sql import SparkSession

from ltv_spark.distributed import HorovodBackend, SingleProcess, TorchDistributedBackend
from ltv_spark.train import FitResult, TrainJob, fit

LAUNCHERS = ("local", "horovod", "torch-distributor")


class NotEnoughTaskSlots(RuntimeError):
    """Fewer free Spark task slots than training processes: Horovod would wait out its start timeout."""


class RanksDiverged(RuntimeError):
    """Ranks ended data-parallel training with different weights: the collectives did not work."""


def launch(spark: SparkSession, launcher: str, job: TrainJob, num_proc: int = 1) -> FitResult:
    """Train ``job`` with ``launcher``; returns rank 0's result."""
    if launcher == "local":
        return fit(job, SingleProcess())
    check_free_slots(spark, num_proc)
    if launcher == "horovod":
        import horovod.spark

        results = horovod.spark.run(
            functools.partial(_train_under, HorovodBackend),
            args=(job,),
            num_proc=num_proc,
            use_gloo=True,
            verbose=0,
        )
        digests = {result.weights_digest for result in results}
        if len(digests) != 1:
            raise RanksDiverged(f"{len(results)} Horovod ranks ended with {len(digests)} different weights")
        return results[0]
    if launcher == "torch-distributor":
        from pyspark.ml.torch.distributor import TorchDistributor

        local = spark.sparkContext.master.startswith("local")
        distributor = TorchDistributor(
            num_processes=num_proc, local_mode=local, use_gpu=_executors_have_gpu(spark)
        )
        return distributor.run(functools.partial(_train_under, TorchDistributedBackend), job)
    raise ValueError(f"unknown launcher {launcher!r}: expected one of {', '.join(LAUNCHERS)}")


def check_free_slots(spark: SparkSession, num_proc: int) -> None:
    """Refuse before starting when fewer than ``num_proc`` task slots are free right now."""
    context = spark.sparkContext
    tracker = context.statusTracker()
    busy = 0
    for stage_id in tracker.getActiveStageIds():
        info = tracker.getStageInfo(stage_id)
        busy += info.numActiveTasks if info else 0
    slots = context.defaultParallelism
    if slots - busy < num_proc:
        raise NotEnoughTaskSlots(
            f"{num_proc} training processes need {num_proc} free task slots at once, but the cluster has "
            f"{slots} slots with {busy} busy: ask for fewer processes (--num-proc) or more executor cores"
        )


def _executors_have_gpu(spark: SparkSession) -> bool:
    return spark.conf.get("spark.executor.resource.gpu.amount", "0") not in ("0", "")


def _train_under(backend_type: type, job: TrainJob) -> FitResult:
    """The body of every training process: start the backend, fit, always close the backend."""
    backend = backend_type()
    try:
        return fit(job, backend)
    finally:
        backend.close()
