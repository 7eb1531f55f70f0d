"""What a training process needs from its launcher: rank, size, and the collective operations.

One training loop (ltv_spark.train) runs unchanged under three backends: a single process,
Horovod (Gloo on CPU, NCCL on GPU), and torch.distributed DDP (what TorchDistributor starts).
"""

from __future__ import annotations

import os

import torch
from torch import nn


class SingleProcess:
    """The local launcher: rank 0 of 1, every collective a no-op."""

    rank = 0
    size = 1
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")

    def prepare(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        return model, optimizer

    def average(self, value: float) -> float:
        return value

    def broadcast_flag(self, flag: bool) -> bool:
        return flag

    def close(self) -> None:
        pass


class HorovodBackend:
    """Horovod: DistributedOptimizer, initial parameters and optimizer state broadcast from rank 0."""

    def __init__(self) -> None:
        import horovod.torch as hvd

        hvd.init()
        self._hvd = hvd
        self.rank = hvd.rank()
        self.size = hvd.size()
        self.device = _local_device(hvd.local_rank())

    def prepare(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        hvd = self._hvd
        optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters())
        hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        hvd.broadcast_optimizer_state(optimizer, root_rank=0)
        return model, optimizer

    def average(self, value: float) -> float:
        return float(self._hvd.allreduce(torch.tensor(value, dtype=torch.float64), name="metric").item())

    def broadcast_flag(self, flag: bool) -> bool:
        return bool(self._hvd.broadcast_object(flag, root_rank=0))

    def close(self) -> None:
        self._hvd.shutdown()


class TorchDistributedBackend:
    """torch.distributed (gloo, or nccl on GPU) with DDP; the process group is destroyed on close."""

    def __init__(self) -> None:
        import torch.distributed as dist

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend)
        self._dist = dist
        self.rank = dist.get_rank()
        self.size = dist.get_world_size()
        self.device = _local_device(int(os.environ.get("LOCAL_RANK", "0")))

    def prepare(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        return ddp, optimizer  # DDP shares the model's parameters: the optimizer stays valid

    def average(self, value: float) -> float:
        tensor = torch.tensor(value, dtype=torch.float64)
        self._dist.all_reduce(tensor)
        return float(tensor.item()) / self.size

    def broadcast_flag(self, flag: bool) -> bool:
        box = [flag]
        self._dist.broadcast_object_list(box, src=0)
        return bool(box[0])

    def close(self) -> None:
        if self._dist.is_initialized():
            self._dist.destroy_process_group()


def _local_device(local_rank: int) -> torch.device:
    """This process's GPU when the machine has them (one per local rank), else the CPU."""
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")
