"""Gini against the number of training examples, per model: is each model data-limited, or at the
ceiling? -> gold.learning_curve, and learning_curve.png / .csv in the evaluation's report folder.

A size is a multiple of the configured training set (features.train_cutoffs cutoffs,
cutoff_step_days apart). Below 1: a fixed share of the users (a hash of the id, the same users
for every model and seed) at those cutoffs. Above 1: every user at ``size`` times as many cutoffs,
the step divided by the size in whole days (the same span for a monthly step; a weekly step's 4x is
daily cutoffs over a shorter span), i.e. more, and more strongly correlated, examples of the same
users. A bigger world would add independent users instead; this one stays
within the data a shop has. Every point is trained from scratch; below 1x the neural models get
as many optimizer steps as at 1x (TrainingSize.epochs), above it the configured epochs.
Validation (early stopping, calibration) and evaluation are the plan's, every user, the same for
every size, so two points differ only by their training examples. The Gini is measured on the
evaluation cutoff: nothing is chosen by it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ltv_spark.baselines import GradientBoostingBaseline, predict_on_spark
from ltv_spark.baselines.base import fit_sample
from ltv_spark.config import Config, FeaturesConfig
from ltv_spark.dataset import CutoffPlan, plan_cutoffs
from ltv_spark.evaluation import NEURAL_MODELS, REFERENCES, actuals
from ltv_spark.features import FEATURE_COLUMNS
from ltv_spark.pipeline.gold import (
    EVALUATION_METRICS,
    LEARNING_CURVE,
    TrainingSet,
    build_training_set,
    examples,
    examples_identity,
)
from ltv_spark.pipeline.training import fit_examples
from ltv_spark.progress import LOG, stage
from ltv_spark.report import figure_png, plot_learning_curve
from ltv_spark.score import model_predictions
from ltv_spark.spark_metrics import normalized_ginis
from ltv_spark.storage import Location
from ltv_spark.tables import TableStore

TREES = GradientBoostingBaseline.name
CURVE_MODELS = (TREES, *NEURAL_MODELS.values())
SHARE_BUCKETS = 10_000  # resolution of the user share below size 1


@dataclass(frozen=True)
class TrainingSize:
    """One point of the curve: which cutoffs, and which share of the users at them."""

    size: float
    cutoffs: tuple[dt.date, ...]
    users_share: float

    def epochs(self, epochs: int) -> int:
        """As many optimizer steps as today's set gets, at least: below 1x, ``epochs / size`` epochs
        (early stopping on the validation loss still ends each when it stops improving), so a
        small set is trained to convergence rather than for an eighth of the steps."""
        return epochs if self.size >= 1 else math.ceil(epochs / self.size)

    def users(self, frame: DataFrame) -> DataFrame:
        """The rows of ``frame`` whose user is in this size's share (all of them at share 1)."""
        if self.users_share >= 1.0:
            return frame
        bucket = F.abs(F.xxhash64(F.concat(F.col("user_id"), F.lit("/learning_curve")))) % SHARE_BUCKETS
        return frame.filter(bucket < int(round(self.users_share * SHARE_BUCKETS)))


@dataclass
class LearningCurve:
    run: str
    points: pd.DataFrame  # model, seed, size, cutoffs, users_share, examples, max_epochs, normalized_gini
    report: Location

    def lines(self) -> list[str]:
        means = self.points.groupby(["model", "size"], sort=False)["normalized_gini"].agg(["mean", "std"])
        examples_at = self.points.groupby("size")["examples"].first()
        lines = [f"{'model':<20} {'size':>6} {'examples':>10} {'Gini':>8} {'± sd':>7}"]
        for (model, size), row in means.iterrows():
            spread = f"{row['std']:.4f}" if pd.notna(row["std"]) else "-"
            lines.append(f"{model:<20} {size:>6.3g} {examples_at[size]:>10,} {row['mean']:>8.4f} {spread:>7}")
        return [*lines, "", f"table  {LEARNING_CURVE} (run = {self.run})", f"plot   {self.report}"]


def training_sizes(features: FeaturesConfig, sizes: list[float]) -> list[TrainingSize]:
    """Each size as cutoffs and a user share (see the module docstring); ascending."""
    plan = plan_cutoffs(features)
    points = []
    for size in sorted(sizes):
        if size <= 0:
            raise ValueError(f"evaluate.curve_sizes: {size} is not a positive multiple of the training set")
        if size <= 1:
            points.append(TrainingSize(size, plan.train, size))
            continue
        denser = dataclasses.replace(
            features,
            train_cutoffs=round(features.train_cutoffs * size),
            cutoff_step_days=max(1, int(features.cutoff_step_days / size)),
        )
        points.append(TrainingSize(size, plan_cutoffs(denser).train, 1.0))
    return points


