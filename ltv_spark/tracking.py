"""MLflow tracking: every training, retraining and evaluation is a run.

A run carries the resolved config as params (``train.epochs``, ``features.horizon_days``, ...),
the Delta versions and cutoffs of the data it read as tags, metrics per epoch (logged by rank 0
alone, from whichever process it runs in: ``EpochLog``) and its reports as artifacts. Runs opened
inside another one are nested (the models of one evaluation).

Offline the store is SQLite under data/ (a newer MLflow refuses a plain ./mlruns folder); a
relative ``sqlite:///`` path is made absolute here, so that training processes started elsewhere
(Horovod's Spark tasks, torchrun children) write to the same file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from ltv_spark.config import TrackingConfig, config_to_dict

SQLITE = "sqlite:///"
MAX_PARAM_LENGTH = 6000  # what MLflow's stores accept of one param value
PARAMS_PER_CALL = 100  # MLflow's log_batch limit
EPOCH_METRICS = (
    "train_loss",
    "validation_loss",
    "validation_gini",
    "validation_category_loss",  # with a cross-sell head
    "learning_rate",
    "seconds",
)


def absolute_uri(uri: str) -> str:
    """A ``sqlite:///relative/path`` made absolute (its folder created); other URIs unchanged."""
    if not uri.startswith(SQLITE) or uri.startswith(SQLITE + "/"):
        return uri
    path = Path(uri[len(SQLITE) :]).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"{SQLITE}{path}"


def use_tracking(settings: TrackingConfig) -> str:
    """Point this process's MLflow at the configured stores and experiment; returns its id.

    A new experiment keeps its artifacts under ``artifact_root`` (made absolute when a plain path).
    """
    mlflow.set_tracking_uri(absolute_uri(settings.tracking_uri))
    mlflow.set_registry_uri(absolute_uri(settings.registry_uri or settings.tracking_uri))
    found = mlflow.get_experiment_by_name(settings.experiment)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        location = _artifact_location(settings.artifact_root)
        experiment_id = mlflow.create_experiment(settings.experiment, artifact_location=location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextmanager
def tracked_run(
    settings: TrackingConfig, name: str, config: Any = None, tags: dict[str, Any] | None = None
) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run for the block: nested when one is active, else a new run in the experiment.

    ``config`` (a config dataclass) is logged flat as params; ``tags`` as strings (dicts and lists as
    JSON). A block that raises ends its run FAILED.
    """
    if mlflow.active_run() is None:
        use_tracking(settings)
    with mlflow.start_run(run_name=name, nested=mlflow.active_run() is not None) as run:
        if config is not None:
            log_params(run.info.run_id, config_to_dict(config))
        if tags:
            mlflow.set_tags({key: as_tag(value) for key, value in tags.items()})
        yield run


def log_params(run_id: str, tree: dict[str, Any]) -> None:
    """A nested dict as flat ``a.b.c`` params, in as few calls as MLflow allows."""
    params = [Param(key, as_tag(value)[:MAX_PARAM_LENGTH]) for key, value in flatten(tree).items()]
    client = MlflowClient()
    for start in range(0, len(params), PARAMS_PER_CALL):
        client.log_batch(run_id, params=params[start : start + PARAMS_PER_CALL])


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"epochs": 3}} -> {"train.epochs": 3}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def as_tag(value: Any) -> str:
    """A param or tag value: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Finite numbers of ``metrics`` on the active run (NaN and None are left out)."""
    finite = {k: float(v) for k, v in metrics.items() if v is not None and float(v) == float(v)}
    mlflow.log_metrics(finite, step=step)


@dataclass(frozen=True)
class EpochLog:
    """Where a training process logs its epochs: picklable, so it travels with the TrainJob to
    Horovod's Spark tasks and TorchDistributor's processes. Only rank 0 calls ``log``."""

    tracking_uri: str
    run_id: str

    @classmethod
    def of_active_run(cls) -> EpochLog | None:
        run = mlflow.active_run()
        return None if run is None else cls(mlflow.get_tracking_uri(), run.info.run_id)

    def log(self, epoch: int, record: dict[str, float]) -> None:
        """One epoch's metrics at step ``epoch`` (samples/s derived from samples and seconds)."""
        stamp = int(time.time() * 1000)
        values = {name: record[name] for name in EPOCH_METRICS if name in record}
        if record.get("seconds"):
            values["samples_per_second"] = record["samples"] / record["seconds"]
        metrics = [Metric(name, float(value), stamp, epoch) for name, value in values.items()]
        MlflowClient(self.tracking_uri).log_batch(self.run_id, metrics=metrics)


def _artifact_location(root: str | None) -> str | None:
    """A plain path as an absolute file URI; a URI (s3://, dbfs:/) or None unchanged."""
    if root is None or "://" in root or root.startswith("dbfs:"):
        return root
    path = Path(root).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()
