"""gold tables -> a trained, versioned model folder (ltv_spark.artifacts), tracked as an MLflow run
and registered as a new version of the registered model (ltv_spark.registry)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ltv_spark.artifacts import latest_version_dir, load_torch, next_version_dir, read_json, version_dirs
from ltv_spark.calibration import METHOD, DecileCalibration
from ltv_spark.config import Config, TrackingConfig, TrainConfig, config_to_dict
from ltv_spark.cross_sell import category_vocabulary
from ltv_spark.dataset import plan_cutoffs
from ltv_spark.features import FEATURE_COLUMNS
from ltv_spark.feed import petastorm_converter, to_model_rows
from ltv_spark.launchers import launch
from ltv_spark.model import ModelConfig
from ltv_spark.pipeline.gold import build_cutoffs, examples, examples_identity
from ltv_spark.progress import stage
from ltv_spark.registry import (
    ALIASES,
    ModelNotFound,
    alias_version,
    blank_input,
    register_folder,
    registered_version,
)
from ltv_spark.scaling import FeatureScaling
from ltv_spark.score import score_users
from ltv_spark.storage import Location
from ltv_spark.tables import TableStore
from ltv_spark.tracking import EpochLog, tracked_run
from ltv_spark.train import TrainJob, kept_epoch

INPUT_EXAMPLE_ROWS = 5  # validation rows logged with the model as its input example
WHERE_IT_IS_KEPT = ("models_root", "cache_dir")  # settings that do not change what a model is


@dataclass
class TrainSummary:
    artifact_dir: str
    launcher: str
    num_proc: int
    history: list[dict]
    reused: bool = False
    select_by: str = TrainConfig.select_by
    loss_tolerance: float = TrainConfig.loss_tolerance
    calibration: str = "uncalibrated"
    registered: str | None = None  # "<name> version N (aliases)" once registered
    version: str | None = None  # the registered version

    def kept(self) -> dict:
        """The epoch whose weights model.pt holds (ltv_spark.train.kept_epoch); {} before any."""
        return kept_epoch(self.history, self.select_by, self.loss_tolerance) if self.history else {}

    def lines(self) -> list[str]:
        best = self.kept()
        kept = "  (same data and settings as before: kept, not retrained)" if self.reused else ""
        lines = [f"model        {self.artifact_dir}{kept}", f"launcher     {self.launcher} x {self.num_proc}"]
        for h in self.history:
            lines.append(
                f"epoch {h['epoch']:>2}  train loss {h['train_loss']:.4f}  validation loss "
                f"{h['validation_loss']:.4f}  normalized Gini {h['validation_gini']:.4f}  "
                f"{h['samples'] / h['seconds']:,.0f} samples/s"
            )
        if best:
            lines.append(
                f"kept epoch {best['epoch']} ({self._rule()}): validation loss "
                f"{best['validation_loss']:.4f}, normalized Gini {best['validation_gini']:.4f}"
            )
        lines.append(f"expected LTV {self.calibration}")
        if self.registered:
            lines.append(f"registered   {self.registered}")
        return lines

    def _rule(self) -> str:
        if self.select_by == "validation_loss":
            return "best validation loss"
        return f"best validation Gini within {self.loss_tolerance} of the best loss"


def train_model(
    spark: SparkSession,
    store: TableStore,
    config: Config,
    launcher: str | None = None,
    num_proc: int | None = None,
) -> TrainSummary:
    """Build the plan's cutoffs, train on the gold examples (see ``fit_examples``) and register the
    model (ltv_spark.registry.register_folder), all in one MLflow run: the resolved config as
    params, the data's Delta versions and the cutoffs as tags, the epochs as metrics."""
    plan = plan_cutoffs(config.features)
    # skipped when built from this bronze version
    build_cutoffs(spark, store, config.features, (*plan.train, plan.validation))
    cutoffs = {
        "train": [str(c) for c in plan.train],
        "validation": str(plan.validation),
        "horizon_days": plan.horizon_days,
    }
    data_versions = examples_identity(store, config.features, (*plan.train, plan.validation))
    validation = examples(store, (plan.validation,), plan.horizon_days)
    tags = {"data_versions": data_versions, "cutoffs": cutoffs, "architecture": config.train.architecture}
    with tracked_run(config.tracking, f"train {config.train.architecture}", config, tags):
        summary = fit_examples(
            spark,
            examples(store, plan.train, plan.horizon_days),
            validation,
            config.train,
            config.features.sequence_length,
            data_versions=data_versions,
            metadata={"cutoffs": cutoffs},
            launcher=launcher,
            num_proc=num_proc,
        )
        with stage(f"register {summary.artifact_dir} as {config.tracking.registered_model}"):
            summary.version = _register(summary, config.tracking, validation)
        aliases = [alias for alias in ALIASES if alias_version(config.tracking, alias) == summary.version]
        named = ", ".join(aliases) or "no alias"
        summary.registered = f"{config.tracking.registered_model} version {summary.version} ({named})"
    return summary


