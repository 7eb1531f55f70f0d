"""The generated world: raw event drops with known ground truth, generated on the executors.

``events_frame`` simulates users in parallel; ``write_drops`` writes them as daily files;
``truth_frame`` gives each user's hidden parameters and true expected value for a cutoff and
horizon; ``observable_ceiling_frame`` the best prediction from each user's history alone
(ltv_spark.world.observable); ``write_junk_files`` adds one malformed file of each kind a platform produces.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ltv_spark.config import WorldConfig
from ltv_spark.world.btyd import BTYD_TRUTH_SCHEMA, draw_customer, truth_row
from ltv_spark.world.files import MANIFEST_SCHEMA, write_groups
from ltv_spark.world.junk import write_junk_files
from ltv_spark.world.model import draw_user, make_catalog, truth_at
from ltv_spark.world.observable import ceiling_rows, in_ceiling_sample
from ltv_spark.world.simulate import simulate_btyd_partition, simulate_partition, user_id_of

__all__ = ["events_frame", "observable_ceiling_frame", "truth_frame", "write_drops", "write_junk_files"]

EVENTS_SCHEMA = (
    "event_id string, user_id string, event_time string, event_type string, product_id string, "
    "category string, price string, quantity string, order_id string, sort_ms long, day long, "
    "malformed boolean"
)
TRUTH_SCHEMA = (
    "user_id string, cutoff date, horizon_days int, signup_date date, session_rate double, "
    "order_rate double, decline_hazard double, decline_day double, decay_days double, "
    "expected_order_value double, refund_prob double, engagement_at_cutoff double, "
    "expected_orders double, expected_value double, p_buy double"
)


def events_frame(spark: SparkSession, world: WorldConfig) -> DataFrame:
    """Every event of every user (strings, as logged), simulated on the executors."""
    users = _user_indexes(spark, world)
    if world.model == "btyd":
        simulate = simulate_btyd_partition(
            world.seed, world.start_date, world.days, world.dirty_rate, world.btyd
        )
    else:
        simulate = simulate_partition(world.seed, world.start_date, world.days, world.dirty_rate)
    return users.mapInPandas(simulate, EVENTS_SCHEMA)


def write_drops(events: DataFrame, world: WorldConfig, out: str) -> DataFrame:
    """Write ``events`` as ``<out>/<day>/part-<bucket>`` files; returns the manifest (path, rows, bytes)."""
    bucket = F.abs(F.xxhash64("user_id")) % world.files_per_day
    groups = max(1, min(world.days * world.files_per_day, 4 * spark_parallelism(events)))
    ordered = (
        events.withColumn("bucket", bucket)
        .repartition(groups, "day", "bucket")
        .sortWithinPartitions("day", "bucket", "sort_ms", "event_id")
    )
    return ordered.mapInPandas(write_groups(out, world.start_date, world.format), MANIFEST_SCHEMA)


def truth_frame(spark: SparkSession, world: WorldConfig, cutoff: dt.date, horizon_days: int) -> DataFrame:
    """Each user's hidden parameters and true expected net value over [cutoff, cutoff + horizon).

    In the purchases-only world (``world.model: btyd``) the customers born before the cutoff, with
    the closed-form ceiling beside the oracle (ltv_spark.world.btyd).
    """
    users = _user_indexes(spark, world)
    if world.model == "btyd":
        return _btyd_truth(users, world, cutoff, horizon_days)
    cutoff_day = (cutoff - world.start_date).days
    seed, days, start = world.seed, world.days, world.start_date

    def truth(batches):
        catalog = make_catalog(seed)
        for batch in batches:
            rows = []
            for index in batch["id"]:
                user = draw_user(seed, int(index), days)
                row = {
                    "user_id": user_id_of(user.user_index),
                    "cutoff": cutoff,
                    "horizon_days": horizon_days,
                    "signup_date": start + dt.timedelta(days=user.signup_day),
                    **{k: v for k, v in dataclasses.asdict(user).items() if k in _LATENT},
                    "expected_order_value": user.expected_order_value(catalog),
                }
                row.update(truth_at(user, catalog, start, cutoff_day, horizon_days))
                rows.append(row)
            yield pd.DataFrame(rows)

    return users.mapInPandas(truth, TRUTH_SCHEMA)


OBSERVABLE_CEILING_SCHEMA = (
    "user_id string, cutoff date, horizon_days int, sample_share double, particles int, particle_set int, "
    "ceiling_value double, ceiling_p_buy double, effective_sample_size double"
)


def observable_ceiling_frame(
    spark: SparkSession, world: WorldConfig, cutoff: dt.date, horizon_days: int, particles: int, share: float
) -> DataFrame:
    """The sessions world's observable ceiling over [cutoff, cutoff + horizon) for a fixed sample
    (``share`` of the users, those with a session before the cutoff): one row per particle set."""
    if world.model != "sessions":
        raise ValueError(f"the observable ceiling is the sessions world's; world.model is {world.model!r}")
    users = _user_indexes(spark, world)
    cutoff_day = (cutoff - world.start_date).days
    seed, days, start = world.seed, world.days, world.start_date
    ids = {"cutoff": cutoff, "horizon_days": horizon_days, "sample_share": share, "particles": particles}

    def ceiling(batches):
        catalog = make_catalog(seed)
        for batch in batches:
            rows = []
            for index in batch["id"]:
                if in_ceiling_sample(seed, int(index), share):
                    user = draw_user(seed, int(index), days)
                    found = ceiling_rows(
                        user, catalog, seed, start, days, cutoff_day, horizon_days, particles
                    )
                    rows += [{"user_id": user_id_of(user.user_index), **ids, **row} for row in found]
            yield pd.DataFrame(rows, columns=OBSERVABLE_CEILING_COLUMNS)

    return users.mapInPandas(ceiling, OBSERVABLE_CEILING_SCHEMA)


def _user_indexes(spark: SparkSession, world: WorldConfig) -> DataFrame:
    """``id`` 0 .. users - 1 in partitions of ``users_per_partition`` (what the executors simulate)."""
    partitions = max(1, math.ceil(world.users / world.users_per_partition))
    return spark.range(0, world.users, numPartitions=partitions)


def _btyd_truth(users: DataFrame, world: WorldConfig, cutoff: dt.date, horizon_days: int) -> DataFrame:
    cutoff_day = (cutoff - world.start_date).days
    seed, days, start, params = world.seed, world.days, world.start_date, world.btyd

    def truth(batches):
        for batch in batches:
            rows = []
            for index in batch["id"]:
                customer = draw_customer(seed, int(index), days, params)
                if customer.birth_day < cutoff_day:
                    ids = {
                        "user_id": user_id_of(customer.user_index),
                        "cutoff": cutoff,
                        "horizon_days": horizon_days,
                    }
                    rows.append({**ids, **truth_row(customer, params, start, cutoff_day, horizon_days)})
            yield pd.DataFrame(rows, columns=BTYD_COLUMNS)

    return users.mapInPandas(truth, BTYD_TRUTH_SCHEMA)


BTYD_COLUMNS = [column.split()[0] for column in BTYD_TRUTH_SCHEMA.split(", ")]
OBSERVABLE_CEILING_COLUMNS = [column.split()[0] for column in OBSERVABLE_CEILING_SCHEMA.split(", ")]
_LATENT = {"session_rate", "order_rate", "decline_hazard", "decline_day", "decay_days", "refund_prob"}


def spark_parallelism(df: DataFrame) -> int:
    return df.sparkSession.sparkContext.defaultParallelism
