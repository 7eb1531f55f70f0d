"""Every model on the same users of a time holdout -> gold.evaluation_metrics and reports/<run>/.

Warehouse (a shop's own data, ``--data warehouse``): whatever bronze.events holds, on the cutoff
plan of the config (features.*). The neural models and the static baselines learn from the
training cutoffs' examples (validation cutoff for early stopping), BG/NBD + Gamma-Gamma from the
RFM summary at the evaluation cutoff, the naive baseline repeats each user's last window; all
are scored on the users active before the evaluation cutoff. This is how a shop decides whether
to trust the models on its own history.

Generated world: the same, plus the references only the generator knows: the oracle (its
expected value given each user's hidden state) and the ceiling (the best prediction from observable
history): closed form on the purchases-only world, a posterior computed by importance sampling on
a fixed sample of users on the sessions world.

CDNOW: one cutoff (39 weeks of calibration, 39 of holdout), so the supervised models cannot learn
from an earlier window; they are cross-fitted instead: customers are split into folds by a hash of
their id, each fold is predicted by models trained on the other folds. BG/NBD needs no labels and
is fitted on every customer's calibration summary. Every customer gets one out-of-fold prediction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import textwrap
from dataclasses import dataclass, field

import mlflow
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ltv_spark.artifacts import read_categories
from ltv_spark.baselines import (
    Baseline,
    BtydBaseline,
    GradientBoostingBaseline,
    LinearBaseline,
    predict_on_spark,
    rfm_summary,
)
from ltv_spark.baselines.base import fit_sample
from ltv_spark.baselines.btyd import RFM_COLUMNS
from ltv_spark.baselines.categories import CO_PURCHASE, PAST_CATEGORIES, POPULARITY, category_baselines
from ltv_spark.baselines.naive import NAIVE, last_window_predictions
from ltv_spark.config import Config, cdnow_config
from ltv_spark.cross_sell import TOP_K, bought_categories, category_metrics
from ltv_spark.dataset import join_examples, plan_cutoffs
from ltv_spark.evaluation import (
    CEILING,
    NEURAL_MODELS,
    ORACLE,
    RUN_KEYS,
    MetricTables,
    actuals,
    format_cross_sell,
    format_flagged_segments,
    format_summary,
    metric_tables,
)
from ltv_spark.features import FEATURE_COLUMNS, sessions_before, user_features
from ltv_spark.frames import union_all
from ltv_spark.labels import user_labels
from ltv_spark.pipeline.bronze import (
    CDNOW_EVENTS,
    EVENTS,
    ensure_observable_ceiling,
    ensure_truth,
    ingest_cdnow,
)
from ltv_spark.pipeline.gold import (
    EVALUATION_CATEGORIES,
    EVALUATION_METRICS,
    EVALUATION_SEGMENTS,
    build_training_set,
    examples_identity,
    feature_settings,
)
from ltv_spark.pipeline.learning_curve import saved_points
from ltv_spark.pipeline.training import fit_examples
from ltv_spark.progress import LOG, stage
from ltv_spark.report import write_report
from ltv_spark.score import category_predictions, model_predictions
from ltv_spark.segments import segment_metrics, user_segments
from ltv_spark.sequences import user_sequences
from ltv_spark.spark_metrics import METRIC_COLUMNS
from ltv_spark.stacking import WEIGHTS, CalibratedBaseline, Stack
from ltv_spark.storage import Location
from ltv_spark.tables import TableStore
from ltv_spark.tracking import as_tag, log_metrics, tracked_run
from ltv_spark.world.observable import ROUNDS

ALL_CATEGORIES = "ALL"  # gold.evaluation_categories: the row of a run's mean AUC and top-k hit rate
STACKED, STACKED_ARCHITECTURE = "transformer_gb_stack", "transformer"  # stacked with boosted trees
CEILING_COLUMNS = ("ceiling_value", "ceiling_p_buy")  # in world.truth where the world has a closed form
SAMPLED_ORACLE = "oracle_on_ceiling_users"  # the oracle on the observable ceiling's sample
DATA = {"generated": "the generated world", "warehouse": "bronze.events", "cdnow": "CDNOW"}
RUN_COLUMNS = "model string, seed int, user_id string, predicted double, churn_score double"


@dataclass
class EvaluationSummary:
    run: str
    report: Location
    tables: MetricTables
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            *format_summary(self.tables.summary()),
            "",
            *format_flagged_segments(self.tables.segment_summary()),
            *format_cross_sell(self.tables.cross_sell_summary(), TOP_K),
            *[line for note in self.notes for line in textwrap.wrap(note, 110, subsequent_indent="  ")],
            f"metrics table {EVALUATION_METRICS} (run = {self.run})",
            f"report        {self.report}",
        ]


@dataclass
class Holdout:
    """What every model is scored on: the users, their truth, and how each model was run."""

    run: str
    title: str
    actuals: DataFrame  # user_id, actual, churned
    runs: list[DataFrame] = field(default_factory=list)  # RUN_COLUMNS each
    churn_from: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    data_versions: dict = field(default_factory=dict)
    model_data: list[dict] = field(default_factory=list)  # per split: what its models learn from
    segments: DataFrame | None = None  # user_id, segment_kind, segment (ltv_spark.segments)
    category_runs: list[DataFrame] = field(default_factory=list)  # CATEGORY_RUN_COLUMNS each
    bought: DataFrame | None = None  # user_id, category: the cross-sell truth
    cutoff: dt.date | None = None
    horizon_days: int | None = None
    # the neural models' decile calibration is fitted on the training and validation users, not on
    # the validation users alone (CDNOW: see _cdnow_holdout)
    calibrate_on_training: bool = False

    def add(self, predictions: DataFrame, model: str, seed: int, churn_from: str) -> None:
        self.runs.append(predictions.select(F.lit(model).alias("model"), F.lit(seed).alias("seed"), "*"))
        self.churn_from[model] = churn_from

    def add_categories(self, scores: DataFrame, model: str, seed: int) -> None:
        """``scores``: user_id, category, score (every user on every category of the vocabulary)."""
        score = F.col("score").cast("double").alias("score")
        self.category_runs.append(
            scores.select(
                F.lit(model).alias("model"), F.lit(seed).alias("seed"), "user_id", "category", score
            )
        )


def evaluate(
    spark: SparkSession, store: TableStore, config: Config, data: str, seeds: list[int] | None = None
) -> EvaluationSummary:
    """Compare every model on ``data`` (one of DATA); save the metrics and the report. One MLflow
    run, with a nested run per neural model trained and per model compared (``_track``)."""
    with tracked_run(config.tracking, f"evaluate {data}", config, {"data": data}):
        return _evaluate(spark, store, config, data, list(seeds or config.evaluate.seeds))


def _evaluate(
    spark: SparkSession, store: TableStore, config: Config, data: str, seeds: list[int]
) -> EvaluationSummary:
    if data in ("generated", "warehouse"):
        holdout = _warehouse_holdout(spark, store, config, seeds, data)
        if data == "generated":
            _add_references(spark, store, config, holdout)
    elif data == "cdnow":
        holdout = _cdnow_holdout(spark, store, config, seeds)
    else:
        raise ValueError(f"unknown data {data!r}: expected one of {', '.join(DATA)}")
    # Materialized once, lineage cut: the ranks reuse the scores three times, and the optimizer
    # chokes (runs out of heap) on the plan of every training and scoring step beneath them.
    scored = union_all(holdout.runs).join(holdout.actuals, "user_id").localCheckpoint()
    with stage(f"evaluate: metrics of {len(holdout.runs)} runs") as timer:
        tables = metric_tables(scored, holdout.churn_from)
        timer.rows = int(tables.runs["users"].sum())
    if holdout.segments is not None:
        with stage("evaluate: metrics per segment") as timer:
            tables.segments = segment_metrics(scored, holdout.segments, RUN_KEYS).toPandas()
            timer.rows = len(tables.segments)
    if holdout.category_runs:
        with stage(f"evaluate: cross-sell of {len(holdout.category_runs)} runs") as timer:
            runs = union_all(holdout.category_runs).localCheckpoint()
            per_category, summary = category_metrics(runs, holdout.bought, RUN_KEYS)
            tables.categories = per_category.toPandas().sort_values([*RUN_KEYS, "category"])
            tables.categories = tables.categories.reset_index(drop=True)
            tables.cross_sell = summary.toPandas().sort_values(RUN_KEYS, ignore_index=True)
            timer.rows = int(tables.categories["users"].sum())
    _save_metrics(spark, store, holdout, tables)
    notes = [*holdout.notes, "metrics: exact, on Spark, over every user of the holdout (no sample)"]
    report = write_report(
        Location.of(config.evaluate.reports_dir) / holdout.run,
        holdout.title,
        notes,
        tables,
        learning_curve=saved_points(store, holdout.run),  # ltv learning-curve, where it has run
    )
    _track(config, holdout, tables, report)
    return EvaluationSummary(holdout.run, report, tables, holdout.notes)


def _warehouse_holdout(
    spark: SparkSession, store: TableStore, config: Config, seeds: list[int], data: str
) -> Holdout:
    """Every model trained and scored on the cutoff plan over bronze.events (run name ``data``)."""
    plan = plan_cutoffs(config.features)
    examples = build_training_set(spark, store, config.features, plan).materialized()
    cutoff, horizon = plan.evaluation, plan.horizon_days
    holdout = Holdout(
        run=f"{data}_{plan.name}",
        title=f"LTV models on {DATA[data]}: cutoff {cutoff}, horizon {horizon} days",
        actuals=actuals(examples.evaluation),
        data_versions=examples_identity(store, config.features, plan.all_cutoffs),
        # as ltv train names its data: a production model with these settings is not trained again
        model_data=[examples_identity(store, config.features, (*plan.train, plan.validation))],
        cutoff=cutoff,
        horizon_days=horizon,
        segments=user_segments(examples.evaluation, store.read(EVENTS)),
    )
    holdout.notes += [
        f"training cutoffs {', '.join(map(str, plan.train))}; validation {plan.validation}; "
        f"evaluation {cutoff}; horizon {horizon} days",
        "users: everyone with an event before the evaluation cutoff",
    ]
    splits = [(examples.train, examples.validation, examples.evaluation)]
    folders = _neural_runs(spark, holdout, config, seeds, splits)
    trees = _static_runs(holdout, config, [(examples.train, examples.evaluation)])
    _stacked_runs(holdout, config, splits, folders, trees)
    _cross_sell_runs(holdout, config, store.read(EVENTS), examples.evaluation, folders)
    _btyd_run(holdout, config, store.read(EVENTS), examples.evaluation, cutoff, horizon)
    _naive_run(holdout, store.read(EVENTS), examples.evaluation, cutoff, horizon)
    return holdout


def _add_references(spark: SparkSession, store: TableStore, config: Config, holdout: Holdout) -> None:
    """The generator's oracle, and its closed-form ceiling where the world has one."""
    truth = ensure_truth(spark, store, config.world, holdout.cutoff, holdout.horizon_days)
    holdout.add(_from_truth(truth, "expected_value", "p_buy"), ORACLE, 0, "probability")
    holdout.notes.append("oracle: the generator's exact expected value given each user's hidden state")
    if CEILING_COLUMNS[0] in truth.columns:
        holdout.add(_from_truth(truth, *CEILING_COLUMNS), CEILING, 0, "probability")
        holdout.notes.append(
            "ceiling: the best prediction from each customer's purchases before the cutoff alone, under "
            "the world's true parameters (BG/NBD eq. 10 x the Gamma-Gamma posterior mean spend)"
        )
    elif config.world.model == "sessions" and config.evaluate.ceiling_particles > 0:
        _add_observable_ceiling(spark, store, config, holdout, truth)


