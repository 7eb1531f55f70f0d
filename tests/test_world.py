"""describe the generated world: deterministic bytes, a truth that the future agrees with, real signals."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import functions as F

from ltv_spark.config import WorldConfig
from ltv_spark.world import events_frame, truth_frame, write_drops, write_junk_files

SMALL = WorldConfig(users=240, days=45, seed=11, dirty_rate=0.03, files_per_day=2, users_per_partition=60)
STUDY = WorldConfig(users=3000, days=360, seed=7, dirty_rate=0.0, users_per_partition=750)
CUTOFF = STUDY.start_date + dt.timedelta(days=240)
HORIZON = 90


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def generate(spark, world: WorldConfig, out: Path) -> dict[str, str]:
    write_drops(events_frame(spark, world), world, str(out)).collect()
    write_junk_files(str(out), world.start_date, world.format)
    return fingerprint(out)


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def it_writes_the_same_bytes_for_the_same_seed_whatever_the_partitioning(spark, tmp_path, fmt):
    world = dataclasses.replace(SMALL, format=fmt)
    first = generate(spark, world, tmp_path / "a")
    second = generate(spark, dataclasses.replace(world, users_per_partition=240), tmp_path / "b")
    assert first == second
    assert len(first) > world.days  # one folder per day, two buckets, plus the junk files
    end = world.start_date + dt.timedelta(days=world.days)
    assert all(world.start_date <= dt.date.fromisoformat(name.split("/")[0]) < end for name in first)


def it_writes_other_bytes_for_another_seed(spark, tmp_path):
    first = generate(spark, SMALL, tmp_path / "a")
    other = generate(spark, dataclasses.replace(SMALL, seed=12), tmp_path / "b")
    assert first.keys() & other.keys()
    assert all(first[k] != other[k] for k in first.keys() & other.keys() if "junk" not in k)


@pytest.fixture(scope="module")
def study(spark) -> pd.DataFrame:
    """Per user at CUTOFF: truth, realized net value in the window, and recent behaviour before it."""
    events = events_frame(spark, STUDY).withColumn("ts", F.to_timestamp("event_time"))
    amount = F.col("price").cast("double") * F.col("quantity").cast("int")
    net = F.when(F.col("event_type") == "purchase", amount).when(F.col("event_type") == "refund", -amount)
    in_window = (F.col("ts") >= F.lit(CUTOFF)) & (F.col("ts") < F.lit(CUTOFF + dt.timedelta(days=HORIZON)))
    recent = (F.col("ts") < F.lit(CUTOFF)) & (F.col("ts") >= F.lit(CUTOFF - dt.timedelta(days=30)))
    bought_90 = (
        (F.col("event_type") == "purchase")
        & (F.col("ts") < F.lit(CUTOFF))
        & (F.col("ts") >= F.lit(CUTOFF - dt.timedelta(days=90)))
    )
    per_user = events.groupBy("user_id").agg(
        F.coalesce(F.sum(F.when(in_window, net)), F.lit(0.0)).alias("realized"),
        F.sum(F.when(recent, 1).otherwise(0)).alias("events_30d"),
        F.sum(F.when(bought_90, 1).otherwise(0)).alias("purchases_90d"),
        F.countDistinct(F.when(F.col("event_type") == "purchase", F.col("order_id"))).alias("orders"),
        F.sum(F.when(F.col("event_type") == "refund", 1).otherwise(0)).alias("refunds"),
    )
    truth = truth_frame(spark, STUDY, CUTOFF, HORIZON)
    return truth.join(per_user, "user_id", "left").toPandas().fillna(0)


def it_gives_a_truth_that_the_future_agrees_with(study):
    total_expected, total_realized = study["expected_value"].sum(), study["realized"].sum()
    assert abs(total_realized / total_expected - 1) < 0.05
    higher = study["expected_value"] > study["expected_value"].median()
    assert study.loc[higher, "realized"].mean() > 5 * study.loc[~higher, "realized"].mean()
    assert study["expected_value"].corr(study["realized"], method="spearman") > 0.5


def it_lets_sessions_announce_a_churn_before_purchases_do(study):
    recent_buyers = study[study["purchases_90d"] > 0]
    quiet = recent_buyers["events_30d"] == 0
    assert quiet.sum() > 50
    assert recent_buyers.loc[quiet, "realized"].mean() < 0.5 * recent_buyers.loc[~quiet, "realized"].mean()


def it_has_heavy_and_one_off_buyers_and_refunds(study):
    buyers = study[study["orders"] > 0]
    assert (buyers["orders"] == 1).mean() > 0.25
    assert (buyers["orders"] >= 10).mean() > 0.03
    assert study["refunds"].sum() > 0


def it_has_weekly_seasonality(spark):
    world = dataclasses.replace(STUDY, users=600, users_per_partition=300)
    views = events_frame(spark, world).filter("event_type = 'view'")
    by_day = {r[0]: r[1] for r in views.groupBy(F.dayofweek(F.to_timestamp("event_time"))).count().collect()}
    assert by_day[7] > 1.1 * by_day[4]  # Saturday above Wednesday
