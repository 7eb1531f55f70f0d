"""A trained model on disk: one versioned folder holding everything needed to use or resume it.

<models_root>/v0003/
    checkpoint.pt       model + optimizer state, epoch, history (rewritten each epoch)
    model.pt            best weights (by validation normalized Gini) + model config
    model_config.json   train_config.json  scaling.json  features.json  data_versions.json
    metrics.json        per-epoch metrics;  COMPLETE when training ended normally
<models_root>/PROMOTED  the version production scores with (ltv refresh promotes after retraining)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

COMPLETE = "COMPLETE"
PROMOTED = "PROMOTED"  # under models_root: the name of the version that scores production


def next_version_dir(models_root: str) -> Path:
    """A new empty version folder (v0001, v0002, ...)."""
    root = Path(models_root)
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[1:]) for p in root.glob("v[0-9][0-9][0-9][0-9]") if p.is_dir()]
    path = root / f"v{max(numbers, default=0) + 1:04d}"
    path.mkdir()
    return path


def version_dirs(models_root: str, complete_only: bool = True) -> list[Path]:
    """Every version folder, oldest first (only those whose training completed, by default)."""
    versions = sorted(p for p in Path(models_root).glob("v[0-9][0-9][0-9][0-9]") if p.is_dir())
    return [p for p in versions if (p / COMPLETE).exists()] if complete_only else versions


def latest_version_dir(models_root: str, complete_only: bool = True) -> Path | None:
    versions = version_dirs(models_root, complete_only)
    return versions[-1] if versions else None


def promoted_version_dir(models_root: str) -> Path | None:
    """The promoted version; before any promotion, the latest complete one."""
    marker = Path(models_root) / PROMOTED
    if marker.exists():
        return Path(models_root) / marker.read_text().strip()
    return latest_version_dir(models_root)


def promote(models_root: str, folder: Path | str) -> None:
    """Make ``folder`` the version that scores production (atomically: write then rename)."""
    marker = Path(models_root) / PROMOTED
    temporary = marker.with_suffix(".tmp")
    temporary.write_text(f"{Path(folder).name}\n")
    os.replace(temporary, marker)


def write_json(folder: Path | str, name: str, data: Any) -> None:
    """Atomically (write then rename), so a killed job never leaves half a file."""
    path = Path(folder) / name
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(temporary, path)


def read_json(folder: Path | str, name: str) -> Any:
    return json.loads((Path(folder) / name).read_text())


def save_torch(folder: Path | str, name: str, state: dict[str, Any]) -> None:
    path = Path(folder) / name
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def load_torch(folder: Path | str, name: str) -> dict[str, Any] | None:
    path = Path(folder) / name
    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None