def _add_observable_ceiling(
    spark: SparkSession, store: TableStore, config: Config, holdout: Holdout, truth: DataFrame
) -> None:
    """The sessions world's ceiling (ltv_spark.world.observable): one run per independent particle set,
    on a fixed sample of users; there, the oracle again, to compare on the same users."""
    settings, users = config.evaluate, config.world.users
    share = 1.0 if settings.ceiling_users <= 0 else min(1.0, settings.ceiling_users / users)
    particles = settings.ceiling_particles
    ceiling = ensure_observable_ceiling(
        spark, store, config.world, holdout.cutoff, holdout.horizon_days, particles, share
    ).join(holdout.actuals.select("user_id"), "user_id", "left_semi")
    sets = [
        row.particle_set
        for row in ceiling.select("particle_set").distinct().orderBy("particle_set").collect()
    ]
    for particle_set in sets:
        this_set = ceiling.filter(F.col("particle_set") == particle_set)
        holdout.add(_from_truth(this_set, *CEILING_COLUMNS), CEILING, particle_set, "probability")
    if share < 1.0:
        sampled = truth.join(ceiling.select("user_id").distinct(), "user_id", "left_semi")
        holdout.add(_from_truth(sampled, "expected_value", "p_buy"), SAMPLED_ORACLE, 0, "probability")
    ess = ceiling.agg(
        F.countDistinct("user_id").alias("users"),
        F.percentile_approx("effective_sample_size", [0.05, 0.5]).alias("ess"),
    ).first()
    low, median = ess["ess"] or (float("nan"), float("nan"))
    sample = f"a fixed {share:.0%} sample of the world's users: {ess['users']:,} of the holdout"
    holdout.notes.append(
        "ceiling: the posterior mean of the oracle's value given only each user's events before the cutoff, "
        f"under the generator's own model and priors (ltv_spark.world.observable); {sample}; "
        f"{len(sets)} independent sets of {particles} particles x {ROUNDS} rounds of importance sampling "
        f"(its ± is the Monte Carlo error); effective sample size per user: median {median:.0f}, "
        f"5th percentile {low:.0f}"
        + (f"; {SAMPLED_ORACLE}: the oracle on the ceiling's users" if share < 1.0 else "")
    )