def register_existing(folder: str, config: Config) -> str:
    """Register a model folder trained before the registry existed (``ltv register``), in a run of
    its own; its input example is one user without history (no Spark table is read)."""
    weights = load_torch(folder, "model.pt")
    if weights is None:
        raise ModelNotFound(f"{folder} holds no model.pt: name a folder that ltv train wrote")
    architecture = weights["config"].get("architecture", "transformer")
    if architecture != config.train.architecture:
        raise ModelNotFound(
            f"{folder} holds a {architecture}, not a {config.train.architecture}: register it under its "
            f"own name with --set train.architecture={architecture}"
        )
    with tracked_run(config.tracking, f"register {folder}", tags={"model_folder": folder}):
        return registered_version(config.tracking, folder) or register_folder(
            folder, config.tracking, blank_input(folder)
        )


def _register(summary: TrainSummary, tracking: TrackingConfig, validation: DataFrame) -> str:
    """Register the summary's model (once per folder: a kept model keeps its version); its version."""
    version = registered_version(tracking, summary.artifact_dir)
    if version is None:
        example = validation.select(*FEATURE_COLUMNS, "sequence", "mask").limit(INPUT_EXAMPLE_ROWS).toPandas()
        best = summary.kept()
        tags = {"validation_gini": best["validation_gini"], "validation_loss": best["validation_loss"]}
        version = register_folder(summary.artifact_dir, tracking, example, tags)
    return version


def fit_examples(
    spark: SparkSession,
    train: DataFrame,
    validation: DataFrame,
    settings: TrainConfig,
    sequence_length: int,
    data_versions: dict,
    metadata: dict | None = None,
    launcher: str | None = None,
    num_proc: int | None = None,
    also_in: tuple[str, ...] = (),
    calibration_rows: DataFrame | None = None,
) -> TrainSummary:
    """Fit scaling on ``train``, feed Petastorm, train with the launcher, save a model version.

    The expected LTV's decile calibration is fitted on ``calibration_rows`` (one row per user),
    ``validation`` by default; name what they are in ``data_versions``, since a kept model keeps
    its calibration.

    ``data_versions`` names the data the examples came from: a complete model under
    ``settings.models_root`` (or, next, under the roots ``also_in``) trained on the same data with
    the same settings is kept, not retrained.
    """
    calibration_rows = validation if calibration_rows is None else calibration_rows
    launcher = launcher or settings.launcher
    num_proc = 1 if launcher == "local" else (num_proc or settings.num_proc)
    train_config = {**config_to_dict(settings), "launcher": launcher, "num_proc": num_proc}
    done = _same_model((settings.models_root, *also_in), data_versions, train_config)
    epoch_log = EpochLog.of_active_run()
    if done is not None:
        history = read_json(done, "metrics.json")
        for record in history if epoch_log else ():  # the run shows the kept model's epochs too
            epoch_log.log(record["epoch"], record)
        calibration = calibrate(calibration_rows, str(done), settings.batch_size).describe()
        return _summary(str(done), launcher, num_proc, history, settings, calibration, reused=True)
    scaling = FeatureScaling.fit(train, FEATURE_COLUMNS)
    categories = category_vocabulary(train, settings.next_categories)  # [] (no head) with < 2 bought
    artifact_dir = _artifact_dir(settings.models_root, data_versions, train_config)
    cache = Location.of(settings.cache_dir) / artifact_dir.name
    train_converter = petastorm_converter(spark, to_model_rows(train, scaling, categories), cache)
    validation_converter = petastorm_converter(spark, to_model_rows(validation, scaling, categories), cache)
    t = settings
    job = TrainJob(
        model=ModelConfig(
            sequence_length=sequence_length,
            static_features=len(FEATURE_COLUMNS),
            d_model=t.d_model,
            n_heads=t.n_heads,
            n_layers=t.n_layers,
            d_ff=t.d_ff,
            dropout=t.dropout,
            architecture=t.architecture,
            mixture_components=t.mixture_components,
            categories=len(categories),
            category_weight=t.category_weight,
        ),
        artifact_dir=str(artifact_dir),
        train_converter=train_converter,
        validation_converter=validation_converter,
        train_rows=len(train_converter),
        validation_rows=len(validation_converter),
        epochs=t.epochs,
        batch_size=t.batch_size,
        learning_rate=t.learning_rate,
        lr_schedule=t.lr_schedule,
        seed=t.seed,
        patience=t.patience,
        select_by=t.select_by,
        loss_tolerance=t.loss_tolerance,
        epoch_log=epoch_log,
        metadata={
            "scaling": scaling.to_dict(),
            "features": list(FEATURE_COLUMNS),
            "data_versions": data_versions,
            "train_config": train_config,
            **({"categories": categories} if categories else {}),  # categories.json: the head's order
            **(metadata or {}),
        },
    )
    try:
        with stage(f"train {t.architecture} ({launcher} x {num_proc})") as timer:
            history = launch(spark, launcher, job, num_proc).history
            timer.rows = job.train_rows
    finally:
        train_converter.delete()
        validation_converter.delete()
    with stage("calibrate expected LTV (decile knots)") as timer:
        calibration = calibrate(calibration_rows, str(artifact_dir), settings.batch_size)
        timer.rows = calibration.users
    return _summary(str(artifact_dir), launcher, num_proc, history, settings, calibration.describe())


