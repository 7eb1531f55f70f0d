"""bronze.events -> gold.user_features, gold.user_sequences, gold.labels per cutoff; training sets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ltv_spark.config import FeaturesConfig
from ltv_spark.dataset import CutoffPlan, join_examples
from ltv_spark.features import sessions_before, sessions_from_silver, user_features
from ltv_spark.labels import user_labels
from ltv_spark.pipeline.bronze import EVENTS
from ltv_spark.pipeline.silver import SESSIONS, build_sessions
from ltv_spark.progress import LOG, stage
from ltv_spark.sequences import user_sequences
from ltv_spark.tables import SchemaMismatch, TableStore

FEATURES = "gold.user_features"
SEQUENCES = "gold.user_sequences"
LABELS = "gold.labels"
GOLD_VERSION = 2  # 2: features carry category_history, labels next_categories (the cross-sell head)
EVALUATION_METRICS = "gold.evaluation_metrics"  # ltv evaluate: one row per (run, model, seed)
EVALUATION_SEGMENTS = "gold.evaluation_segments"  # ltv evaluate: per (run, model, seed, segment)
EVALUATION_CATEGORIES = "gold.evaluation_categories"  # cross-sell per (run, model, seed, category)
LEARNING_CURVE = "gold.learning_curve"  # ltv learning-curve: one row per (run, model, seed, size)
CUTOFF_BUILDS = "gold.cutoff_builds"  # which bronze version and settings each cutoff was built from
BUILDS_SCHEMA = (
    "cutoff date, horizon_days int, bronze_version long, settings string, users long, labelled boolean"
)


@dataclass
class CutoffSummary:
    cutoff: dt.date
    users: int
    labelled: bool

    def line(self) -> str:
        labels = "with labels" if self.labelled else "no labels (window passes the data)"
        return f"cutoff {self.cutoff}: {self.users:,} users, {labels}"


def build_cutoff(
    spark: SparkSession, store: TableStore, features: FeaturesConfig, cutoff: dt.date
) -> CutoffSummary:
    """Write the features and sequences at ``cutoff`` (and labels when the window is inside the data).

    Each table's ``cutoff`` partition is replaced whole. A cutoff already built from the same bronze
    version with the same settings is skipped, so re-running changes nothing (not even a version).
    """
    return build_cutoffs(spark, store, features, [cutoff])[0]


def build_cutoffs(
    spark: SparkSession, store: TableStore, features: FeaturesConfig, cutoffs: Sequence[dt.date]
) -> list[CutoffSummary]:
    """``build_cutoff`` for each of ``cutoffs``, with what they share done once: silver.sessions
    brought up to date with bronze and bronze's last event read (two scans of every event, which
    each cutoff of the demo's eight repeated)."""
    built: dict[dt.date, CutoffSummary] = {}
    pending = []
    for cutoff in cutoffs:
        build = _build_key(store, features, cutoff)
        previous = _previous_build(store, build)
        if previous is None:
            pending.append((cutoff, build))
        else:
            built[cutoff] = CutoffSummary(cutoff, previous["users"], previous["labelled"])
    if pending:
        build_sessions(spark, store, features)  # a no-op while silver is current
        events = store.read(EVENTS)
        last_event = events.agg(F.max("event_time")).first()[0]
        for cutoff, build in pending:
            built[cutoff] = _build(spark, store, features, events, last_event, cutoff, build)
    return [built[cutoff] for cutoff in cutoffs]


def _build(
    spark: SparkSession,
    store: TableStore,
    features: FeaturesConfig,
    events: DataFrame,
    last_event: dt.datetime | None,
    cutoff: dt.date,
    build: dict,
) -> CutoffSummary:
    """One cutoff's gold rows, and the record of what they were built from."""
    with stage(f"features at {cutoff}") as timer:
        sessions = sessions_at(store, features, events, cutoff).persist()
        replace = {"cutoff": [cutoff.isoformat()]}
        replace_cutoff(store, user_features(sessions, events, cutoff), FEATURES, ["cutoff"], replace)
        sequences = user_sequences(sessions, cutoff, features.sequence_length)
        store.overwrite(sequences, SEQUENCES, ["cutoff"], replace)
        sessions.unpersist()
        users = store.read(FEATURES).filter(F.col("cutoff") == F.lit(cutoff)).select("user_id")
        window_end = dt.datetime.combine(cutoff, dt.time()) + dt.timedelta(days=features.horizon_days)
        labelled = last_event is not None and window_end <= last_event + dt.timedelta(days=1)
        if labelled:  # the users are the features' rows: every user with an event before the cutoff
            labels = user_labels(events, cutoff, features.horizon_days, users)
            key = {"cutoff": [cutoff.isoformat()], "horizon_days": [features.horizon_days]}
            replace_cutoff(store, labels, LABELS, ["cutoff", "horizon_days"], key)
        timer.rows = users.count()
    record = spark.createDataFrame([(*build.values(), timer.rows, labelled)], BUILDS_SCHEMA)
    store.merge(record, CUTOFF_BUILDS, keys=["cutoff", "horizon_days"])
    return CutoffSummary(cutoff, timer.rows, labelled)