def _cdnow_holdout(spark: SparkSession, store: TableStore, config: Config, seeds: list[int]) -> Holdout:
    settings, features = config.evaluate, config.features
    config = cdnow_config(config)  # its neural models train at CDNOW's own learning rate
    ingest_cdnow(spark, store)  # loaded once; a re-run commits nothing
    events = store.read(CDNOW_EVENTS)
    cutoff, horizon, folds = settings.cdnow_cutoff, settings.cdnow_horizon_days, settings.cdnow_folds
    with stage(f"CDNOW: features at {cutoff}") as timer:
        sessions = sessions_before(
            events, cutoff, features.session_gap_minutes, features.max_events_per_user_day
        )
        examples = join_examples(
            user_features(sessions, events, cutoff),
            user_sequences(sessions, cutoff, features.sequence_length),
            user_labels(events, cutoff, horizon),
        ).localCheckpoint()  # read by every fold and model; its blocks go with the frame
        timer.rows = examples.count()
    holdout = Holdout(
        run=f"cdnow_{cutoff}_h{horizon}",
        title=f"LTV models on CDNOW: calibration until {cutoff}, holdout {horizon} days",
        actuals=actuals(examples),
        data_versions={
            CDNOW_EVENTS: store.version(CDNOW_EVENTS),
            "cutoffs": [cutoff.isoformat()],
            "horizon_days": horizon,
            "settings": feature_settings(features),
            "folds": folds,
            "validation_share": settings.cdnow_validation_share,
            "calibration": "training and validation customers",
        },
        segments=user_segments(examples, events),
        calibrate_on_training=True,
    )
    holdout.notes += [
        f"{timer.rows:,} customers; calibration 1997-01-01..{cutoff - dt.timedelta(days=1)}, "
        f"holdout {horizon} days; the sequence model sees purchase-only sessions",
        f"supervised models cross-fitted over {folds} customer folds (hash of the id): every customer is "
        "predicted by models that never saw its holdout",
        "neural models' expected LTV decile-calibrated on their training and validation customers: the "
        "validation customers alone are too few to measure the total (README)",
    ]
    fold = F.abs(F.xxhash64("user_id")) % folds
    in_validation = F.abs(F.xxhash64(F.concat(F.col("user_id"), F.lit("/validation")))) % 1000 < int(
        1000 * settings.cdnow_validation_share
    )
    holdout.model_data = [{**holdout.data_versions, "split": k} for k in range(folds)]
    splits = []
    for k in range(folds):
        others = examples.filter(fold != k)
        splits.append(
            (others.filter(~in_validation), others.filter(in_validation), examples.filter(fold == k))
        )
    folders = _neural_runs(spark, holdout, config, seeds, splits)
    trees = _static_runs(holdout, config, [(train, evaluation) for train, _, evaluation in splits])
    _stacked_runs(holdout, config, splits, folders, trees)
    _btyd_run(holdout, config, events, examples, cutoff, horizon)
    _naive_run(holdout, events, examples, cutoff, horizon)
    return holdout


