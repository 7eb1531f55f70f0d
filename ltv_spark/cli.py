"""The ``ltv`` command: generate, ingest, ingest-cdnow, sessions, features, training-set, train, score,
evaluate, learning-curve, refresh, retrain, promote, register, stream, forget, vacuum, demo.

Each command parses its flags into config overrides, builds the session and table store, calls one
pipeline function and prints a one-screen summary. ``jobs/*.py`` are the same commands for
spark-submit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ltv_spark.config import Config, ConfigError, load_config
from ltv_spark.dataset import plan_cutoffs
from ltv_spark.lease import Locked
from ltv_spark.pipeline import (
    CDNOW_EVENTS,
    CDNOW_QUARANTINE,
    EVENTS,
    FEATURES,
    INGEST_FILES,
    LABELS,
    QUARANTINE,
    SEQUENCES,
    SESSIONS,
    WorldExists,
    build_cutoff,
    build_sessions,
    build_training_set,
    generate_world,
    ingest_cdnow,
    ingest_raw,
)
from ltv_spark.pipeline.evaluation import DATA, evaluate
from ltv_spark.pipeline.forget import FORGET_AUDIT, forget_users
from ltv_spark.pipeline.learning_curve import learning_curve
from ltv_spark.pipeline.refresh import REFRESH_RUNS, RefreshFailed, refresh, refresh_range, retrain
from ltv_spark.pipeline.scoring import PREDICTIONS, day_after_data, score_as_of
from ltv_spark.pipeline.streaming import start_stream
from ltv_spark.pipeline.training import register_existing, train_model
from ltv_spark.pipeline.vacuum import vacuum_warehouse
from ltv_spark.progress import StageClock, configure_logging, summary
from ltv_spark.registry import CHALLENGER, CHAMPION, ModelNotFound, promote
from ltv_spark.session import build_spark
from ltv_spark.tables import TableStore, open_store
from ltv_spark.tracking import absolute_uri

# flag -> config key; flags left unset keep the configured value
GENERATE_FLAGS = {
    "model": "world.model",
    "users": "world.users",
    "days": "world.days",
    "seed": "world.seed",
    "dirty_rate": "world.dirty_rate",
    "format": "world.format",
    "out": "world.out",
    "truth_cutoff": "world.truth_cutoff",
    "truth_horizon": "world.truth_horizon_days",
    "files_per_day": "world.files_per_day",
}
INGEST_FLAGS = {"raw_dir": "ingest.raw_dir", "format": "ingest.format"}
FEATURE_FLAGS = {"horizon": "features.horizon_days", "sequence_length": "features.sequence_length"}
TRAIN_FLAGS = {"epochs": "train.epochs"}
EVALUATE_FLAGS = {"epochs": "train.epochs"}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(logging.INFO if not args.quiet else logging.WARNING, args.log_format)
    try:
        config = load_config(args.env, [*args.set, *_flag_overrides(args)], **_conf_dir(args))
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    spark = build_spark(config)
    if config.env == "local":
        spark.sparkContext.setLogLevel("ERROR")
    store = open_store(spark, config.tables)
    try:
        return COMMANDS[args.command](args, config, spark, store)
    except (WorldExists, Locked, RefreshFailed, ModelNotFound) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def run_generate(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    result = generate_world(spark, store, config.world, overwrite=args.overwrite)
    print(summary(f"ltv generate: seed {config.world.seed}, {config.world.users:,} users", result.lines()))
    return 0


def run_ingest(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    counts = ingest_raw(spark, store, config.ingest)
    print(
        summary(
            f"ltv ingest: {config.ingest.raw_dir}",
            [*counts.lines(), *_where(store, EVENTS, QUARANTINE, INGEST_FILES)],
        )
    )
    return 0 if counts.balanced else 1


def run_ingest_cdnow(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    counts = ingest_cdnow(spark, store, args.path)
    print(summary("ltv ingest-cdnow", [*counts.lines(), *_where(store, CDNOW_EVENTS, CDNOW_QUARANTINE)]))
    return 0 if counts.balanced else 1


def run_sessions(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    result = build_sessions(spark, store, config.features)
    print(summary("ltv sessions", [*result.lines(), *_where(store, SESSIONS)]))
    return 0


def run_features(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    sessions = build_sessions(spark, store, config.features)
    result = build_cutoff(spark, store, config.features, dt.date.fromisoformat(args.cutoff))
    lines = [*sessions.lines(), result.line(), *_where(store, FEATURES, SEQUENCES, LABELS)]
    print(summary(f"ltv features --cutoff {args.cutoff}", lines))
    return 0


def run_training_set(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    print(summary("ltv training-set", _training_set_lines(spark, store, config)))
    return 0


def _training_set_lines(spark, store: TableStore, config: Config) -> list[str]:
    """Build every cutoff of the configured plan; report per-cutoff users and per-split examples."""
    plan = plan_cutoffs(config.features)
    result = build_training_set(spark, store, config.features, plan)
    splits = {"train": result.train, "validation": result.validation, "evaluation": result.evaluation}
    return [
        f"horizon {plan.horizon_days} days; train {plan.train[0]}..{plan.train[-1]} "
        f"({len(plan.train)} cutoffs), validation {plan.validation}, evaluation {plan.evaluation}",
        *[summary_.line() for summary_ in result.summaries],
        *[f"{name:<10} {frame.count():>10,} examples" for name, frame in splits.items()],
        *[
            f"{name:<20} {store.read(name).count():>10,} rows  {store.location(name)}"
            for name in (FEATURES, SEQUENCES, LABELS)
        ],
    ]


def run_train(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    result = train_model(spark, store, config, args.launcher, args.num_proc)
    print(summary(f"ltv train --launcher {result.launcher}", [*result.lines(), *_tracking_lines(config)]))
    return 0


def run_promote(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    name = config.tracking.registered_model
    previous = promote(config.tracking, args.version)
    moved = f"{CHAMPION}: {name}/{previous or '-'} -> {name}/{args.version}"
    print(summary(f"ltv promote --version {args.version}", [moved, *_tracking_lines(config)]))
    return 0


def run_register(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    version = register_existing(args.model, config)
    line = f"{args.model} -> {config.tracking.registered_model} version {version}"
    print(summary(f"ltv register --model {args.model}", [line, *_tracking_lines(config)]))
    return 0


def run_score(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    as_of = dt.date.fromisoformat(args.as_of)
    result = score_as_of(spark, store, config, as_of, args.model)
    print(summary(f"ltv score --as-of {as_of}", result.lines()))
    return 0


def run_evaluate(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    seeds = [int(seed) for seed in args.seeds.split(",")] if args.seeds else None
    result = evaluate(spark, store, config, args.data, seeds)
    print(summary(f"ltv evaluate --data {args.data}", result.lines()))
    return 0


def run_learning_curve(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    seeds = [int(seed) for seed in args.seeds.split(",")] if args.seeds else None
    result = learning_curve(spark, store, config, seeds)
    print(summary("ltv learning-curve", result.lines()))
    return 0


def run_refresh(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    if args.date is None and args.last is None:
        print("error: --from needs --to", file=sys.stderr)
        return 2
    if args.date:
        results = [refresh(spark, store, config, dt.date.fromisoformat(args.date))]
    else:
        first, last = dt.date.fromisoformat(args.first), dt.date.fromisoformat(args.last)
        results = refresh_range(spark, store, config, first, last)
    lines = [line for result in results for line in result.lines()]
    print(summary("ltv refresh", [*lines, f"run log: {REFRESH_RUNS} ({store.location(REFRESH_RUNS)})"]))
    return 0


def run_retrain(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    day = dt.date.fromisoformat(args.date) if args.date else day_after_data(store)
    print(summary(f"ltv retrain --date {day}", [retrain(spark, store, config, day)]))
    return 0


def run_stream(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    query = start_stream(spark, store, config, available_now=args.available_now)
    print(f"streaming {config.ingest.raw_dir} -> {PREDICTIONS}; checkpoint {config.stream.checkpoint}")
    query.awaitTermination()
    return 0


def run_forget(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    users = list(args.user)
    if args.users_file:
        users += Path(args.users_file).read_text().splitlines()
    retention = config.tables.vacuum_retention_hours if args.retention_hours is None else args.retention_hours
    try:
        requested_by = args.requested_by or _os_user()
        result = forget_users(
            spark, store, users, requested_by, retention, lease_minutes=config.refresh.lease_minutes
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary("ltv forget", [*result.lines(), *_where(store, FORGET_AUDIT)]))
    return 0


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a name
        return "unknown"


def run_vacuum(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    retention = args.retention_hours
    result = vacuum_warehouse(store, config.tables.vacuum_retention_hours if retention is None else retention)
    print(summary(f"ltv vacuum: {config.tables.root}", result.lines()))
    return 0


def run_demo(args: argparse.Namespace, config: Config, spark, store: TableStore) -> int:
    """The whole pipeline on the embedded default world (what ``make demo`` runs), on the quick
    training plan of ``demo.*`` (``ltv train`` and ``ltv evaluate`` use ``features.*``)."""
    evaluate_plan = config.features  # what `ltv evaluate` trains on
    config = config.demo.applied_to(config)
    clock = StageClock()
    with clock.step("generate the world"):
        world = generate_world(spark, store, config.world, overwrite=args.overwrite)
    with clock.step("ingest raw drops"):
        counts = ingest_raw(spark, store, config.ingest)
    with clock.step("ingest CDNOW"):
        cdnow = ingest_cdnow(spark, store)
    with clock.step("sessions"):
        sessions = build_sessions(spark, store, config.features)
    with clock.step("training set"):
        training = _training_set_lines(spark, store, config)
    with clock.step("train"):
        model = train_model(spark, store, config, "local")
    world_end = config.world.start_date + dt.timedelta(days=config.world.days)
    with clock.step("score"):
        scores = score_as_of(spark, store, config, world_end)
    with clock.step("evaluate"):  # one seed, the trained model's: ltv evaluate runs evaluate.seeds
        evaluation = evaluate(spark, store, config, "generated", [config.train.seed])
    lines = [
        *world.lines(),
        "",
        "ingest (files not seen before):",
        *counts.lines(),
        "",
        "bronze totals:",
        *[
            f"  {name:<18} {store.read(name).count():>12,} rows  {store.location(name)}"
            for name in (EVENTS, QUARANTINE)
        ],
        "",
        "CDNOW (real data):",
        *cdnow.lines(),
        f"  {CDNOW_EVENTS:<18} {store.location(CDNOW_EVENTS)}",
        "",
        *sessions.lines(),
        f"  {SESSIONS:<18} {store.read(SESSIONS).count():>12,} rows  {store.location(SESSIONS)}",
        "",
        f"training set (the demo's quick plan, demo.*: {config.features.train_cutoffs} cutoffs "
        f"{config.features.cutoff_step_days} days apart):",
        *training,
        "",
        "model (local launcher):",
        *model.lines(),
        "",
        "predictions:",
        *scores.lines(),
        "",
        f"evaluation on the generated world (every model, same users; neural models: seed "
        f"{config.train.seed}, the trained model; `ltv evaluate` trains seeds "
        f"{', '.join(map(str, config.evaluate.seeds))} for their spread, on the default plan of "
        f"{evaluate_plan.train_cutoffs} cutoffs {evaluate_plan.cutoff_step_days} days apart):",
        *evaluation.lines(),
        "",
        *_tracking_lines(config),
        "",
        "seconds per stage:",
        *clock.lines(),
    ]
    print(summary("ltv demo", lines))
    return 0 if counts.balanced and cdnow.balanced else 1


COMMANDS: dict[str, Callable[..., int]] = {
    "generate": run_generate,
    "ingest": run_ingest,
    "ingest-cdnow": run_ingest_cdnow,
    "sessions": run_sessions,
    "features": run_features,
    "training-set": run_training_set,
    "train": run_train,
    "score": run_score,
    "evaluate": run_evaluate,
    "learning-curve": run_learning_curve,
    "refresh": run_refresh,
    "retrain": run_retrain,
    "promote": run_promote,
    "register": run_register,
    "stream": run_stream,
    "forget": run_forget,
    "vacuum": run_vacuum,
    "demo": run_demo,
}


def _tracking_lines(config: Config) -> list[str]:
    """Where the runs and the registered model are, and how to open them."""
    uri = absolute_uri(config.tracking.tracking_uri)
    return [
        f"MLflow runs   experiment {config.tracking.experiment!r} in {uri}",
        f"registry      {config.tracking.registered_model} (aliases {CHAMPION}, {CHALLENGER})",
        f"open them     mlflow ui --backend-store-uri {uri}",
    ]


def _where(store: TableStore, *names: str) -> list[str]:
    return [f"{name:<20} {store.location(name)}" for name in names]


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    flags = {
        "generate": GENERATE_FLAGS,
        "ingest": INGEST_FLAGS,
        "features": FEATURE_FLAGS,
        "train": TRAIN_FLAGS,
        "evaluate": EVALUATE_FLAGS,
        "learning-curve": EVALUATE_FLAGS,
    }.get(args.command, {})
    overrides = [
        f"{key}={getattr(args, flag)}" for flag, key in flags.items() if getattr(args, flag, None) is not None
    ]
    if args.command == "generate" and args.out is not None:
        overrides.append(f"ingest.raw_dir={args.out}")
    return overrides


def _conf_dir(args: argparse.Namespace) -> dict:
    return {"conf_dir": args.conf_dir} if args.conf_dir else {}


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env", default="local", help="local | cluster | databricks (conf/<env>.yaml)")
    common.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    common.add_argument("--conf-dir", default=None, help="folder holding base.yaml and the overlays")
    common.add_argument("--quiet", action="store_true", help="log warnings only")
    common.add_argument(
        "--log-format", choices=["text", "json"], default="text", help="json: one object per line"
    )
    parser = argparse.ArgumentParser(prog="ltv", description="Customer lifetime value on Spark and Delta.")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", parents=[common], help="write a generated world's raw drops")
    generate.add_argument(
        "--model", choices=["sessions", "btyd"], help="btyd: purchases only, with a closed-form ceiling"
    )
    generate.add_argument("--users", type=int)
    generate.add_argument("--days", type=int)
    generate.add_argument("--seed", type=int)
    generate.add_argument("--dirty-rate", type=float)
    generate.add_argument("--format", choices=["csv", "json", "parquet"])
    generate.add_argument("--out")
    generate.add_argument("--files-per-day", type=int)
    generate.add_argument("--truth-cutoff", help="YYYY-MM-DD: cutoff of the truth table")
    generate.add_argument("--truth-horizon", type=int, help="days: horizon of the truth table")
    generate.add_argument("--overwrite", action="store_true", help="replace a different world in --out")

    ingest = commands.add_parser("ingest", parents=[common], help="raw files not seen before -> bronze")
    ingest.add_argument("--raw-dir")
    ingest.add_argument("--format", choices=["csv", "json", "parquet"])

    cdnow = commands.add_parser("ingest-cdnow", parents=[common], help="CDNOW (lifetimes) -> cdnow.events")
    cdnow.add_argument("--path", help="CDNOW_master.txt (default: the copy inside lifetimes)")

    commands.add_parser("sessions", parents=[common], help="bronze batches not yet sessionized -> silver")
    features = commands.add_parser(
        "features", parents=[common], help="features, sequences, labels at a cutoff"
    )
    features.add_argument("--cutoff", required=True, help="YYYY-MM-DD: features use events before it")
    features.add_argument("--horizon", type=int, help="label horizon in days")
    features.add_argument("--sequence-length", type=int, help="sessions per sequence")
    commands.add_parser("training-set", parents=[common], help="every cutoff of the configured plan")

    train = commands.add_parser("train", parents=[common], help="train the Transformer on the gold tables")
    train.add_argument("--launcher", choices=["local", "horovod", "torch-distributor"])
    train.add_argument("--num-proc", type=int, help="training processes (horovod, torch-distributor)")
    train.add_argument("--epochs", type=int)

    score = commands.add_parser("score", parents=[common], help="score every user -> gold.predictions")
    score.add_argument("--as-of", required=True, help="YYYY-MM-DD: features use events before it")
    score.add_argument(
        "--model",
        help="champion | challenger | models:/<name>@<alias> | models:/<name>/<version> | latest | a "
        "model folder (default: score.model)",
    )

    evaluation = commands.add_parser(
        "evaluate", parents=[common], help="every model on the evaluation cutoff -> metrics + report"
    )
    evaluation.add_argument(
        "--data",
        choices=list(DATA),
        default="generated",
        help="warehouse: whatever bronze.events holds (a shop's own drops), no oracle",
    )
    evaluation.add_argument(
        "--seeds", help="comma-separated seeds of the neural models (default: evaluate.seeds)"
    )
    evaluation.add_argument("--epochs", type=int, help="training epochs of the neural models")

    curve = commands.add_parser(
        "learning-curve",
        parents=[common],
        help="Gini against training examples per model (evaluate.curve_sizes) -> table + plot",
    )
    curve.add_argument("--seeds", help="comma-separated seeds of the neural models (default: evaluate.seeds)")
    curve.add_argument("--epochs", type=int, help="training epochs of the neural models")

    daily = commands.add_parser(
        "refresh", parents=[common], help="the daily job: ingest, sessions, (retrain), score at a date"
    )
    when = daily.add_mutually_exclusive_group(required=True)
    when.add_argument("--date", help="YYYY-MM-DD: refresh with the drops of the days before it")
    when.add_argument("--from", dest="first", help="YYYY-MM-DD: first day of a backfill (with --to)")
    daily.add_argument("--to", dest="last", help="YYYY-MM-DD: last day of a backfill")

    weekly = commands.add_parser("retrain", parents=[common], help="retrain; promote if not worse")
    weekly.add_argument("--date", help="YYYY-MM-DD (default: the day after the last ingested event)")

    promotion = commands.add_parser(
        "promote", parents=[common], help="point the champion alias at a registered version (rollback)"
    )
    promotion.add_argument("--version", required=True, help="the registered model's version number")
    register = commands.add_parser(
        "register", parents=[common], help="register an existing model folder as a new version"
    )
    register.add_argument("--model", required=True, help="a model folder such as data/models/v0003")

    stream = commands.add_parser("stream", parents=[common], help="re-score users as their events land")
    stream.add_argument("--available-now", action="store_true", help="process what has landed, then stop")

    forget = commands.add_parser(
        "forget", parents=[common], help="delete customers' rows from every table, on their request"
    )
    forget.add_argument("--user", action="append", default=[], help="a user id (repeat for more)")
    forget.add_argument("--users-file", help="a text file of user ids, one per line")
    forget.add_argument("--requested-by", help="who asked, for the audit (default: the OS user)")
    forget.add_argument(
        "--retention-hours", type=int, help="old files go after this (default tables.vacuum_retention_hours)"
    )

    vacuum = commands.add_parser(
        "vacuum", parents=[common], help="delete files no table version needs (orphans of killed jobs too)"
    )
    vacuum.add_argument("--retention-hours", type=int, help="default: tables.vacuum_retention_hours")

    demo = commands.add_parser("demo", parents=[common], help="generate + ingest the default world")
    demo.add_argument("--overwrite", action="store_true")
    return parser


if __name__ == "__main__":
    sys.exit(main())
