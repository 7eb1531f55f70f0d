"""describe the whole chain on each table engine: the same tiny world gives the same tables.

One daily refresh (ingest, sessions, training set, train + promotion, features, score, drift) and the
same refresh again, on three table set-ups: delta-rs on local folders, Delta's JVM connector
through catalog names (managed tables of a local Hive metastore), and the JVM connector with the
raw drops and every table on ``s3a://`` (a local S3 server). Every table ends with the same row
count on all three, and the second refresh changes nothing. On ``s3a://`` the near-real-time
stream then runs too, its drops and checkpoint in the bucket. (The JVM connector on local folders
runs the table contract in test_tables.py and the stage tests that take ``store``.)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from ltv_spark.config import load_config
from ltv_spark.pipeline import generate_world
from ltv_spark.pipeline.refresh import RefreshSummary, refresh
from ltv_spark.pipeline.scoring import PREDICTIONS
from ltv_spark.pipeline.streaming import STREAM_EVENTS, start_stream
from ltv_spark.tables import TableError, TableStore, open_store
from ltv_spark.tables.outside_spark import read_pandas
from tests.conftest import require_jvm_engine
from tests.helpers import tiny_overrides, users_in_drops

MONDAY = dt.date(2025, 8, 25)  # the tiny world runs 2025-06-01 .. 2025-08-29
SETUPS = ("delta-rs", "catalog", "s3a")
CATALOG = "spark_catalog"  # the session catalog, backed by the test run's Hive metastore


def _overrides(setup: str, base: Path, s3) -> list[str]:
    if setup == "delta-rs":
        return ["tables.engine=delta-rs"]
    if setup == "catalog":
        return ["tables.engine=spark-delta", f"tables.catalog={CATALOG}"]
    prefix = base.name
    return [
        "tables.engine=spark-delta",
        f"tables.root={s3.uri(prefix + '/warehouse')}",
        f"ingest.raw_dir={s3.uri(prefix + '/raw')}",
        f"train.models_root={s3.uri(prefix + '/models')}",  # the model and the Petastorm cache too
        f"train.cache_dir={s3.uri(prefix + '/petastorm')}",
        # the registered model's artifacts too: MLflow's s3:// store (boto3) follows AWS_ENDPOINT_URL
        f"tracking.artifact_root={s3.uri(prefix + '/mlflow').replace('s3a://', 's3://')}",
    ]


@dataclass
class Chain:
    """One set-up after its two refreshes: the row count of every table taken right then."""

    base: Path
    overrides: list[str]
    store: TableStore
    first: RefreshSummary
    second: RefreshSummary
    counts: dict[str, int]


@pytest.fixture(scope="module")
def chains(spark, s3, tmp_path_factory) -> dict[str, Chain]:
    require_jvm_engine(spark)
    return {setup: _chain(spark, s3, setup, tmp_path_factory.mktemp(f"chain-{setup}")) for setup in SETUPS}


def _chain(spark, s3, setup: str, base: Path) -> Chain:
    overrides = [*tiny_overrides(base), *_overrides(setup, base, s3)]
    config = load_config("local", overrides)
    store = open_store(spark, config.tables)
    generate_world(spark, store, config.world)
    if setup == "s3a":  # the drops land in the bucket; ingest reads them from there
        assert s3.upload(base / "raw", f"{base.name}/raw") > 0
    first = refresh(spark, store, config, MONDAY)
    second = refresh(spark, store, config, MONDAY)
    counts = {name: store.read(name).count() for name in _tables(store)}
    return Chain(base, overrides, store, first, second, counts)


def _tables(store: TableStore) -> list[str]:
    names = [
        "world.truth",
        "bronze.events",
        "bronze.quarantine",
        "bronze.event_ids",
        "bronze.ingest_files",
        "bronze.ingest_batches",
        "silver.sessions",
        "silver.sessions_progress",
        "gold.user_features",
        "gold.user_sequences",
        "gold.labels",
        "gold.cutoff_builds",
        "gold.predictions",
        "ops.refresh_runs",
        "ops.drift",
        "ops.drift_reference",
        "ops.leases",
    ]
    assert all(store.exists(name) for name in names), [n for n in names if not store.exists(n)]
    return names


def it_writes_every_table_with_the_same_row_counts_on_every_engine(chains):
    counts = {setup: chain.counts for setup, chain in chains.items()}
    print("\nrow counts per table:", *(f"{s:<12} {c}" for s, c in counts.items()), sep="\n")
    assert all(counts[setup] == counts["delta-rs"] for setup in SETUPS), counts
    assert counts["delta-rs"]["gold.predictions"] > 100


def it_reads_every_table_of_the_chain_outside_spark_with_the_same_rows(chains):
    chain = chains["delta-rs"]
    outside = {name: len(read_pandas(chain.store.location(name))) for name in chain.counts}
    assert outside == chain.counts


def it_runs_the_same_stages_and_then_changes_nothing(chains):
    for setup, chain in chains.items():
        first, second = chain.first, chain.second
        assert first.status == "succeeded", setup
        assert [s.name for s in first.stages] == ["ingest", "sessions", "retrain", "score", "drift"], setup
        assert second.status == "unchanged" and second.versions_written == {}, setup


def it_keeps_catalog_tables_in_the_metastore_and_s3a_tables_in_the_bucket(spark, s3, chains):
    catalog_store = chains["catalog"].store
    assert catalog_store.location("bronze.events") == "bronze.events"  # the session catalog's name
    assert spark.catalog.tableExists(f"{CATALOG}.gold.predictions")
    detail = spark.sql("DESCRIBE DETAIL gold.predictions").first()
    assert detail["format"] == "delta" and "/gold.db/predictions" in detail["location"]
    s3a_store = chains["s3a"].store
    location = s3a_store.location("gold.predictions")
    assert location.startswith("s3a://")
    key = location.removeprefix("s3a://").split("/", 1)[1]
    assert any(k.startswith(f"{key}/_delta_log/") for k in s3.keys(key))
    prefix = key.split("/", 1)[0]  # the models folder and the Petastorm cache are in the bucket too
    assert f"{prefix}/models/v0001/model.pt" in s3.keys(f"{prefix}/models/")
    logged = s3.keys(f"{prefix}/mlflow/")  # and the registered MLflow model the workers scored with
    assert any(k.endswith("/MLmodel") for k in logged) and any(k.endswith("/model.pt") for k in logged)
    assert {r["model_version"] for r in s3a_store.read("gold.predictions").collect()} == {"ltv_transformer/1"}
    assert not [k for k in s3.keys(f"{prefix}/petastorm/") if k.endswith(".parquet")]  # deleted after


def it_refuses_delta_rs_on_an_object_store_before_writing_anything(spark, s3):
    config = load_config("local", ["tables.engine=delta-rs", f"tables.root={s3.uri('refused/warehouse')}"])
    with pytest.raises(TableError, match="tables.engine=spark-delta"):
        open_store(spark, config.tables)
    assert s3.keys("refused/") == []


def it_streams_drops_from_s3a_with_its_checkpoint_in_the_bucket(spark, s3, chains):
    """Structured Streaming's file source and checkpoint on s3a://: each landed file's users are
    scored once, and a restart from the checkpoint repeats no micro-batch."""
    chain = chains["s3a"]
    prefix, day = chain.base.name, "2025-08-27"
    landing, checkpoint = s3.uri(f"{prefix}/landing"), s3.uri(f"{prefix}/checkpoints/stream")
    streaming = [f"ingest.raw_dir={landing}", f"stream.checkpoint={checkpoint}"]
    config = load_config("local", [*chain.overrides, *streaming])
    batches: list = []

    def catch_up() -> None:
        query = start_stream(spark, chain.store, config, available_now=True, on_batch=batches.append)
        query.awaitTermination()

    assert s3.upload(chain.base / "raw" / day, f"{prefix}/landing/{day}") > 0
    catch_up()
    scored = chain.store.read(PREDICTIONS).filter("as_of = DATE'2025-08-28'").select("user_id").collect()
    landed = users_in_drops(chain.base / "raw" / day)
    assert {row["user_id"] for row in scored} == landed and len(landed) > 5
    kept = {key.split("/")[3] for key in s3.keys(f"{prefix}/checkpoints/stream/")}
    assert {"offsets", "commits", "sources"} <= kept  # Structured Streaming's progress, in the bucket
    versions = {name: chain.store.version(name) for name in (PREDICTIONS, STREAM_EVENTS)}
    processed = len(batches)
    catch_up()
    assert len(batches) == processed
    assert {name: chain.store.version(name) for name in (PREDICTIONS, STREAM_EVENTS)} == versions
    assert chain.store.read(STREAM_EVENTS).count() == sum(b.events for b in batches)
