"""A trained model in storage: one versioned folder holding everything needed to use or resume it.

<models_root>/v0003/
    checkpoint.pt       model + optimizer state, history, the weights of epochs that may still be
                        kept (rewritten each epoch)
    model.pt            the kept epoch's weights (ltv_spark.train.kept_epoch) + model config
    model_config.json   train_config.json  scaling.json  features.json  data_versions.json
    metrics.json        per-epoch metrics;  COMPLETE when training ended normally
    calibration.json    decile calibration of expected LTV, fitted on the validation cutoff by default

Production does not score from these folders by name: ``ltv train`` and every retrain log the
folder as an MLflow model and register it (ltv_spark.registry), and the registry's ``champion``
alias says which version scores.

``models_root`` is a local folder or an ``s3a://`` URI (ltv_spark.storage): Horovod's rank 0
writes the model from whichever executor it runs on, and the driver reads it from there.
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import torch

from ltv_spark.storage import Location

COMPLETE = "COMPLETE"
MODEL_ARTIFACT = "model_folder"  # the MLflow pyfunc's artifact: the files of a model folder below
SCORING_FILES = (  # what scoring needs of a folder (checkpoint.pt, the resumable state, is not)
    "model.pt",
    "model_config.json",
    "scaling.json",
    "features.json",
    "calibration.json",
    "data_versions.json",
    "train_config.json",
    "cutoffs.json",
    "metrics.json",
    "categories.json",  # with a cross-sell head: its categories, in the order of its logits
)
CATEGORIES_FILE = "categories.json"
VERSION_PATTERN = "v[0-9][0-9][0-9][0-9]"

Where = str | Path | Location


def next_version_dir(models_root: Where) -> Location:
    """A new version folder (v0001, v0002, ...), marked as taken by an empty metrics file.

    The driver alone numbers versions (one training per models root at a time: the refresh lease).
    """
    root = Location.of(models_root)
    numbers = [int(p.name[1:]) for p in root.children(VERSION_PATTERN)]
    folder = root / f"v{max(numbers, default=0) + 1:04d}"
    folder.mkdir()
    write_json(folder, "metrics.json", [])  # an object store has no empty folders: this one exists
    return folder


def version_dirs(models_root: Where, complete_only: bool = True) -> list[Location]:
    """Every version folder, oldest first (only those whose training completed, by default)."""
    versions = Location.of(models_root).children(VERSION_PATTERN)
    return [v for v in versions if (v / COMPLETE).exists()] if complete_only else versions


def latest_version_dir(models_root: Where, complete_only: bool = True) -> Location | None:
    versions = version_dirs(models_root, complete_only)
    return versions[-1] if versions else None


def write_json(folder: Where, name: str, data: Any) -> None:
    """Atomically (see Location.write_bytes), so a killed job never leaves half a file."""
    (Location.of(folder) / name).write_text(json.dumps(data, indent=2, sort_keys=True, default=str))


def read_json(folder: Where, name: str) -> Any:
    return json.loads((Location.of(folder) / name).read_text())


def read_categories(folder: Where) -> list[str]:
    """The cross-sell head's categories of the model in ``folder``, in logit order; [] without it."""
    return read_json(folder, CATEGORIES_FILE) if (Location.of(folder) / CATEGORIES_FILE).exists() else []


def save_torch(folder: Where, name: str, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    (Location.of(folder) / name).write_bytes(buffer.getvalue())


class UnsafeArtifact(ValueError):
    """A checkpoint that holds more than tensors and plain containers: it is never unpickled."""


def load_torch(folder: Where, name: str) -> dict[str, Any] | None:
    """A checkpoint's tensors and plain values (dicts, lists, numbers, strings), or None if absent.

    Loaded with ``weights_only=True``: anyone who can write to a models folder (shared storage on a
    cluster) could otherwise run code in every process that loads the model, scoring workers
    included. A file holding any other object is refused with UnsafeArtifact, and nothing of it runs.
    """
    path = Location.of(folder) / name
    if not path.exists():
        return None
    try:
        return torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as refused:
        raise UnsafeArtifact(
            f"{path}: refused to load a checkpoint that holds objects other than tensors and plain "
            f"values (dicts, lists, numbers, strings); loading it could run code ({refused})"
        ) from refused


def mark_complete(folder: Where) -> None:
    (Location.of(folder) / COMPLETE).write_text("ok\n")