def _summary(
    folder: str,
    launcher: str,
    num_proc: int,
    history: list[dict],
    settings: TrainConfig,
    calibration: str,
    reused: bool = False,
) -> TrainSummary:
    return TrainSummary(
        folder, launcher, num_proc, history, reused, settings.select_by, settings.loss_tolerance, calibration
    )


def calibrate(validation: DataFrame, artifact_dir: str, batch_size: int) -> DecileCalibration:
    """The model's decile calibration (ltv_spark.calibration) on ``validation`` (one row per user:
    one cutoff), fitted once per model folder and saved in it; scoring applies it from then on.
    One saved by an earlier method (calibration.METHOD) is fitted again."""
    saved = DecileCalibration.read(artifact_dir)
    if saved.users and saved.method == METHOD:
        return saved
    raw = score_users(validation, artifact_dir, batch_size, calibrated=False)
    scored = raw.select("user_id", F.col("expected_ltv").alias("predicted")).join(
        validation.select("user_id", F.col("net_value").alias("actual")), "user_id"
    )
    calibration = DecileCalibration.fit(scored)
    calibration.write(artifact_dir)
    return calibration


def _same_inputs(folder: Location, data_versions: dict, train_config: dict) -> bool:
    """Whether the model in ``folder`` was (or is being) trained on this data with these settings."""
    try:
        saved = [read_json(folder, name) for name in ("data_versions.json", "train_config.json")]
    except FileNotFoundError:
        return False
    as_saved = json.loads(json.dumps([data_versions, train_config], default=str))  # as it reads back
    return [saved[0], _what_it_is(saved[1])] == [as_saved[0], _what_it_is(as_saved[1])]


def _what_it_is(train_config: dict) -> dict:
    """The settings a model depends on: all but where models and their feed are kept."""
    return {key: value for key, value in train_config.items() if key not in WHERE_IT_IS_KEPT}


def _same_model(models_roots: tuple[str, ...], data_versions: dict, train_config: dict) -> Location | None:
    """The newest complete model trained on the same data with the same settings, if any: the
    first root's first, then the others'."""
    for models_root in models_roots:
        for folder in reversed(version_dirs(models_root)):
            if _same_inputs(folder, data_versions, train_config):
                return folder
    return None


def _artifact_dir(models_root: str, data_versions: dict, train_config: dict) -> Location:
    """Resume the newest version if its training never completed and had the same inputs;
    otherwise start a new one."""
    latest = latest_version_dir(models_root, complete_only=False)
    unfinished = latest is not None and latest_version_dir(models_root) != latest
    if unfinished and _same_inputs(latest, data_versions, train_config):
        return latest
    return next_version_dir(models_root)
