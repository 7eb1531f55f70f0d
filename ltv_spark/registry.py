"""Registered MLflow models: a trained model folder logged as a pyfunc, its versions and aliases.

One registered model per architecture (``tracking.registered_model``, ``ltv_{architecture}``:
ltv_transformer, ltv_mlp; on Unity Catalog ``<catalog>.<schema>.ltv_transformer``). Every
``ltv train`` and retrain registers a version and points ``challenger`` at it; ``champion`` is
what the refresh scores with. Promotion moves ``champion`` under the not-worse rule
(ltv_spark.pipeline.refresh); ``ltv promote --version N`` moves it anywhere, back included (a rollback).

The pyfunc is logged as code (ltv_spark/pyfunc.py, "models from code"), with the model folder's
files as its artifact and the ltv_spark package beside it (``code_paths``): nothing is pickled,
and ``mlflow.pyfunc.load_model(uri)`` works in a process that has no ltv_spark checkout.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from ltv_spark.artifacts import MODEL_ARTIFACT, SCORING_FILES, latest_version_dir, read_json
from ltv_spark.calibration import DecileCalibration
from ltv_spark.config import TrackingConfig
from ltv_spark.score import REGISTERED_PREFIX, LoadedModel, Predict, Rows, is_registered
from ltv_spark.storage import Location
from ltv_spark.tracking import as_tag, use_tracking

CHAMPION, CHALLENGER = "champion", "challenger"
ALIASES = (CHAMPION, CHALLENGER)
PYFUNC_CODE = Path(__file__).with_name("pyfunc.py")
PACKAGE_DIR = Path(__file__).parent
# what the pyfunc needs where it is served (versions as installed here: MLflow infers none, which
# would mean loading the model in a subprocess at every registration)
REQUIREMENTS = (
    "mlflow-skinny",
    "torch",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "scikit-learn",
    "pyspark",
    "pyyaml",
)

_PYFUNCS: dict[str, mlflow.pyfunc.PyFuncModel] = {}  # per Python worker: models:/name/version -> model


class ModelNotFound(FileNotFoundError):
    """No model where one was named: no such registered version or alias, or no complete folder."""


@dataclass(frozen=True)
class ModelRef:
    """A model a scorer loads: a registered version pinned by number, or a model folder."""

    uri: str  # models:/<name>/<version>, or the folder
    label: str  # gold.predictions' model_version: <name>/<version>, or the folder's name (v0003)
    data_versions: dict  # the Delta versions and cutoffs it was trained on

    @property
    def registered(self) -> bool:
        return is_registered(self.uri)


def resolve(spec: str, settings: TrackingConfig, models_root: str) -> ModelRef:
    """What ``score.model`` / ``refresh.model`` / ``--model`` name, pinned.

    ``champion`` / ``challenger``: the registered model's alias; ``models:/<name>@<alias>`` or
    ``models:/<name>/<version>``: that version; ``latest``: the newest complete folder under
    ``models_root``; anything else: a model folder. An alias is resolved to its version number
    here, once, so every worker scores with the same version even if the alias moves meanwhile.
    """
    if spec in ALIASES:
        spec = f"{REGISTERED_PREFIX}{settings.registered_model}@{spec}"
    if is_registered(spec):
        use_tracking(settings)
        name, version = _pinned(spec)
        tags = MlflowClient().get_model_version(name, version).tags
        data_versions = json.loads(tags.get("data_versions", "{}"))
        return ModelRef(version_uri(name, version), f"{name}/{version}", data_versions)
    folder = latest_version_dir(models_root) if spec == "latest" else Location.of(spec)
    if folder is None:
        raise ModelNotFound(f"no complete model under {models_root}: run `ltv train` first")
    return ModelRef(folder.uri, folder.name, read_json(folder, "data_versions.json"))


def blank_input(folder: str) -> pd.DataFrame:
    """One row of model input for ``folder``'s model: zero features, no session (an input example
    where no rows of the gold tables are at hand)."""
    model = LoadedModel.load(folder)
    config = model.model.config
    row = {column: 0.0 for column in model.scaling.columns}
    row["sequence"] = np.zeros(config.sequence_length * config.session_features)
    row["mask"] = np.zeros(config.sequence_length)
    return pd.DataFrame([row])


def version_uri(name: str, version: str) -> str:
    """models:/<name>/<version>: one version, whatever its aliases do later."""
    return f"{REGISTERED_PREFIX}{name}/{version}"


def register_folder(
    folder: str, settings: TrackingConfig, input_example: pd.DataFrame, tags: dict | None = None
) -> str:
    """Log ``folder`` as a pyfunc on the active run, register it as a new version of
    ``settings.registered_model`` and point ``challenger`` at it (``champion`` too when there is
    none yet). Returns the version number. ``input_example``: a few rows of model input."""
    with tempfile.TemporaryDirectory(prefix="ltv-model-") as local:
        _copy_scoring_files(Location.of(folder), Path(local))
        example = _as_double_arrays(input_example)
        output = LoadedModel.load(local).predict(example, DecileCalibration.read(local))
        info = mlflow.pyfunc.log_model(
            **_model_name("model"),
            python_model=str(PYFUNC_CODE),
            artifacts={MODEL_ARTIFACT: local},
            code_paths=[str(PACKAGE_DIR)],
            signature=infer_signature(example, output),
            input_example=example,
            pip_requirements=_requirements(),
        )
    version = str(mlflow.register_model(info.model_uri, settings.registered_model).version)
    lineage = {
        "model_folder": Location.of(folder).uri,
        "data_versions": read_json(folder, "data_versions.json"),
    }
    tag_version(settings, version, {**lineage, **(tags or {})})
    client = MlflowClient()
    client.set_registered_model_alias(settings.registered_model, CHALLENGER, version)
    if alias_version(settings, CHAMPION) is None:
        client.set_registered_model_alias(settings.registered_model, CHAMPION, version)
    return str(version)


def registered_version(settings: TrackingConfig, folder: str) -> str | None:
    """The version registered from model folder ``folder``, if any (a kept model is not registered
    twice)."""
    use_tracking(settings)
    uri = Location.of(folder).uri
    try:
        versions = MlflowClient().search_model_versions(f"name = '{settings.registered_model}'")
    except MlflowException:
        return None
    found = [v.version for v in versions if v.tags.get("model_folder") == uri]
    return str(max(found, key=int)) if found else None


def alias_version(settings: TrackingConfig, alias: str) -> str | None:
    """The version ``alias`` points to, or None (no such alias, or no registered model yet)."""
    use_tracking(settings)
    try:
        return str(MlflowClient().get_model_version_by_alias(settings.registered_model, alias).version)
    except MlflowException:
        return None


def promote(settings: TrackingConfig, version: str) -> str | None:
    """Point ``champion`` at ``version`` (a promotion, or a rollback); returns the previous one."""
    use_tracking(settings)
    client = MlflowClient()
    try:
        client.get_model_version(settings.registered_model, version)
    except MlflowException as missing:
        raise ModelNotFound(f"{settings.registered_model} has no version {version}") from missing
    previous = alias_version(settings, CHAMPION)
    client.set_registered_model_alias(settings.registered_model, CHAMPION, version)
    return previous


def tag_version(settings: TrackingConfig, version: str, tags: dict) -> None:
    """Set ``tags`` on a version of the registered model (dicts and lists as JSON)."""
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(settings.registered_model, version, key, as_tag(value))


def worker_loader(uri: str) -> Callable[[], Predict]:
    """For a scoring UDF: a function that, in a Python worker, loads the pyfunc at ``uri`` once
    (from the registry this driver uses) and returns a ``predict`` for one task's batches.

    The task's first batch goes through the pyfunc's ``predict`` as a pandas frame, which checks
    it against the signature; the task's other batches have the same columns and types (one
    DataFrame's), so they go straight to the model the pyfunc wraps, as Arrow batches. MLflow's
    check converts every array of every row, which cost the registered model 45% of its speed
    (``benchmarks/bench_scoring.py``).
    """
    pyfunc = _worker_pyfunc(uri)

    def load() -> Predict:
        model = pyfunc()
        inputs = model.metadata.get_input_schema().input_names()
        checked = False

        def predict(rows: Rows) -> pd.DataFrame:
            nonlocal checked
            if not checked:
                checked = True
                frame = rows.to_pandas() if isinstance(rows, pa.RecordBatch) else rows
                return model.predict(frame[inputs])  # the signature's columns, no others
            wrapped = model.unwrap_python_model()  # ltv_spark.pyfunc.LtvModel
            return wrapped.model.predict(rows, wrapped.calibration)

        return predict

    return load


def worker_model(uri: str) -> Callable[[], LoadedModel]:
    """For a scoring UDF that explains: in a Python worker, the torch model inside the pyfunc at
    ``uri`` (loaded once, shared with ``worker_loader``)."""
    pyfunc = _worker_pyfunc(uri)
    return lambda: pyfunc().unwrap_python_model().model


def _worker_pyfunc(uri: str) -> Callable[[], mlflow.pyfunc.PyFuncModel]:
    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()

    def load() -> mlflow.pyfunc.PyFuncModel:
        if uri not in _PYFUNCS:
            mlflow.set_tracking_uri(tracking)
            mlflow.set_registry_uri(registry)
            _PYFUNCS[uri] = mlflow.pyfunc.load_model(uri)
        return _PYFUNCS[uri]

    return load


def _pinned(uri: str) -> tuple[str, str]:
    """models:/<name>@<alias> or models:/<name>/<version> -> (name, version number)."""
    path = uri[len(REGISTERED_PREFIX) :]
    if "@" in path:
        name, alias = path.split("@", 1)
        client = MlflowClient()
        try:
            return name, str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException as missing:
            raise ModelNotFound(
                f"{uri}: no version of {name} has the alias {alias!r} in {mlflow.get_registry_uri()}: "
                "train and register one first (ltv train), or name a version (models:/<name>/<version>)"
            ) from missing
    name, _, version = path.rpartition("/")
    if not name or not version.isdigit():
        raise ValueError(f"{uri}: expected models:/<name>@<alias> or models:/<name>/<version>")
    return name, version


def _as_double_arrays(frame: pd.DataFrame) -> pd.DataFrame:
    """The example with its array columns as float64, so the signature says Array(double): Spark's
    array<float> and JSON's numbers both convert to that safely (to float32, JSON's would not)."""
    arrays = [c for c in frame.columns if frame[c].dtype == object]
    return frame.assign(**{c: frame[c].map(lambda a: np.asarray(a, dtype=np.float64)) for c in arrays})


def _model_name(name: str) -> dict[str, str]:
    """log_model's name argument: ``name`` from MLflow 3, ``artifact_path`` before (15.4 LTS ML: 2.13)."""
    accepts_name = "name" in inspect.signature(mlflow.pyfunc.log_model).parameters
    return {"name": name} if accepts_name else {"artifact_path": name}


def _copy_scoring_files(folder: Location, local: Path) -> None:
    for name in SCORING_FILES:
        source = folder / name
        if source.exists():
            (local / name).write_bytes(source.read_bytes())


def _requirements() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in REQUIREMENTS]
