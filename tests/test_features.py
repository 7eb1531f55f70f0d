"""describe features, sequences and labels at a cutoff: nothing from T on leaks in."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from ltv_spark.contract import BRONZE_SCHEMA
from ltv_spark.dataset import CutoffPlan, plan_cutoffs
from ltv_spark.features import (
    CATEGORY_HISTORY,
    FEATURE_COLUMNS,
    events_before,
    sessions_before,
    sessions_from_silver,
    user_features,
)
from ltv_spark.labels import user_labels, window_outcomes
from ltv_spark.pipeline import EVENTS, FEATURES, LABELS, SEQUENCES, SESSIONS, build_cutoff
from ltv_spark.sequences import SESSION_VECTOR, user_sequences
from ltv_spark.sessions import cap_user_days, sessionize
from tests.helpers import bronze_from_world

CUTOFF = dt.date(2025, 8, 1)
T = dt.datetime(2025, 8, 1)
LENGTH = 4


def gold_at(events, cutoff=CUTOFF):
    sessions = sessions_before(events, cutoff, 30, 2000)
    return user_features(sessions, events, cutoff), user_sequences(sessions, cutoff, LENGTH)


@pytest.fixture(scope="module")
def world_events(spark):
    return bronze_from_world(spark).cache()


def it_ignores_every_event_at_or_after_the_cutoff(spark, world_events):
    features, sequences = gold_at(world_events)
    future = F.col("event_time") >= F.lit(T)
    changed = world_events.withColumn("price", F.when(future, F.col("price") * 100).otherwise(F.col("price")))
    changed = changed.withColumn(
        "event_type", F.when(future, F.lit("purchase")).otherwise(F.col("event_type"))
    )
    deleted = world_events.filter(~future)
    assert world_events.filter(future).count() > 1000  # the test changes something real
    for other in (changed, deleted):
        other_features, other_sequences = gold_at(other)
        assert_df_equality(other_features, features, ignore_row_order=True, ignore_nullable=True)
        assert_df_equality(other_sequences, sequences, ignore_row_order=True, ignore_nullable=True)


def it_has_one_row_per_active_user_with_every_feature(world_events):
    features, _ = gold_at(world_events)
    active = world_events.filter(F.col("event_time") < F.lit(T)).select("user_id").distinct().count()
    assert features.count() == features.select("user_id").distinct().count() == active
    assert set(FEATURE_COLUMNS) <= set(features.columns)
    nulls = features.select([F.sum(F.col(c).isNull().cast("int")).alias(c) for c in FEATURE_COLUMNS]).first()
    assert all(n == 0 for n in nulls)


def it_computes_rfm_from_a_tiny_history(spark):
    rows = [
        ("e1", "u1", dt.datetime(2025, 7, 1, 10), "view", "p1", "c1", 10.0, None, None),
        ("e2", "u1", dt.datetime(2025, 7, 1, 10, 5), "purchase", "p1", "c1", 10.0, 2, "o1"),
        ("e3", "u1", dt.datetime(2025, 7, 22, 9), "purchase", "p2", "c2", 5.0, 1, "o2"),
        ("e4", "u1", dt.datetime(2025, 7, 25, 9), "refund", "p2", "c2", 5.0, 1, "o2"),
        ("e5", "u1", dt.datetime(2025, 8, 3, 9), "purchase", "p2", "c2", 99.0, 1, "o3"),  # after T
    ]
    events = spark.createDataFrame([(*r, "f", T, 0, r[2].date()) for r in rows], BRONZE_SCHEMA)
    features, sequences = gold_at(events)
    f = features.first()
    assert (f["orders"], f["repeat_orders"], f["monetary"], f["avg_order_value"]) == (2, 1, 20.0, 12.5)
    assert f["tenure_days"] == pytest.approx(31 - 10 / 24)
    assert f["days_since_last_purchase"] == pytest.approx(10 - 9 / 24)
    assert (f["refund_rate"], f["category_diversity"], f["sessions_total"], f["orders_30d"]) == (0.2, 2, 3, 1)
    s = sequences.first()
    assert s["mask"] == [1.0, 1.0, 1.0, 0.0] and s["n_sessions"] == 3
    assert len(s["sequence"]) == LENGTH * len(SESSION_VECTOR)
    assert s["sequence"][3 * len(SESSION_VECTOR) :] == [0.0] * len(SESSION_VECTOR)  # padding after the last
    labels = user_labels(events, CUTOFF, 30).first()
    assert (labels["net_value"], labels["bought"], labels["orders_in_horizon"]) == (99.0, 1, 1)


def it_keeps_only_the_last_n_sessions_in_time_order(spark):
    rows = [
        (f"e{i}", "u1", dt.datetime(2025, 7, 1 + i, 10), "view", "p1", "c1", 1.0, None, None)
        for i in range(6)
    ]
    events = spark.createDataFrame([(*r, "f", T, 0, r[2].date()) for r in rows], BRONZE_SCHEMA)
    _, sequences = gold_at(events)
    s = sequences.first()
    width = len(SESSION_VECTOR)
    days_before = [
        s["sequence"][i * width + SESSION_VECTOR.index("log_days_before_cutoff")] for i in range(LENGTH)
    ]
    assert s["mask"] == [1.0] * LENGTH and s["n_sessions"] == LENGTH
    assert days_before == sorted(days_before, reverse=True)  # oldest kept first, newest last


def it_labels_only_the_window_and_only_users_active_before(spark):
    rows = [
        ("a", "u1", dt.datetime(2025, 7, 30), "view", "p", "c", 1.0, None, None),
        ("b", "u1", dt.datetime(2025, 8, 1), "purchase", "p", "c", 10.0, 1, "o1"),  # first instant: in
        ("c", "u1", dt.datetime(2025, 8, 31), "purchase", "p", "c", 10.0, 1, "o2"),  # T + 30 days: out
        ("d", "u2", dt.datetime(2025, 8, 2), "purchase", "p", "c", 10.0, 1, "o3"),  # not active before T
        ("e", "u3", dt.datetime(2025, 7, 2), "view", "p", "c", 1.0, None, None),  # active, no purchase
    ]
    events = spark.createDataFrame([(*r, "f", T, 0, r[2].date()) for r in rows], BRONZE_SCHEMA)
    labels = {
        r["user_id"]: (r["net_value"], r["bought"], r["orders_in_horizon"])
        for r in user_labels(events, CUTOFF, 30).collect()
    }
    assert labels == {"u1": (10.0, 1, 1), "u3": (0.0, 0, 0)}
    given = spark.createDataFrame([("u1",), ("u3",)], "user_id string")  # the users, known already
    assert_df_equality(
        user_labels(events, CUTOFF, 30, users=given),
        user_labels(events, CUTOFF, 30),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def it_plans_cutoffs_whose_label_windows_do_not_overlap(config):
    plan = plan_cutoffs(config.features)
    horizon = dt.timedelta(days=plan.horizon_days)
    assert all(t + horizon <= plan.validation for t in plan.train)
    assert plan.validation + horizon <= plan.evaluation
    assert len(plan.train) == config.features.train_cutoffs
    with pytest.raises(ValueError, match="passes the validation cutoff"):
        CutoffPlan((plan.validation,), plan.validation, plan.evaluation, plan.horizon_days).check()
    assert dataclasses.replace(plan).all_cutoffs[-1] == plan.evaluation


def it_names_a_plan_by_its_evaluation_horizon_and_training_cutoffs(config):
    plan = plan_cutoffs(config.features)
    denser = plan_cutoffs(dataclasses.replace(config.features, train_cutoffs=4, cutoff_step_days=7))
    step = config.features.cutoff_step_days
    assert plan.name == f"{plan.evaluation}_h{plan.horizon_days}_t{len(plan.train)}x{step}d"
    assert denser.name.endswith("_t4x7d") and denser.name != plan.name


def it_builds_a_cutoff_from_silver_once_as_resessionizing_would_and_skips_it_after(
    spark, store, config, world_events
):
    events = world_events.filter(F.col("user_id") < "u00000060").unionByName(_across_midnight_of_t(spark))
    store.append(events, EVENTS, partition_by=["event_date"])
    features = dataclasses.replace(config.features, horizon_days=20, sequence_length=LENGTH)
    older, _ = gold_at(events, dt.date(2025, 7, 1))  # a cutoff built by a version without the history
    store.overwrite(older.drop(CATEGORY_HISTORY), FEATURES, ["cutoff"])
    first = build_cutoff(spark, store, features, CUTOFF)
    assert store.exists(SESSIONS)  # silver was brought up to date and read
    assert store.read(FEATURES).select("cutoff").distinct().collect() == [(CUTOFF,)]  # stale table replaced
    at_t = F.col("cutoff") == F.lit(CUTOFF)
    for name, expected in zip((FEATURES, SEQUENCES), gold_at(store.read(EVENTS)), strict=True):
        written = store.read(name).filter(at_t).select(*expected.columns)
        assert_df_equality(written, expected, ignore_row_order=True, ignore_nullable=True)
    versions = [store.version(name) for name in (FEATURES, SEQUENCES, LABELS, SESSIONS)]
    again = build_cutoff(spark, store, features, CUTOFF)
    assert (again.users, again.labelled) == (first.users, True) and first.users > 0
    assert [store.version(name) for name in (FEATURES, SEQUENCES, LABELS, SESSIONS)] == versions
    labels = user_labels(store.read(EVENTS), CUTOFF, features.horizon_days)  # from every event before T
    written = store.read(LABELS).filter(at_t).select(*labels.columns)
    assert_df_equality(written, labels, ignore_row_order=True, ignore_nullable=True)
    assert labels.count() == first.users


def it_opens_only_the_days_of_bronze_a_cutoff_or_a_window_can_use(spark, store, world_events):
    store.append(world_events, EVENTS, partition_by=["event_date"])
    bronze = store.read(EVENTS)
    before = events_before(bronze, CUTOFF)
    window = window_outcomes(bronze, T, T + dt.timedelta(days=10))
    for frame in (before, window):
        plan = frame._jdf.queryExecution().executedPlan().toString()
        assert "PartitionFilters: [isnotnull(event_date" in plan, plan
    assert 0 < before.count() < bronze.count()
    expected = bronze.filter(F.col("event_time") < F.lit(T))
    assert_df_equality(before, expected, ignore_row_order=True)
    in_window = (F.col("event_time") >= F.lit(T)) & (F.col("event_time") < F.lit(T + dt.timedelta(days=10)))
    assert window.agg(F.sum("orders")).first()[0] == (
        bronze.filter(in_window & (F.col("event_type") == "purchase"))
        .select("user_id", "order_id")
        .distinct()
        .count()
    )


def _across_midnight_of_t(spark):
    """Users whose sessions run into T: one across midnight, one (a bot) for two days without a gap.

    The first has two earlier sessions on the day before T: with a cap of 3 events a day, its
    session across midnight keeps one event before T, which only a cap over the whole day gives.
    """
    minutes = [-20 * 60, -19 * 60, -10, -5, 5]
    rows = [(f"m{i}", "u_midnight", T + dt.timedelta(minutes=m)) for i, m in enumerate(minutes)]
    bot = [T - dt.timedelta(days=2) + dt.timedelta(minutes=20 * i) for i in range(3 * 24 * 3)]
    rows += [(f"b{i}", "u_bot", time) for i, time in enumerate(bot)]
    typed = [(e, u, t, "view", "p", "c", 1.0, None, None, "f", T, 0, t.date()) for e, u, t in rows]
    return spark.createDataFrame(typed, BRONZE_SCHEMA)


@pytest.mark.parametrize("cap", [3, 2000])
def it_reads_the_sessions_before_a_cutoff_from_silver_as_resessionizing_would(spark, world_events, cap):
    events = world_events.unionByName(_across_midnight_of_t(spark))
    silver = sessionize(cap_user_days(events, cap), 30)  # every event's sessions, as silver holds them
    spanning = silver.filter((F.col("session_start") < F.lit(T)) & (F.col("session_end") >= F.lit(T)))
    assert spanning.count() >= (1 if cap == 3 else 2)  # there is something to re-cut
    expected = sessions_before(events, CUTOFF, 30, cap)
    actual = sessions_from_silver(silver, events, CUTOFF, 30, cap)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