def learning_curve(
    spark: SparkSession, store: TableStore, config: Config, seeds: list[int] | None = None
) -> LearningCurve:
    """Train every model of evaluate.curve_models at every size; save and plot their Ginis."""
    settings, features = config.evaluate, config.features
    seeds = list(seeds or settings.seeds)
    unknown = set(settings.curve_models) - set(CURVE_MODELS)
    if unknown:
        expected = ", ".join(CURVE_MODELS)
        raise ValueError(f"evaluate.curve_models: unknown {sorted(unknown)}; expected {expected}")
    plan = plan_cutoffs(features)
    sizes = training_sizes(features, settings.curve_sizes)
    every_cutoff = sorted({c for point in sizes for c in point.cutoffs} | set(plan.train))
    fixed = build_training_set(spark, store, features, dataclasses.replace(plan, train=tuple(every_cutoff)))
    truth = actuals(fixed.evaluation).localCheckpoint()  # every point is ranked against it
    rows = []
    for point in sizes:
        train = point.users(examples(store, point.cutoffs, plan.horizon_days))
        with stage(f"learning curve: size {point.size:g}") as timer:
            timer.rows = train.count()
            predictions = _point_predictions(spark, store, config, point, train, fixed, seeds)
            ginis = normalized_ginis(predictions, truth)
        for (model, seed), gini in ((_key(name), g) for name, g in ginis.items()):
            LOG.info("size %g (%d examples): %s seed %d Gini %.4f", point.size, timer.rows, model, seed, gini)
            epochs = 0 if model == TREES else point.epochs(config.train.epochs)
            rows.append(
                (model, seed, point.size, len(point.cutoffs), point.users_share, timer.rows, epochs, gini)
            )
    columns = ["model", "seed", "size", "cutoffs", "users_share", "examples", "max_epochs", "normalized_gini"]
    points = pd.DataFrame(rows, columns=columns)
    run = f"generated_{plan.name}"  # the evaluation's run of the same plan (its report embeds the curve)
    _save(spark, store, run, points)
    return LearningCurve(run, points, _write_plot(config, store, run, points))


def _point_predictions(
    spark: SparkSession,
    store: TableStore,
    config: Config,
    point: TrainingSize,
    train: DataFrame,
    fixed: TrainingSet,
    seeds: list[int],
) -> dict[str, DataFrame]:
    """Every model's (user_id, predicted) on the evaluation users, trained on ``train``; keys
    ``model/seed``."""
    scored = fixed.evaluation
    predictions: dict[str, DataFrame] = {}
    models = config.evaluate.curve_models
    if TREES in models:
        columns = [*FEATURE_COLUMNS, "net_value", "bought"]
        sample = fit_sample(train, columns, config.evaluate.max_fit_rows, config.train.seed)
        trees = GradientBoostingBaseline.fit(sample, list(FEATURE_COLUMNS), config.train.seed)
        predictions[f"{TREES}/0"] = predict_on_spark(scored.select("user_id", *FEATURE_COLUMNS), trees)
    data = _data_identity(store, config.features, fixed.plan, point)
    for architecture, model in ((a, m) for a, m in NEURAL_MODELS.items() if m in models):
        for seed in seeds:
            settings = dataclasses.replace(
                config.train,
                epochs=point.epochs(config.train.epochs),
                seed=seed,
                architecture=architecture,
                models_root=config.evaluate.models_root,
            )
            trained = fit_examples(
                spark,
                train,
                fixed.validation,
                settings,
                config.features.sequence_length,
                data,
                also_in=(config.train.models_root,),  # ltv train's models
            )
            batch = config.score.batch_size
            predictions[f"{model}/{seed}"] = model_predictions(scored, trained.artifact_dir, batch)
    return predictions


def _data_identity(
    store: TableStore, features: FeaturesConfig, plan: CutoffPlan, point: TrainingSize
) -> dict:
    """What a point's neural models are trained on. With every user it is the identity ltv train
    and ltv evaluate give the examples of these training cutoffs and the validation cutoff (at 1x:
    the configured plan), so the models of one are reused by the others, not retrained."""
    identity = examples_identity(store, features, (*point.cutoffs, plan.validation))
    if point.users_share >= 1.0:
        return identity
    return {**identity, "users_share": point.users_share}


def _key(name: str) -> tuple[str, int]:
    model, seed = name.rsplit("/", 1)
    return model, int(seed)


def _save(spark: SparkSession, store: TableStore, run: str, points: pd.DataFrame) -> None:
    """The run's partition replaced: a re-run leaves one copy."""
    frame = spark.createDataFrame(points.assign(run=run)).withColumn("seed", F.col("seed").cast("int"))
    store.overwrite(frame, LEARNING_CURVE, ["run"], {"run": [run]})


def saved_points(store: TableStore, run: str) -> pd.DataFrame | None:
    """The learning curve saved for ``run``, or None (the evaluation's report plots it when there)."""
    if not store.exists(LEARNING_CURVE):
        return None
    points = store.read(LEARNING_CURVE).filter(F.col("run") == run).drop("run").toPandas()
    return points if len(points) else None


def reference_ginis(store: TableStore, run: str) -> dict[str, float]:
    """The oracle's and the ceiling's Gini of the evaluation ``run``, where it has been evaluated."""
    if not store.exists(EVALUATION_METRICS):
        return {}
    rows = (
        store.read(EVALUATION_METRICS)
        .filter((F.col("run") == run) & F.col("model").isin(*REFERENCES))
        .groupBy("model")
        .agg(F.mean("normalized_gini").alias("gini"))
        .collect()
    )
    return {row["model"]: row["gini"] for row in rows}


def _write_plot(config: Config, store: TableStore, run: str, points: pd.DataFrame) -> Location:
    folder = Location.of(config.evaluate.reports_dir) / run
    folder.mkdir()
    (folder / "learning_curve.csv").write_text(points.to_csv(index=False))
    plot = folder / "learning_curve.png"
    plot.write_bytes(figure_png(plot_learning_curve(points, reference_ginis(store, run))))
    return plot
