"""describe the registry: a model folder as an MLflow pyfunc (logged as code), its versions and aliases,
scoring from models:/ URIs, and MLflow's own spark_udf scoring as the project's UDF does."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import sysconfig

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ltv_spark.calibration import DecileCalibration
from ltv_spark.cli import main
from ltv_spark.config import TrackingConfig, load_config
from ltv_spark.registry import (
    CHALLENGER,
    CHAMPION,
    ModelNotFound,
    alias_version,
    register_folder,
    resolve,
    worker_loader,
)
from ltv_spark.score import PREDICTION_COLUMNS, LoadedModel, score_users
from ltv_spark.tracking import tracked_run
from tests.helpers import tracking_overrides
from tests.test_scoring import MODEL, user_rows, write_model

FRESH_PROCESS = """
import importlib.util, sys
assert importlib.util.find_spec("ltv_spark") is None, "the checkout is on the path"
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
model.predict(pd.read_parquet(sys.argv[3])).to_parquet(sys.argv[4])
import ltv_spark
print(ltv_spark.__file__)
"""


@pytest.fixture()
def settings(tmp_path) -> TrackingConfig:
    return load_config("local", tracking_overrides(tmp_path)).tracking  # ltv_{architecture} filled in


@pytest.fixture()
def registered(spark, settings, tmp_path) -> tuple[str, str]:
    """A model folder with a calibration, registered as version 1; (folder, version)."""
    folder = write_model(tmp_path / "models" / "v0001")
    DecileCalibration(predicted=(0.5, 2.0), actual=(3.0, 4.0), users=2).write(folder)
    example = model_input(user_rows(spark, 5).toPandas())
    with tracked_run(settings, "train"):
        version = register_folder(folder, settings, example, {"validation_gini": 0.5})
    return folder, version


def model_input(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["user_id", "cutoff"])


def it_registers_the_first_version_as_challenger_and_champion_with_a_signature(registered, settings):
    folder, version = registered
    assert version == "1"
    assert alias_version(settings, CHAMPION) == alias_version(settings, CHALLENGER) == "1"
    tags = MlflowClient().get_model_version("ltv_transformer", "1").tags
    assert tags["validation_gini"] == "0.5" and tags["data_versions"] == '{"gold.user_features": 0}'
    model = mlflow.pyfunc.load_model("models:/ltv_transformer@champion")
    inputs = model.metadata.get_input_schema().input_names()
    assert inputs[-2:] == ["sequence", "mask"] and "monetary" in inputs
    assert model.metadata.get_output_schema().input_names() == list(PREDICTION_COLUMNS)
    loader = model.metadata.flavors["python_function"]["loader_module"]
    assert loader == "mlflow.pyfunc.loaders.code_model"  # built by running pyfunc.py, not unpickled


def it_loads_and_predicts_in_a_fresh_process_with_no_ltv_spark_on_the_path(
    spark, registered, settings, tmp_path
):
    folder, _ = registered
    rows = user_rows(spark, 20).toPandas()
    model_input(rows).to_parquet(tmp_path / "input.parquet")
    # -S: no site module, so the checkout's editable install (.pth) is invisible; the pinned
    # dependencies come from the environment's site-packages; the package comes with the model
    environment = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    child = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            FRESH_PROCESS,
            settings.tracking_uri,
            "models:/ltv_transformer@champion",
            str(tmp_path / "input.parquet"),
            str(tmp_path / "output.parquet"),
        ],  # fmt: skip
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert "/artifacts/" in child.stdout  # ltv_spark was imported from the model's own copy
    predicted = pd.read_parquet(tmp_path / "output.parquet")
    direct = LoadedModel.load(folder).predict(rows, DecileCalibration.read(folder))
    for column in PREDICTION_COLUMNS:
        np.testing.assert_allclose(predicted[column], direct[column], rtol=1e-6)


def it_scores_with_the_projects_udf_as_mlflow_spark_udf_does_and_as_the_folder(spark, registered, settings):
    folder, _ = registered
    ref = resolve(CHAMPION, settings, "unused")
    assert (ref.uri, ref.label, ref.registered) == ("models:/ltv_transformer/1", "ltv_transformer/1", True)
    rows = user_rows(spark, 60).repartition(3)
    ours = score_users(rows, ref.uri, batch_size=16).toPandas().sort_values("user_id", ignore_index=True)
    model = mlflow.pyfunc.load_model(ref.uri)
    inputs = model.metadata.get_input_schema().input_names()
    udf = mlflow.pyfunc.spark_udf(
        spark, ref.uri, result_type=", ".join(f"{c} double" for c in PREDICTION_COLUMNS), env_manager="local"
    )
    theirs = (
        rows.withColumn("scores", udf(*inputs))
        .select("user_id", "scores.*")
        .toPandas()
        .sort_values("user_id", ignore_index=True)
    )
    from_folder = (
        score_users(rows, folder, batch_size=16).toPandas().sort_values("user_id", ignore_index=True)
    )
    assert len(ours) == 60 and list(ours["user_id"]) == list(theirs["user_id"])
    for column in PREDICTION_COLUMNS:
        np.testing.assert_allclose(ours[column], theirs[column], rtol=1e-6)
        np.testing.assert_allclose(ours[column], from_folder[column], rtol=1e-6)


def it_checks_a_tasks_first_batch_against_the_signature_and_scores_the_rest_alike(
    spark, registered, settings
):
    folder, _ = registered
    uri = resolve(CHAMPION, settings, "unused").uri
    rows = user_rows(spark, 20).toPandas()
    wrong = rows.assign(sequence=[",".join(map(str, s)) for s in rows["sequence"]])  # text, not arrays
    with pytest.raises(MlflowException):
        worker_loader(uri)()(wrong)  # a task's first batch goes through MLflow's schema check
    predict = worker_loader(uri)()  # a new task: checked first batch, then the wrapped model
    first, second = predict(rows.iloc[:10]), predict(rows.iloc[10:])
    direct = LoadedModel.load(folder).predict(rows, DecileCalibration.read(folder))
    for column in PREDICTION_COLUMNS:
        np.testing.assert_allclose(pd.concat([first, second])[column], direct[column], rtol=1e-6)


def it_names_what_is_missing_when_an_alias_or_version_is_not_registered(settings, tmp_path):
    with pytest.raises(
        ModelNotFound, match=r"models:/ltv_transformer@champion: no version of ltv_transformer"
    ):
        resolve(CHAMPION, settings, str(tmp_path / "models"))
    with pytest.raises(ModelNotFound, match="no complete model under"):
        resolve("latest", settings, str(tmp_path / "models"))


def it_imports_an_old_folder_and_rolls_the_champion_back_from_the_command_line(
    registered, settings, tmp_path
):
    _, first = registered
    old = write_model(tmp_path / "models" / "v0002")
    flags = ["--set", f"tracking.tracking_uri={settings.tracking_uri}"]
    flags += ["--set", f"tracking.artifact_root={settings.artifact_root}", "--quiet"]
    assert main(["register", "--model", old, *flags]) == 0
    assert alias_version(settings, CHALLENGER) == "2" and alias_version(settings, CHAMPION) == first
    assert main(["register", "--model", old, *flags]) == 0  # a folder is registered once
    assert len(MlflowClient().search_model_versions("name = 'ltv_transformer'")) == 2
    assert main(["promote", "--version", "2", *flags]) == 0
    assert alias_version(settings, CHAMPION) == "2"
    assert main(["promote", "--version", first, *flags]) == 0  # the rollback
    assert alias_version(settings, CHAMPION) == first
    assert main(["promote", "--version", "7", *flags]) == 1  # no such version: a clear error, no change
    assert alias_version(settings, CHAMPION) == first
    mlp = write_model(tmp_path / "models" / "v0003", dataclasses.replace(MODEL, architecture="mlp"))
    assert main(["register", "--model", mlp, *flags]) == 1  # an MLP is not a version of ltv_transformer
    assert main(["register", "--model", mlp, "--set", "train.architecture=mlp", *flags]) == 0
    assert str(MlflowClient().get_model_version_by_alias("ltv_mlp", CHAMPION).version) == "1"


def it_leaves_no_pickle_in_the_logged_model(registered):
    model_dir = mlflow.artifacts.download_artifacts("models:/ltv_transformer/1")
    files = [name for _, _, names in os.walk(model_dir) for name in names]
    assert "model.pt" in files and "pyfunc.py" in files
    assert not [name for name in files if name.endswith((".pkl", ".pickle", ".cloudpickle"))]
    with open(os.path.join(model_dir, "MLmodel")) as handle:
        assert "model_code_path" in handle.read()  # the model is built by running pyfunc.py