def _neural_runs(
    spark: SparkSession,
    holdout: Holdout,
    config: Config,
    seeds: list[int],
    splits: list[tuple[DataFrame, DataFrame, DataFrame]],
) -> dict[tuple[str, int], list[str]]:
    """One training per architecture, seed and split (train, validation, scored); splits' scores unite.
    Returns each (architecture, seed)'s model folders, one per split."""
    folders: dict[tuple[str, int], list[str]] = {}
    for architecture, model in NEURAL_MODELS.items():
        for seed in seeds:
            settings = dataclasses.replace(
                config.train, seed=seed, architecture=architecture, models_root=config.evaluate.models_root
            )
            scores = []
            for index, (train, validation, scored) in enumerate(splits):
                data = holdout.model_data[index]  # the same data: the same model
                calibration_rows = train.unionByName(validation) if holdout.calibrate_on_training else None
                name = f"{architecture} seed {seed} split {index}"
                with tracked_run(config.tracking, name, settings, {"data_versions": data}):
                    trained = fit_examples(
                        spark,
                        train,
                        validation,
                        settings,
                        config.features.sequence_length,
                        data,
                        also_in=(config.train.models_root,),  # ltv train's models
                        calibration_rows=calibration_rows,
                    )
                folders.setdefault((architecture, seed), []).append(trained.artifact_dir)
                scores.append(_neural_scores(scored, trained.artifact_dir, config))
            holdout.add(union_all(scores), model, seed, "probability")
    holdout.notes.append(
        f"neural models: {len(seeds)} seeds each ({', '.join(map(str, seeds))}); mean ± standard deviation; "
        "expected LTV decile-calibrated (ltv_spark.calibration)"
        + ("" if holdout.calibrate_on_training else " on the validation cutoff")
    )
    return folders