def replace_cutoff(
    store: TableStore, rows: DataFrame, name: str, partition_by: list[str], key: dict[str, list]
) -> None:
    """Replace the partition ``key`` of ``name`` with ``rows``. A table whose columns an older
    version of the gold tables wrote (GOLD_VERSION) is replaced whole: every row in it is stale,
    and each cutoff is rebuilt when next asked for (its build key names the version)."""
    try:
        store.overwrite(rows, name, partition_by, key)
    except SchemaMismatch as mismatch:
        LOG.warning("%s: replaced whole, its columns are an older version's (%s)", name, mismatch)
        store.overwrite(rows, name, partition_by)


def sessions_at(store: TableStore, features: FeaturesConfig, events: DataFrame, cutoff: dt.date) -> DataFrame:
    """The sessions before ``cutoff``, from silver.sessions (which the caller brought up to date).

    Equal to re-sessionizing every event before the cutoff (``sessions_before``), which each cutoff
    did until silver was read instead; only the sessions spanning the cutoff are re-cut. (As equal
    as silver is to sessionizing every event: an incremental build may split a session longer than
    a day, see ``build_sessions``.)
    """
    gap, cap = features.session_gap_minutes, features.max_events_per_user_day
    if not store.exists(SESSIONS):  # bronze holds no batch yet
        return sessions_before(events, cutoff, gap, cap)
    return sessions_from_silver(store.read(SESSIONS), events, cutoff, gap, cap)


def _build_key(store: TableStore, features: FeaturesConfig, cutoff: dt.date) -> dict:
    """What a cutoff's gold rows depend on: the bronze version and the settings."""
    return {
        "cutoff": cutoff,
        "horizon_days": features.horizon_days,
        "bronze_version": store.version(EVENTS),
        "settings": feature_settings(features),
    }


def feature_settings(features: FeaturesConfig) -> str:
    """The settings a cutoff's gold rows depend on, as one comparable string. ``gold`` is the
    version of the gold tables' columns (GOLD_VERSION), so older builds are redone."""
    return (
        f"gap={features.session_gap_minutes},cap={features.max_events_per_user_day},"
        f"length={features.sequence_length},gold={GOLD_VERSION}"
    )


def examples_identity(store: TableStore, features: FeaturesConfig, cutoffs: tuple[dt.date, ...]) -> dict:
    """What the examples of built ``cutoffs`` are a function of: bronze's version and the settings.

    Unlike the gold tables' own versions, this does not move when another cutoff (a scoring date)
    is written, so a model trained on these examples is recognised as such later.
    """
    return {
        EVENTS: store.version(EVENTS),
        "cutoffs": [c.isoformat() for c in cutoffs],
        "horizon_days": features.horizon_days,
        "settings": feature_settings(features),
    }


def _previous_build(store: TableStore, build: dict):
    if not store.exists(CUTOFF_BUILDS):
        return None
    match = store.read(CUTOFF_BUILDS).filter(
        (F.col("cutoff") == F.lit(build["cutoff"]))
        & (F.col("horizon_days") == build["horizon_days"])
        & (F.col("bronze_version") == build["bronze_version"])
        & (F.col("settings") == build["settings"])
    )
    return match.first()


@dataclass
class TrainingSet:
    """The frames of one experiment, read back from the gold tables."""

    plan: CutoffPlan
    train: DataFrame
    validation: DataFrame
    evaluation: DataFrame
    summaries: list[CutoffSummary] = field(default_factory=list)

    def materialized(self) -> TrainingSet:
        """The splits computed once, in the executors' storage (``localCheckpoint``): an evaluation
        reads the evaluation split for every model it scores and compares, about eight times, and
        the others for every model it trains; each read would join the three gold tables again."""
        train, validation, evaluation = (
            frame.localCheckpoint() for frame in (self.train, self.validation, self.evaluation)
        )
        return TrainingSet(self.plan, train, validation, evaluation, self.summaries)


def build_training_set(
    spark: SparkSession, store: TableStore, features: FeaturesConfig, plan: CutoffPlan
) -> TrainingSet:
    """Build every cutoff of ``plan`` (idempotently) and return the joined examples per split."""
    summaries = build_cutoffs(spark, store, features, plan.all_cutoffs)
    return TrainingSet(
        plan,
        *[
            examples(store, cutoffs, plan.horizon_days)
            for cutoffs in (plan.train, (plan.validation,), (plan.evaluation,))
        ],
        summaries,
    )


def examples(store: TableStore, cutoffs: tuple[dt.date, ...], horizon_days: int) -> DataFrame:
    """Joined features, sequences and labels for the given cutoffs."""
    wanted = [c.isoformat() for c in cutoffs]

    def at(name: str) -> DataFrame:
        return store.read(name).filter(F.col("cutoff").cast("string").isin(*wanted))

    labels = at(LABELS).filter(F.col("horizon_days") == horizon_days)
    return join_examples(at(FEATURES), at(SEQUENCES), labels)
