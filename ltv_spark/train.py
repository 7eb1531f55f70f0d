"""The one training loop, run by every launcher (ltv_spark.launchers) under its backend.

Rank-0 side effects only (checkpoints, metrics, logs); every rank takes the same fixed number of
steps per epoch; metrics are averaged across ranks, so every rank takes the same early-stopping
decision. A checkpoint is written each epoch and a re-run resumes from it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ltv_spark.artifacts import load_torch, mark_complete, save_torch, write_json
from ltv_spark.config import TrainConfig
from ltv_spark.feed import shard_batches, steps_per_epoch
from ltv_spark.metrics import normalized_gini
from ltv_spark.model import ModelConfig, build_model, category_loss, ziln_part
from ltv_spark.ziln import expected_value, ziln_loss

LOG = logging.getLogger("ltv_spark.train")
WARMUP_SHARE = 0.05  # of all steps, for the cosine schedule
FINAL_LR_SHARE = 0.1  # the cosine schedule ends at a tenth of the learning rate (as nanoGPT)


@dataclass
class TrainJob:
    """Everything a training process needs; pickled to Spark tasks / torchrun processes."""

    model: ModelConfig
    artifact_dir: str
    train_converter: Any  # petastorm SparkDatasetConverter (picklable)
    validation_converter: Any
    train_rows: int
    validation_rows: int
    # the defaults are train.*'s (TrainConfig), so a job built by hand trains as `ltv train` does
    epochs: int = TrainConfig.epochs
    batch_size: int = TrainConfig.batch_size
    learning_rate: float = TrainConfig.learning_rate
    lr_schedule: str = TrainConfig.lr_schedule  # or "cosine": see learning_rate_factor
    seed: int = TrainConfig.seed
    patience: int = TrainConfig.patience
    select_by: str = TrainConfig.select_by  # or "validation_loss": which epoch's weights are kept
    loss_tolerance: float = TrainConfig.loss_tolerance  # see kept_epoch
    metadata: dict[str, Any] = field(default_factory=dict)  # scaling, features, data versions, config
    epoch_log: Any = None  # an ltv_spark.tracking.EpochLog: rank 0 logs each epoch to the MLflow run


@dataclass
class FitResult:
    """What one rank returns: the per-epoch metrics and a digest of its final weights."""

    history: list[dict]
    weights_digest: str


def fit(job: TrainJob, backend, on_epoch_end: Callable[[int, dict], None] | None = None) -> FitResult:
    """Train (or resume) ``job`` under ``backend``."""
    torch.manual_seed(job.seed)
    np.random.seed(job.seed)
    model = build_model(job.model).to(backend.device)
    base_lr = job.learning_rate * backend.size  # scaled by world
    optimizer = torch.optim.Adam(model.parameters(), lr=base_lr)
    checkpoint = load_torch(job.artifact_dir, "checkpoint.pt")
    history: list[dict] = []
    candidates: dict[int, dict] = {}  # epoch -> weights of the epochs that may still be kept (rank 0)
    if checkpoint is not None:
        model.load_state_dict({k: v.to(backend.device) for k, v in checkpoint["model"].items()})
        optimizer.load_state_dict(checkpoint["optimizer"])
        history = checkpoint["history"]
        candidates = checkpoint.get("candidates", {})
    if backend.rank == 0:
        write_json(job.artifact_dir, "model_config.json", asdict(job.model))
        for name, value in job.metadata.items():
            write_json(job.artifact_dir, f"{name}.json", value)
    model, optimizer = backend.prepare(model, optimizer)
    steps = steps_per_epoch(job.train_rows, job.batch_size, backend.size)
    with shard_batches(job.train_converter, job.batch_size, backend.rank, backend.size) as batches:
        for epoch in range(len(history), job.epochs):
            if stopped_early(history, job.patience):
                break
            started = time.perf_counter()
            schedule = EpochSchedule(job.lr_schedule, base_lr, epoch, steps, job.epochs)
            train_loss = backend.average(
                train_epoch(model, optimizer, batches, steps, backend.device, schedule)
            )
            validation = _validate(model, job, backend)
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                **validation,
                "seconds": time.perf_counter() - started,
                "samples": steps * job.batch_size * backend.size,
                "learning_rate": schedule.rate(steps - 1),
            }
            history.append(record)
            if backend.rank == 0:
                candidates = _save_epoch(job, model, optimizer, history, candidates)
                LOG.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in record.items()})
                if job.epoch_log is not None:
                    job.epoch_log.log(epoch, record)
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
    if backend.rank == 0:
        write_json(job.artifact_dir, "metrics.json", history)
        mark_complete(job.artifact_dir)
    return FitResult(history, weights_digest(model))


def weights_digest(model: torch.nn.Module) -> str:
    """A hash of every parameter's bytes: equal across ranks exactly when their weights are equal."""
    plain = model.module if hasattr(model, "module") else model
    digest = hashlib.sha256()
    for name, tensor in sorted(plain.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def learning_rate_factor(schedule: str, step: int, total_steps: int) -> float:
    """The share of the base learning rate at ``step`` (0-based) of ``total_steps``.

    constant: 1. cosine: a linear warm-up over the first WARMUP_SHARE of the steps, then a cosine
    from 1 down to FINAL_LR_SHARE at the last step. A function of the step alone, so a resumed
    run continues the same schedule without saving any scheduler state.
    """
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"unknown lr_schedule {schedule!r}: expected 'constant' or 'cosine'")
    warmup = max(1, round(WARMUP_SHARE * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - 1 - warmup)
    return FINAL_LR_SHARE + (1 - FINAL_LR_SHARE) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


@dataclass(frozen=True)
class EpochSchedule:
    """The learning rate of each step of one epoch."""

    name: str
    base_lr: float
    epoch: int
    steps: int
    epochs: int

    def rate(self, step: int) -> float:
        overall = self.epoch * self.steps + step
        return self.base_lr * learning_rate_factor(self.name, overall, self.epochs * self.steps)


def train_epoch(
    model, optimizer, batches, steps: int, device: torch.device, schedule: EpochSchedule
) -> float:
    """``steps`` optimizer steps over ``batches`` (an iterator of dicts of tensors); the mean loss."""
    model.train()
    total = 0.0
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = schedule.rate(step)
        batch = _to(next(batches), device)
        _, loss = model(
            batch["sequence"],
            batch["mask"],
            batch["static"],
            batch["value"],
            batch.get("categories"),
            history=batch.get("history"),
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / steps


@torch.no_grad()
def _validate(model, job: TrainJob, backend) -> dict[str, float]:
    """The ZILN loss (what selects the epoch: the value's distribution, cross-sell head or not),
    normalized Gini and, with a cross-sell head, its loss, on this rank's validation shard,
    averaged over ranks."""
    model.eval()
    config = job.model
    losses, category_losses, predictions, truths = [], [], [], []
    with shard_batches(
        job.validation_converter, job.batch_size, backend.rank, backend.size, epochs=1
    ) as batches:
        for batch in batches:
            batch = _to(batch, backend.device)
            outputs, _ = model(
                batch["sequence"], batch["mask"], batch["static"], history=batch.get("history")
            )
            value_outputs = ziln_part(outputs, config)
            losses.append(ziln_loss(value_outputs, batch["value"]).item() * len(batch["value"]))
            if config.categories:
                category = category_loss(outputs, config, batch["categories"])
                category_losses.append(category.item() * len(batch["value"]))
            predictions.append(expected_value(value_outputs).cpu().numpy())
            truths.append(batch["value"].cpu().numpy())
    rows = sum(len(t) for t in truths)
    loss = sum(losses) / max(rows, 1)
    gini = normalized_gini(np.concatenate(truths), np.concatenate(predictions)) if rows else float("nan")
    metrics = {
        "validation_loss": backend.average(loss),
        "validation_gini": backend.average(float(np.nan_to_num(gini))),
    }
    if config.categories:
        metrics["validation_category_loss"] = backend.average(sum(category_losses) / max(rows, 1))
    return metrics


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}


def kept_epoch(history: list[dict], select_by: str, loss_tolerance: float) -> dict:
    """The epoch whose weights are kept: the best validation Gini among the epochs whose validation
    loss is within ``loss_tolerance`` (nats per user) of the best; by the loss alone under
    ``select_by="validation_loss"``.

    The Gini judges only the order; the loss the whole ZILN distribution, its spread and so the
    expected value p * exp(mu + sigma^2 / 2) included. Selecting on the Gini alone kept the CDNOW
    MLP's epoch 0, whose spread was untrained (0.57 nats worse than its best epoch, totals 10^11 x
    the truth); the tolerance rules such epochs out while leaving the Gini to choose among epochs
    that fit the distribution about equally well.
    """
    eligible = eligible_epochs(history, select_by, loss_tolerance)
    return max(eligible, key=lambda h: h["validation_gini"])


def eligible_epochs(history: list[dict], select_by: str, loss_tolerance: float) -> list[dict]:
    """The epochs ``kept_epoch`` chooses among; a later epoch can only remove some (the best loss falls)."""
    tolerance = 0.0 if select_by == "validation_loss" else loss_tolerance
    best_loss = min(h["validation_loss"] for h in history)
    return [h for h in history if h["validation_loss"] <= best_loss + tolerance]


def stopped_early(history: list[dict], patience: int) -> bool:
    """The last ``patience`` epochs improved neither the best validation loss nor the best Gini.

    Both, because either can still change the kept epoch, and because the two peak at different
    times: the ZILN's spread is learned first (the loss falls while the Gini dips), the order later
    (the Gini rises while the loss drifts up).
    """
    if len(history) <= patience:
        return False
    earlier, recent = history[:-patience], history[-patience:]
    loss_improved = min(h["validation_loss"] for h in recent) < min(h["validation_loss"] for h in earlier)
    gini_improved = max(h["validation_gini"] for h in recent) > max(h["validation_gini"] for h in earlier)
    return not (loss_improved or gini_improved)


def _save_epoch(job: TrainJob, model, optimizer, history: list[dict], candidates: dict) -> dict:
    """Save the resumable state, and the kept epoch's weights as model.pt; the candidates now.

    The weights of every epoch that may still be kept travel in the checkpoint, since a later,
    better loss can rule out the epoch kept so far and bring back an earlier one.
    """
    plain = model.module if hasattr(model, "module") else model  # DDP wraps the model
    weights = {name: tensor.detach().cpu().clone() for name, tensor in plain.state_dict().items()}
    candidates = {**candidates, history[-1]["epoch"]: weights}
    eligible = eligible_epochs(history, job.select_by, job.loss_tolerance)
    candidates = {h["epoch"]: candidates[h["epoch"]] for h in eligible if h["epoch"] in candidates}
    state = {"model": plain.state_dict(), "optimizer": optimizer.state_dict(), "history": history}
    save_torch(job.artifact_dir, "checkpoint.pt", {**state, "candidates": candidates})
    kept = kept_epoch(history, job.select_by, job.loss_tolerance)["epoch"]
    if kept in candidates:  # not when resumed from a checkpoint older than the candidates
        save_torch(job.artifact_dir, "model.pt", {"model": candidates[kept], "config": asdict(job.model)})
    write_json(job.artifact_dir, "metrics.json", history)
    return candidates