def _cross_sell_runs(
    holdout: Holdout,
    config: Config,
    events: DataFrame,
    scored: DataFrame,
    folders: dict[tuple[str, int], list[str]],
) -> None:
    """Each neural model's cross-sell head and the category baselines (ltv_spark.baselines.categories)
    on the vocabulary of the first model's head; nothing where no model has that head."""
    with_head = {key: per_split[0] for key, per_split in folders.items() if read_categories(per_split[0])}
    if not with_head:
        holdout.notes.append(
            "cross-sell: no model has a cross-sell head (train.next_categories; < 2 categories)"
        )
        return
    categories = read_categories(next(iter(with_head.values())))
    holdout.bought = bought_categories(scored)
    for (architecture, seed), folder in with_head.items():
        probabilities = category_predictions(scored, folder, config.score.batch_size)
        scores = probabilities.withColumnRenamed("probability", "score")
        holdout.add_categories(scores, NEURAL_MODELS[architecture], seed)
    users = scored.select("user_id")
    baselines = category_baselines(events, users, holdout.cutoff, categories, config.train.seed)
    for name, scores in baselines.items():
        holdout.add_categories(scores, name, 0)
    holdout.notes.append(
        f"cross-sell: P(buys in each of {len(categories)} categories in the horizon) from each neural "
        f"model's second head, against {POPULARITY} (the most bought categories), {PAST_CATEGORIES} "
        f"(the user's own purchases, carts and views per category) and {CO_PURCHASE} (implicit ALS on "
        "user x category)"
    )


def _neural_scores(rows: DataFrame, artifact_dir: str, config: Config) -> DataFrame:
    return model_predictions(rows, artifact_dir, config.score.batch_size)


