"""describe the table layer: one contract, two engines (delta-rs and Delta's JVM connector).

Every contract test takes the ``store`` fixture, so it runs once per engine; tables written by
one engine are read, appended to and merged into by the other. The delta-rs-only section at the
end covers what only that engine needs (refusing Delta features it cannot read).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable
from pyspark.sql import functions as F

from ltv_spark.tables import (
    DuplicateMergeKey,
    SchemaMismatch,
    SparkDeltaStore,
    TableNotFound,
    UnsupportedTableFeature,
    open_store,
)
from ltv_spark.tables.delta_rs import DeltaRsStore
from ltv_spark.tables.outside_spark import read_arrow, read_pandas
from tests.conftest import ENGINES, open_engine, require_jvm_engine

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "k int, v string, d date"
ROWS = [(1, "a", dt.date(2024, 1, 1)), (2, "b", dt.date(2024, 1, 2))]


def frame(spark, rows):
    return spark.createDataFrame(rows, SCHEMA)


def it_maps_logical_names_to_folders_and_refuses_odd_names(store, tmp_path):
    assert store.location("bronze.events") == str(tmp_path / "warehouse" / "bronze" / "events")
    with pytest.raises(Exception, match="expected 'schema.table'"):
        store.location("events")


def it_opens_the_configured_engine(spark, config):
    require_jvm_engine(spark)
    tables = config.tables
    assert isinstance(open_store(spark, replace(tables, engine="delta-rs")), DeltaRsStore)
    assert isinstance(open_store(spark, replace(tables, engine="spark-delta")), SparkDeltaStore)
    assert isinstance(open_store(spark, replace(tables, engine="auto")), SparkDeltaStore)  # jars loaded


def it_round_trips_rows_types_and_partitions(spark, store):
    store.append(frame(spark, ROWS), "t.x", partition_by=["d"])
    assert_df_equality(store.read("t.x"), frame(spark, ROWS), ignore_row_order=True, ignore_nullable=True)
    table = DeltaTable(store.location("t.x"))
    assert table.metadata().partition_columns == ["d"]
    assert table.version() == 0
    assert all(path.startswith("d=2024-01-0") for path in committed_files(store.location("t.x")))


def it_reads_a_partitioned_table_outside_spark_as_spark_reads_it(spark, store):
    schema = "user_id string, cutoff date, horizon_days int, net_value double"
    first = [("u1", dt.date(2024, 1, 1), 90, 1.5), ("u2", dt.date(2024, 2, 1), 30, 0.0)]
    store.append(spark.createDataFrame(first, schema), "gold.l", partition_by=["cutoff", "horizon_days"])
    second = [("u3", dt.date(2024, 2, 1), 30, 7.25)]  # replaces one partition: its old file is removed
    replace_partition = {"cutoff": ["2024-02-01"], "horizon_days": ["30"]}
    store.overwrite(spark.createDataFrame(second, schema), "gold.l", replace_partitions=replace_partition)
    with pytest.raises(TypeError, match="field"):  # what the README offered before, with pyarrow 14
        DeltaTable(store.location("gold.l")).to_pandas()
    rows = read_pandas(store.location("gold.l")).sort_values("user_id")
    assert rows.to_dict("records") == [
        {"user_id": "u1", "cutoff": dt.date(2024, 1, 1), "horizon_days": 90, "net_value": 1.5},
        {"user_id": "u3", "cutoff": dt.date(2024, 2, 1), "horizon_days": 30, "net_value": 7.25},
    ]
    assert read_arrow(store.location("gold.l")).schema.field("cutoff").type == "date32[day]"
    assert sorted(read_pandas(store.location("gold.l"), version=0)["user_id"]) == ["u1", "u2"]


def it_lists_the_tables_of_its_warehouse(spark, store):
    assert store.tables() == []
    for name in ("t.x", "s.y", "s.a"):
        store.append(frame(spark, ROWS), name)
    assert store.tables() == ["s.a", "s.y", "t.x"]


def it_reads_a_missing_table_as_a_clear_error(store):
    with pytest.raises(TableNotFound, match="table t.missing not found at"):
        store.read("t.missing")


def it_skips_a_batch_already_committed_by_the_same_app(spark, store):
    assert store.append(frame(spark, ROWS), "t.x", app_id="job", batch_id=0) == 0
    assert store.append(frame(spark, ROWS), "t.x", app_id="job", batch_id=0) is None
    assert store.append(frame(spark, ROWS[:1]), "t.x", app_id="job", batch_id=1) == 1
    assert store.append(frame(spark, ROWS[:1]), "t.x", app_id="job", batch_id=1) is None
    assert store.read("t.x").count() == 3
    assert store.committed_batch("t.x", "job") == 1
    assert store.committed_batch("t.x", "other") is None


def it_merges_on_keys_updating_and_inserting(spark, store):
    store.append(frame(spark, ROWS), "t.x")
    source = frame(spark, [(2, "B", dt.date(2024, 1, 2)), (3, "c", dt.date(2024, 1, 3))])
    version = store.merge(source, "t.x", keys=["k"])
    expected = frame(spark, [ROWS[0], (2, "B", dt.date(2024, 1, 2)), (3, "c", dt.date(2024, 1, 3))])
    assert_df_equality(store.read("t.x"), expected, ignore_row_order=True, ignore_nullable=True)
    store.merge(source, "t.x", keys=["k"])  # the same merge again changes no row
    assert_df_equality(store.read("t.x"), expected, ignore_row_order=True, ignore_nullable=True)
    assert store.read("t.x", version=version - 1).count() == 2  # time travel to before the merge


def it_merges_only_the_partitions_the_source_touches(spark, store):
    store.append(frame(spark, ROWS), "t.x", partition_by=["d"])
    untouched = {p for p in committed_files(store.location("t.x")) if p.startswith("d=2024-01-01")}
    store.merge(frame(spark, [(2, "B", dt.date(2024, 1, 2))]), "t.x", keys=["k"])
    after = set(committed_files(store.location("t.x")))
    assert untouched <= after
    assert sorted(r["v"] for r in store.read("t.x").collect()) == ["B", "a"]


def it_refuses_a_merge_source_with_duplicate_keys(spark, store):
    store.append(frame(spark, ROWS), "t.x")
    with pytest.raises(DuplicateMergeKey, match="2 rows for key"):
        store.merge(frame(spark, [ROWS[0], ROWS[0]]), "t.x", keys=["k"])


def it_overwrites_only_the_named_partitions(spark, store):
    store.append(frame(spark, ROWS), "t.x", partition_by=["d"])
    store.overwrite(
        frame(spark, [(9, "z", dt.date(2024, 1, 2))]), "t.x", replace_partitions={"d": ["2024-01-02"]}
    )
    assert sorted((r["k"], r["v"]) for r in store.read("t.x").collect()) == [(1, "a"), (9, "z")]
    store.overwrite(frame(spark, [(5, "e", dt.date(2024, 1, 5))]), "t.x")
    assert [r["k"] for r in store.read("t.x").collect()] == [5]
    history = store.history("t.x")
    assert [h["ltv_operation"] for h in history] == ["OVERWRITE", "OVERWRITE", "APPEND"]
    assert [h["version"] for h in history] == [2, 1, 0]
    assert history[1]["ltv_parameters"] == {"replace_partitions": [["d", "in", ["2024-01-02"]]]}
    assert store.version("t.x") == 2
    assert [h["version"] for h in store.history("t.x", limit=1)] == [2]


def it_creates_a_missing_table_on_a_partition_overwrite(spark, store):
    store.overwrite(frame(spark, ROWS), "t.x", partition_by=["d"], replace_partitions={"d": ["2024-01-01"]})
    assert store.read("t.x").count() == 2 and store.version("t.x") == 0
    assert DeltaTable(store.location("t.x")).metadata().partition_columns == ["d"]


def it_refuses_an_append_whose_schema_differs(spark, store):
    store.append(frame(spark, ROWS), "t.x")
    with pytest.raises(SchemaMismatch, match=r"missing columns \['d'\].*unexpected columns \['w'\]"):
        store.append(spark.createDataFrame([(1, "a", "w")], "k int, v string, w string"), "t.x")


def it_refuses_a_merge_or_partition_overwrite_whose_schema_differs(spark, store):
    store.append(frame(spark, ROWS), "t.x", partition_by=["d"])
    other = spark.createDataFrame([(1, 2, dt.date(2024, 1, 1))], "k int, v int, d date")
    with pytest.raises(SchemaMismatch, match=r"different types \['v'\]"):
        store.merge(other, "t.x", keys=["k"])
    with pytest.raises(SchemaMismatch, match=r"different types \['v'\]"):
        store.overwrite(other, "t.x", replace_partitions={"d": ["2024-01-01"]})
    assert store.version("t.x") == 0


def it_replaces_the_schema_on_a_full_overwrite(spark, store):
    store.append(frame(spark, ROWS), "t.x")
    store.overwrite(spark.createDataFrame([(1, 2.5)], "k int, w double"), "t.x")
    assert store.read("t.x").columns == ["k", "w"]


@pytest.mark.parametrize("writer,reader", [ENGINES, ENGINES[::-1]])
def it_shares_tables_between_the_engines(spark, tmp_path, writer, reader):
    """What one engine writes, the other reads, appends to idempotently and merges into."""
    first = open_engine(spark, writer, str(tmp_path / "warehouse"))
    second = open_engine(spark, reader, str(tmp_path / "warehouse"))
    first.append(frame(spark, ROWS), "t.x", partition_by=["d"], app_id="job", batch_id=0)
    first.merge(frame(spark, [(2, "B", dt.date(2024, 1, 2))]), "t.x", keys=["k"])
    expected = [(1, "a", dt.date(2024, 1, 1)), (2, "B", dt.date(2024, 1, 2))]
    assert_df_equality(
        second.read("t.x"), frame(spark, expected), ignore_row_order=True, ignore_nullable=True
    )
    assert second.committed_batch("t.x", "job") == 0
    assert second.append(frame(spark, ROWS), "t.x", app_id="job", batch_id=0) is None
    second.append(frame(spark, [(3, "c", dt.date(2024, 1, 3))]), "t.x", app_id="job", batch_id=1)
    second.merge(frame(spark, [(1, "A", dt.date(2024, 1, 1))]), "t.x", keys=["k"])
    expected = [(1, "A", dt.date(2024, 1, 1)), (2, "B", dt.date(2024, 1, 2)), (3, "c", dt.date(2024, 1, 3))]
    assert_df_equality(first.read("t.x"), frame(spark, expected), ignore_row_order=True, ignore_nullable=True)
    assert first.committed_batch("t.x", "job") == 1
    assert [h["ltv_operation"] for h in first.history("t.x")] == ["MERGE", "APPEND", "MERGE", "APPEND"]
    untimed = [{k: v for k, v in h.items() if k != "timestamp"} for h in first.history("t.x")]
    assert untimed == [{k: v for k, v in h.items() if k != "timestamp"} for h in second.history("t.x")]
    assert DeltaTable(first.location("t.x")).metadata().partition_columns == ["d"]


def it_leaves_the_table_unchanged_when_killed_between_files_and_commit_and_vacuums_the_orphans(
    spark, store, engine, tmp_path
):
    """A real SIGKILL of driver and JVM while the write's last task runs: earlier tasks' files are
    on disk (Delta's JVM writer puts them straight into the table), no commit names them. VACUUM
    then deletes those orphans once they are older than the retention, and never a live file."""
    store.append(frame(spark, ROWS), "t.x")
    script = textwrap.dedent(
        f"""
        import os, signal, datetime as dt
        from pyspark.sql import functions as F
        from ltv_spark.config import load_config
        from ltv_spark.session import build_spark
        from tests.conftest import TEST_OVERRIDES, open_engine
        spark = build_spark(load_config("local", [*TEST_OVERRIDES, "spark.master=local[1]"]))
        store = open_engine(spark, {engine!r}, {str(tmp_path / "warehouse")!r})
        jvm, driver = spark._jvm.ProcessHandle.current().pid(), os.getpid()

        @F.udf("string")
        def kill_on_the_last_row(k, v):
            if k == 8:
                os.kill(jvm, signal.SIGKILL)
                os.kill(driver, signal.SIGKILL)
            return v

        rows = [(7, "written", dt.date(2024, 1, 7)), (8, "x", dt.date(2024, 1, 8))]
        rows = spark.sparkContext.parallelize(rows, 2)  # one task per row: the first one's file lands
        df = spark.createDataFrame(rows, "{SCHEMA}").withColumn("v", kill_on_the_last_row("k", "v"))
        store.append(df, "t.x")
        """
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=240, cwd=ROOT)
    assert child.returncode == -9, child.stderr.decode()[-2000:]
    table_dir = Path(store.location("t.x"))
    on_disk = {p.name for p in table_dir.rglob("*.parquet")}
    committed = {Path(p).name for p in committed_files(str(table_dir))}
    assert len(on_disk - committed) >= 1  # the killed job's first file is there ...
    assert store.version("t.x") == 0  # ... but no commit names it
    assert_df_equality(store.read("t.x"), frame(spark, ROWS), ignore_row_order=True, ignore_nullable=True)
    assert_vacuum_deletes_only_old_orphans(spark, store, table_dir, on_disk - committed)


def assert_vacuum_deletes_only_old_orphans(spark, store, table_dir: Path, orphans: set[str]) -> None:
    """Young orphans are kept (a running write's files look the same); aged ones go, live ones stay."""
    assert store.vacuum("t.x", retention_hours=1) == 0
    two_hours_ago = time.time() - 2 * 3600
    data_files = [p for p in table_dir.rglob("*") if p.is_file() and "_delta_log" not in p.parts]
    for path in data_files:  # live files as old as the orphans: still kept
        os.utime(path, (two_hours_ago, two_hours_ago))
    deleted = store.vacuum("t.x", retention_hours=1)
    assert len(orphans) <= deleted <= sum(not p.exists() for p in data_files)  # Hadoop's .crc go along
    left = {p.name for p in table_dir.rglob("*.parquet")}
    assert not left & orphans and {Path(p).name for p in committed_files(str(table_dir))} <= left
    assert_df_equality(store.read("t.x"), frame(spark, ROWS), ignore_row_order=True, ignore_nullable=True)


# ---------------------------------------------------------------- delta-rs only
@pytest.fixture()
def rs_store(spark, tmp_path) -> DeltaRsStore:
    return DeltaRsStore(spark, str(tmp_path / "warehouse"))


def it_refuses_tables_with_deletion_vectors(rs_store):
    store = rs_store
    _write_log(
        Path(store.location("t.dv")),
        {
            "minReaderVersion": 3,
            "minWriterVersion": 7,
            "readerFeatures": ["deletionVectors"],
            "writerFeatures": ["deletionVectors"],
        },
        {},
    )
    with pytest.raises(UnsupportedTableFeature, match="deletionVectors not supported by the delta-rs engine"):
        store.read("t.dv")


def it_refuses_tables_with_column_mapping(spark, rs_store):
    store = rs_store
    _write_log(
        Path(store.location("t.cm")),
        {"minReaderVersion": 2, "minWriterVersion": 5},
        {"delta.columnMapping.mode": "name"},
    )
    with pytest.raises(UnsupportedTableFeature, match=r"column mapping \(mode=name\)"):
        store.read("t.cm")
    with pytest.raises(UnsupportedTableFeature):
        store.append(spark.createDataFrame([(1,)], "k int"), "t.cm")


def it_leaves_the_table_unchanged_when_killed_after_moving_files_into_it(spark, rs_store, tmp_path):
    """delta-rs moves the staged files into the table before it commits: a SIGKILL right there."""
    store = rs_store
    store.append(frame(spark, ROWS), "t.x")
    script = textwrap.dedent(
        f"""
        import os, signal, datetime as dt
        from ltv_spark.config import load_config
        from ltv_spark.session import build_spark
        from ltv_spark.tables import base, delta_rs
        spark = build_spark(load_config("local", ["spark.master=local[1]"]))
        base.before_commit = lambda name: os.kill(os.getpid(), signal.SIGKILL)
        store = delta_rs.DeltaRsStore(spark, {str(tmp_path / "warehouse")!r})
        rows = [(7, "killed", dt.date(2024, 1, 7))]
        store.append(spark.createDataFrame(rows, "{SCHEMA}"), "t.x")
        """
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=180)
    assert child.returncode == -9, child.stderr.decode()[-2000:]
    table_dir = Path(store.location("t.x"))
    on_disk = {p.name for p in table_dir.rglob("*.parquet") if "_staging" not in p.parts}
    committed = {Path(p).name for p in committed_files(str(table_dir))}
    assert len(on_disk - committed) >= 1  # the killed job's files are there ...
    assert store.version("t.x") == 0  # ... but no commit names them
    assert_df_equality(store.read("t.x"), frame(spark, ROWS), ignore_row_order=True, ignore_nullable=True)
    staged = table_dir / "_staging" / "0f1e" / "d=2024-01-09" / "part-00000.parquet"  # killed mid-write
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"PAR1 cut")
    assert_vacuum_deletes_only_old_orphans(spark, store, table_dir, {*(on_disk - committed), staged.name})
    assert not (table_dir / "_staging" / "0f1e").exists()


def committed_files(location: str) -> list[str]:
    """Paths (relative to the table) of the files in the table's latest snapshot, as delta-rs sees it."""
    return [
        str(Path(uri.removeprefix("file://")).relative_to(location))
        for uri in DeltaTable(location).file_uris()
    ]


def _write_log(table_dir: Path, protocol: dict, configuration: dict) -> None:
    """A Delta log as Databricks writes it for a table using the given features."""
    log = table_dir / "_delta_log"
    log.mkdir(parents=True)
    field_metadata = {}
    if configuration.get("delta.columnMapping.mode"):
        field_metadata = {"delta.columnMapping.id": 1, "delta.columnMapping.physicalName": "col-5f2a"}
    field = {"name": "k", "type": "integer", "nullable": True, "metadata": field_metadata}
    schema = {"type": "struct", "fields": [field]}
    metadata = {
        "id": "4f0a3c2e-0000-0000-0000-000000000001",
        "format": {"provider": "parquet", "options": {}},
        "schemaString": json.dumps(schema),
        "partitionColumns": [],
        "configuration": configuration,
        "createdTime": 1700000000000,
    }
    lines = [json.dumps({"protocol": protocol}), json.dumps({"metaData": metadata})]
    (log / "00000000000000000000.json").write_text("\n".join(lines) + "\n")


def _source_that_waits(calls: Path, go: Path):
    """A key column whose evaluation records itself and, from its second evaluation on (the first
    is the duplicate-key check, before Delta's merge starts its transaction), waits for ``go``."""

    def key(value: int) -> int:
        (calls / uuid.uuid4().hex).touch()
        deadline = time.monotonic() + 120
        while len(list(calls.iterdir())) >= 2 and not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return value

    return F.udf(key, "int")


def it_retries_a_merge_that_lost_to_a_concurrent_commit_on_the_jvm_engine(spark, tmp_path, caplog):
    """A merge that has read the table commits after another merge rewrote the same file: Delta
    refuses its commit; the store merges again from the new snapshot, so no merge's rows are lost."""
    day = dt.date(2024, 1, 1)
    store = open_engine(spark, "spark-delta", str(tmp_path / "warehouse"))
    store.overwrite(frame(spark, [(1, "a", day), (2, "b", day)]), "silver.t")
    calls, go = tmp_path / "calls", tmp_path / "go"
    calls.mkdir()
    waiting_key = _source_that_waits(calls, go)
    slow_source = frame(spark, [(1, "slow", day)]).coalesce(1).withColumn("k", waiting_key("k"))
    with caplog.at_level(logging.WARNING, logger="ltv_spark.tables.spark_delta"):
        slow = threading.Thread(target=store.merge, args=(slow_source, "silver.t", ["k"]))
        slow.start()
        deadline = time.monotonic() + 120
        while len(list(calls.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the slow merge is inside its transaction, reading its source
        store.merge(frame(spark, [(2, "fast", day)]), "silver.t", ["k"])
        go.touch()
        slow.join(120)
    merged = sorted((r["k"], r["v"]) for r in store.read("silver.t").collect())
    assert merged == [(1, "slow"), (2, "fast")]
    assert any("concurrent commit" in r.getMessage() for r in caplog.records), "no conflict was retried"
