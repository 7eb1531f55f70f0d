"""The daily job: new drops -> bronze -> sessions -> (weekly) retrain -> scores at the date.

``refresh(day)`` sees the world as it was at the start of ``day``: the drops of the days before
it. Every stage is idempotent on its own (files already ingested are skipped, sessions progress by
bronze batch, a cutoff built from the same bronze version is skipped, predictions are MERGEd, the
date's drift (ltv_spark.pipeline.drift) is replaced), and
a date already refreshed from the same bronze version with the same model is skipped whole, so a
re-run changes no table and a run killed anywhere re-runs to the same end state. One refresh at a
time (a lease in ops.leases, ltv_spark.lease). Each run leaves one row in ops.refresh_runs: time
and rows per stage and the table versions it wrote.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ltv_spark.config import Config
from ltv_spark.dataset import plan_cutoffs
from ltv_spark.evaluation import actuals
from ltv_spark.lease import Lease
from ltv_spark.pipeline.bronze import EVENT_IDS, EVENTS, QUARANTINE, ingest_raw
from ltv_spark.pipeline.drift import DRIFT, measure_drift
from ltv_spark.pipeline.gold import FEATURES, LABELS, SEQUENCES, examples
from ltv_spark.pipeline.scoring import PREDICTIONS, resolve_model, score_as_of
from ltv_spark.pipeline.silver import SESSIONS, build_sessions
from ltv_spark.pipeline.training import train_model
from ltv_spark.progress import stage
from ltv_spark.registry import (
    CHAMPION,
    ModelNotFound,
    ModelRef,
    alias_version,
    promote,
    tag_version,
    version_uri,
)
from ltv_spark.score import score_users
from ltv_spark.spark_metrics import model_metrics, ranked
from ltv_spark.tables import TableStore

REFRESH_RUNS = "ops.refresh_runs"
RUNS_SCHEMA = (
    "run_id string, refresh_date date, status string, started_at timestamp, seconds double, "
    "bronze_version long, model_version string, stages string, versions_written string"
)
TRACKED_TABLES = (EVENTS, EVENT_IDS, QUARANTINE, SESSIONS, FEATURES, SEQUENCES, LABELS, PREDICTIONS, DRIFT)


@dataclass
class StageRecord:
    name: str
    rows: int | None = None
    seconds: float = 0.0
    detail: str = ""


@dataclass
class RefreshSummary:
    day: dt.date
    status: str  # succeeded | unchanged (already refreshed from the same data and model)
    model: str
    seconds: float
    stages: list[StageRecord] = field(default_factory=list)
    versions_written: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        lines = [f"{self.day}: {self.status} in {self.seconds:.1f}s, model {self.model}"]
        for record in self.stages:
            rows = f"{record.rows:>10,} rows" if record.rows is not None else " " * 15
            detail = f"  {record.detail}" if record.detail else ""
            lines.append(f"  {record.name:<9}{rows}  {record.seconds:>7.1f}s{detail}")
        written = ", ".join(f"{name} v{version}" for name, version in self.versions_written.items())
        lines.append(f"  tables written: {written or 'none'}")
        return lines


def refresh_range(
    spark: SparkSession, store: TableStore, config: Config, first: dt.date, last: dt.date
) -> list[RefreshSummary]:
    """Refresh every day from ``first`` to ``last`` in order, under one lease (a backfill)."""
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    summaries = []
    with _refresh_lease(spark, store, config, f"ltv refresh --from {first} --to {last}") as lease:
        for day in days:
            summaries.append(_refresh_day(spark, store, config, day))
            lease.renew()  # a long backfill keeps its lease day by day
    return summaries


def refresh(spark: SparkSession, store: TableStore, config: Config, day: dt.date) -> RefreshSummary:
    """Refresh one day (see the module docstring); raises ltv_spark.lease.Locked if one is running."""
    with _refresh_lease(spark, store, config, f"ltv refresh --date {day}"):
        return _refresh_day(spark, store, config, day)


def retrain(spark: SparkSession, store: TableStore, config: Config, day: dt.date) -> str:
    """The weekly job: retrain on the cutoffs before ``day``, register the model as the challenger
    and promote it to champion if not worse (under the refresh lease: it writes gold tables and
    moves the alias a refresh reads)."""
    with _refresh_lease(spark, store, config, f"ltv retrain --date {day}"), stage(f"retrain {day}"):
        return _retrain_and_promote(spark, store, config, day)


def _refresh_lease(spark: SparkSession, store: TableStore, config: Config, purpose: str) -> Lease:
    return Lease(spark, store, "refresh", purpose, minutes=config.refresh.lease_minutes)


def _refresh_day(spark: SparkSession, store: TableStore, config: Config, day: dt.date) -> RefreshSummary:
    started, started_at = time.perf_counter(), dt.datetime.now(dt.UTC).replace(tzinfo=None)
    before = _versions(store)
    stages: list[StageRecord] = []
    with _stage(stages, day, "ingest") as record:
        record.rows = ingest_raw(
            spark, store, config.ingest, now=dt.datetime.combine(day, dt.time()), before=day
        ).bronze_rows
    with _stage(stages, day, "sessions") as record:
        record.rows = build_sessions(spark, store, config.features).sessions_written
    bronze = store.version(EVENTS)
    model = _current_model(config)
    status = "unchanged"
    if model is None or not _already_refreshed(store, day, bronze, model.label):
        if model is None or _retrain_due(config, day):
            with _stage(stages, day, "retrain") as record:
                record.detail = _retrain_and_promote(spark, store, config, day)
            model = resolve_model(config, config.refresh.model)
        with _stage(stages, day, "score") as record:
            record.rows = score_as_of(spark, store, config, day, model.uri).users
        with _stage(stages, day, "drift") as record:
            report = measure_drift(spark, store, config, day, model)
            record.rows, record.detail = len(report.psi), report.detail()
        status = "succeeded"
    after = _versions(store)
    summary = RefreshSummary(
        day,
        status,
        model.label,
        time.perf_counter() - started,
        stages,
        {name: version for name, version in after.items() if before.get(name) != version},
    )
    _record(spark, store, summary, started_at, bronze)
    return summary


@contextmanager
def _stage(stages: list[StageRecord], day: dt.date, name: str) -> Iterator[StageRecord]:
    """Time one stage; an error names the stage and the date."""
    record = StageRecord(name)
    started = time.perf_counter()
    try:
        with stage(f"refresh {day}: {name}") as timer:
            yield record
            timer.rows = record.rows
    except Exception as error:
        raise RefreshFailed(f"refresh {day}: stage {name!r} failed: {error}") from error
    record.seconds = time.perf_counter() - started
    stages.append(record)


class RefreshFailed(RuntimeError):
    """A stage of a refresh failed; the message names the stage and the date."""


def _versions(store: TableStore) -> dict[str, int]:
    return {name: store.version(name) for name in TRACKED_TABLES if store.exists(name)}


def _already_refreshed(store: TableStore, day: dt.date, bronze_version: int, model: str) -> bool:
    if not store.exists(REFRESH_RUNS):
        return False
    done = store.read(REFRESH_RUNS).filter(
        (F.col("refresh_date") == F.lit(day))
        & (F.col("status") == "succeeded")
        & (F.col("bronze_version") == bronze_version)
        & (F.col("model_version") == model)
    )
    return done.limit(1).count() > 0


def _current_model(config: Config) -> ModelRef | None:
    """The model the refresh scores with (pinned); None before any model was registered."""
    try:
        return resolve_model(config, config.refresh.model)
    except ModelNotFound:
        return None


def _retrain_due(config: Config, day: dt.date) -> bool:
    weekday = config.refresh.retrain_weekday
    return weekday is not None and day.weekday() == weekday


def _retrain_and_promote(spark: SparkSession, store: TableStore, config: Config, day: dt.date) -> str:
    """Train on the cutoffs that end a horizon before ``day`` and register the model (challenger);
    move champion to it only if its validation normalized Gini is not below the champion's on the
    same validation users. Both Ginis are kept as tags of the new version."""
    moved = dataclasses.replace(config, features=dataclasses.replace(config.features, evaluation_cutoff=day))
    tracking, name = config.tracking, config.tracking.registered_model
    candidate = train_model(spark, store, moved).version
    champion = alias_version(tracking, CHAMPION)
    if champion == candidate:  # the first model is champion from its registration
        return f"{name}/{candidate} promoted to {CHAMPION} (no {CHAMPION} before)"
    plan = plan_cutoffs(moved.features)
    validation = examples(store, (plan.validation,), plan.horizon_days)
    models = {"candidate": candidate, CHAMPION: champion}
    gini = _validation_gini(
        validation, {role: version_uri(name, v) for role, v in models.items()}, config.score.batch_size
    )
    tag_version(
        tracking,
        candidate,
        {
            "validation_gini": gini["candidate"],
            "champion_validation_gini": gini[CHAMPION],
            "compared_with": champion,
        },
    )
    verdict = (
        f"validation Gini {name}/{candidate} {gini['candidate']:.4f} "
        f"vs {name}/{champion} {gini[CHAMPION]:.4f}"
    )
    if gini["candidate"] >= gini[CHAMPION]:
        promote(tracking, candidate)
        return f"{verdict}: {name}/{candidate} promoted"
    return f"{verdict}: {name}/{champion} kept"


def _validation_gini(validation: DataFrame, models: dict[str, str], batch_size: int) -> dict[str, float]:
    truth = actuals(validation)
    scored = [
        score_users(validation, model, batch_size).select(
            F.lit(name).alias("model"),
            "user_id",
            F.col("expected_ltv").alias("predicted"),
            F.col("churn_probability").alias("churn_score"),
        )
        for name, model in models.items()
    ]
    frame = scored[0].unionByName(scored[1]).join(truth, "user_id").localCheckpoint()
    rows = model_metrics(ranked(frame, ["model"]), ["model"]).collect()
    return {row["model"]: float(row["normalized_gini"] or 0.0) for row in rows}


def _record(
    spark: SparkSession, store: TableStore, summary: RefreshSummary, started_at: dt.datetime, bronze: int
) -> None:
    stages = [dataclasses.asdict(record) for record in summary.stages]
    row = (
        uuid.uuid4().hex,
        summary.day,
        summary.status,
        started_at,
        summary.seconds,
        bronze,
        summary.model,
        json.dumps(stages),
        json.dumps(summary.versions_written, sort_keys=True),
    )
    store.append(spark.createDataFrame([row], RUNS_SCHEMA), REFRESH_RUNS)