def _stacked_runs(
    holdout: Holdout,
    config: Config,
    splits: list[tuple[DataFrame, DataFrame, DataFrame]],
    folders: dict[tuple[str, int], list[str]],
    trees: list[Baseline],
) -> None:
    """The Transformer stacked with boosted trees (ltv_spark.stacking), per seed and split: the
    trees calibrated on the split's validation users, the weight chosen on them."""
    features = ["user_id", *FEATURE_COLUMNS]
    calibrated = [
        CalibratedBaseline.fit(tree, validation.select(*features, "net_value"))
        for tree, (_, validation, _) in zip(trees, splits, strict=True)
    ]
    weights = []
    for (architecture, seed), per_split in folders.items():
        if architecture != STACKED_ARCHITECTURE:
            continue
        scores = []
        for index, ((_, validation, scored), folder, tree) in enumerate(
            zip(splits, per_split, calibrated, strict=True)
        ):
            with stage(f"stack: weight of the transformer (seed {seed}, split {index}) on validation"):
                stack = Stack.fit(
                    _neural_scores(validation, folder, config),
                    predict_on_spark(validation.select(*features), tree),
                    actuals(validation),
                )
            LOG.info("stack weight %.1f: validation Gini %.4f", stack.weight, stack.validation_gini)
            weights.append(stack.weight)
            scores.append(
                stack.predict(
                    _neural_scores(scored, folder, config), predict_on_spark(scored.select(*features), tree)
                )
            )
        holdout.add(union_all(scores), STACKED, seed, "probability")
    holdout.notes.append(
        f"{STACKED}: w x transformer + (1 - w) x gradient_boosting, the trees decile-calibrated on the "
        f"validation users, the transformer as above, w of {WEIGHTS[0]:.1f}..{WEIGHTS[-1]:.1f} chosen by the "
        "validation Gini per seed and split: " + ", ".join(f"{w:.1f}" for w in weights)
    )


def _static_runs(
    holdout: Holdout, config: Config, splits: list[tuple[DataFrame, DataFrame]]
) -> list[Baseline]:
    """Gradient boosting and linear regression, fitted per split on a bounded sample of its rows.
    Returns the boosted trees, one per split."""
    columns = [*FEATURE_COLUMNS, "net_value", "bought"]
    features = list(FEATURE_COLUMNS)
    seed = config.train.seed
    runs: dict[str, list[DataFrame]] = {}
    churn_from = {}
    trees: list[Baseline] = []
    for train, scored in splits:
        sample = fit_sample(train, columns, config.evaluate.max_fit_rows, seed)
        fitted: list[Baseline] = [
            GradientBoostingBaseline.fit(sample, features, seed),
            LinearBaseline.fit(sample, features),
        ]
        trees.append(fitted[0])
        for baseline in fitted:
            runs.setdefault(baseline.name, []).append(
                predict_on_spark(scored.select("user_id", *features), baseline)
            )
            churn_from[baseline.name] = baseline.churn_from
    for name, predictions in runs.items():
        holdout.add(union_all(predictions), name, 0, churn_from[name])
    holdout.notes.append(
        "linear_regression has no purchase probability: its churn AUC ranks users by predicted value"
    )
    return trees


def _btyd_run(
    holdout: Holdout, config: Config, events: DataFrame, users: DataFrame, cutoff: dt.date, horizon: int
) -> None:
    unit = config.evaluate.btyd_time_unit_days
    summary = rfm_summary(events, cutoff, unit)
    sample = fit_sample(summary, RFM_COLUMNS, config.evaluate.max_fit_rows, config.train.seed)
    model = BtydBaseline.fit(sample, horizon=horizon / unit, spend_from=config.evaluate.btyd_spend_from)
    rows = users.select("user_id").join(summary, "user_id", "left")
    holdout.add(predict_on_spark(rows, model), model.name, 0, model.churn_from)
    parameters = ", ".join(f"{k}={v:.3f}" for k, v in model.parameters().items())
    holdout.notes.append(
        f"BG/NBD + Gamma-Gamma fitted on the RFM summary at the cutoff ({parameters}); "
        f"spend from {model.spend_from} purchases; users without a purchase before the cutoff get 0"
    )


