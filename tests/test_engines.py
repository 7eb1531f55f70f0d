"""describe the whole chain on each table engine: the same tiny world gives the same tables.

One daily refresh (ingest, sessions, training set, train + promotion, features, score) and the
same refresh again, on three table set-ups: delta-rs on local folders, Delta's JVM connector
through catalog names (managed tables of a local Hive metastore), and the JVM connector with the
raw drops and every table on ``s3a://`` (a local S3 server). Every table ends with the same row
count on all three, and the second refresh changes nothing. (The JVM connector on local folders
runs the table contract in test_tables.py and the stage tests that take ``store``.)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ltv_spark.config import load_config
from ltv_spark.pipeline import generate_world
from ltv_spark.pipeline.refresh import refresh
from ltv_spark.tables import TableError, TableStore, open_store
from tests.conftest import require_jvm_engine
from tests.helpers import tiny_overrides

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
    ]


@pytest.fixture(scope="module")
def chains(spark, s3, tmp_path_factory):
    """Each set-up's store, its two refresh summaries, and the logical tables it wrote."""
    require_jvm_engine(spark)
    results = {}
    for setup in SETUPS:
        results[setup] = _chain(spark, s3, setup, tmp_path_factory.mktemp(f"chain-{setup}"))
    return results


def _chain(spark, s3, setup: str, base: Path) -> tuple:
    config = load_config("local", [*tiny_overrides(base), *_overrides(setup, base, s3)])
    store = open_store(spark, config.tables)
    generate_world(spark, store, config.world)
    if setup == "s3a":  # the drops land in the bucket; ingest reads them from there
        assert s3.upload(base / "raw", f"{base.name}/raw") > 0
    first = refresh(spark, store, config, MONDAY)
    second = refresh(spark, store, config, MONDAY)
    return store, first, second


def _tables(store: TableStore) -> list[str]:
    names = [
        "world.truth",
        "bronze.events",
        "bronze.quarantine",
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
        "ops.leases",
    ]
    assert all(store.exists(name) for name in names), [n for n in names if not store.exists(n)]
    return names


def it_writes_every_table_with_the_same_row_counts_on_every_engine(chains):
    counts = {
        setup: {name: store.read(name).count() for name in _tables(store)}
        for setup, (store, _, _) in chains.items()
    }
    print("\nrow counts per table:", *(f"{s:<12} {c}" for s, c in counts.items()), sep="\n")
    assert all(counts[setup] == counts["delta-rs"] for setup in SETUPS), counts
    assert counts["delta-rs"]["gold.predictions"] > 100


def it_runs_the_same_stages_and_then_changes_nothing(chains):
    for setup, (_, first, second) in chains.items():
        assert first.status == "succeeded", setup
        assert [s.name for s in first.stages] == ["ingest", "sessions", "retrain", "score"], setup
        assert second.status == "unchanged" and second.versions_written == {}, setup


def it_keeps_catalog_tables_in_the_metastore_and_s3a_tables_in_the_bucket(spark, s3, chains):
    catalog_store = chains["catalog"][0]
    assert catalog_store.location("bronze.events") == "bronze.events"  # the session catalog's name
    assert spark.catalog.tableExists(f"{CATALOG}.gold.predictions")
    detail = spark.sql("DESCRIBE DETAIL gold.predictions").first()
    assert detail["format"] == "delta" and "/gold.db/predictions" in detail["location"]
    s3a_store = chains["s3a"][0]
    location = s3a_store.location("gold.predictions")
    assert location.startswith("s3a://")
    key = location.removeprefix("s3a://").split("/", 1)[1]
    assert any(k.startswith(f"{key}/_delta_log/") for k in s3.keys(key))
    prefix = key.split("/", 1)[0]  # the models folder and the Petastorm cache are in the bucket too
    models = s3.keys(f"{prefix}/models/")
    assert f"{prefix}/models/PROMOTED" in models and f"{prefix}/models/v0001/model.pt" in models
    assert {r["model_version"] for r in s3a_store.read("gold.predictions").collect()} == {"v0001"}
    assert not [k for k in s3.keys(f"{prefix}/petastorm/") if k.endswith(".parquet")]  # deleted after


def it_refuses_delta_rs_on_an_object_store_before_writing_anything(spark, s3):
    config = load_config("local", ["tables.engine=delta-rs", f"tables.root={s3.uri('refused/warehouse')}"])
    with pytest.raises(TableError, match="tables.engine=spark-delta"):
        open_store(spark, config.tables)
    assert s3.keys("refused/") == []