def _naive_run(holdout: Holdout, events: DataFrame, users: DataFrame, cutoff: dt.date, horizon: int) -> None:
    holdout.add(last_window_predictions(events, users, cutoff, horizon), NAIVE, 0, "value")
    holdout.notes.append(
        f"{NAIVE}: each user's net value in the {horizon} days before the cutoff (what a shop tries first)"
    )


def _from_truth(truth: DataFrame, value: str, p_buy: str) -> DataFrame:
    """A reference run from world.truth: its expected value, and churn as 1 - P(buy)."""
    return truth.select("user_id", F.col(value).alias("predicted"), (1 - F.col(p_buy)).alias("churn_score"))


def _track(config: Config, holdout: Holdout, tables: MetricTables, report: Location) -> None:
    """On the evaluation's MLflow run: what it evaluated as tags, a nested run per model with its
    metrics (mean and spread over seeds; each seed's as per_seed/<metric> at step = seed), the report
    as artifacts."""
    mlflow.set_tags(
        {
            "run": holdout.run,
            "data_versions": as_tag(holdout.data_versions),
            "cutoff": str(holdout.cutoff),
            "horizon_days": str(holdout.horizon_days),
        }
    )
    metrics = [c for c in METRIC_COLUMNS if c != "users"]
    for row in tables.summary().to_dict("records"):
        model = row["model"]
        with tracked_run(config.tracking, model, tags={"model": model}):
            log_metrics({k: v for k, v in row.items() if k not in ("model", "runs")})
            for seeded in tables.runs[tables.runs["model"] == model].to_dict("records"):
                log_metrics({f"per_seed/{k}": seeded[k] for k in metrics}, step=int(seeded["seed"]))
    if not report.remote:  # an object store's report stays where it is, named by the tag
        mlflow.log_artifacts(report.parent.uri, artifact_path="report")
    mlflow.set_tag("report", report.uri)


def _save_metrics(spark: SparkSession, store: TableStore, holdout: Holdout, tables: MetricTables) -> None:
    """One row per (run, model, seed), and per (run, model, seed, segment) where the holdout has
    segments; the run's partition is replaced, so a re-run leaves one copy."""
    rows = tables.runs.assign(
        run=holdout.run, data_versions=json.dumps(holdout.data_versions, sort_keys=True)
    )
    frame = spark.createDataFrame(pd.DataFrame(rows)).withColumn("seed", F.col("seed").cast("int"))
    store.overwrite(frame, EVALUATION_METRICS, ["run"], {"run": [holdout.run]})
    if tables.segments is not None:
        per_segment = spark.createDataFrame(tables.segments.assign(run=holdout.run))
        per_segment = per_segment.withColumn("seed", F.col("seed").cast("int"))
        store.overwrite(per_segment, EVALUATION_SEGMENTS, ["run"], {"run": [holdout.run]})
    if tables.cross_sell is not None:
        rows = _category_rows(spark, holdout.run, tables)
        store.overwrite(rows, EVALUATION_CATEGORIES, ["run"], {"run": [holdout.run]})


def _category_rows(spark: SparkSession, run: str, tables: MetricTables) -> DataFrame:
    """gold.evaluation_categories: a row per (model, seed, category) with its AUC, and one per
    (model, seed) with category ALL_CATEGORIES, the mean AUC and the top-k hit rate."""
    overall = tables.cross_sell.assign(category=ALL_CATEGORIES).rename(columns={"mean_auc": "auc"})
    columns = ["model", "seed", "category", "users", "buyers", "auc", "top_k_hit_rate"]
    rows = pd.concat([tables.categories.assign(top_k_hit_rate=float("nan")), overall])[columns]
    frame = spark.createDataFrame(rows.assign(run=run))
    return frame.select(
        "run",
        "model",
        F.col("seed").cast("int"),
        "category",
        F.col("users").cast("long"),
        F.col("buyers").cast("long"),
        F.nanvl("auc", F.lit(None)).alias("auc"),
        F.nanvl("top_k_hit_rate", F.lit(None)).alias("top_k_hit_rate"),
    )
