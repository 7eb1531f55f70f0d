"""describe the delta-rs table layer: distributed files, one atomic Delta commit per write."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable

from ltv_spark.tables import (
    DuplicateMergeKey,
    SchemaMismatch,
    TableNotFound,
    UnsupportedTableFeature,
    open_store,
)
from ltv_spark.tables.delta_rs import DeltaRsStore

SCHEMA = "k int, v string, d date"
ROWS = [(1, "a", dt.date(2024, 1, 1)), (2, "b", dt.date(2024, 1, 2))]


def frame(spark, rows):
    return spark.createDataFrame(rows, SCHEMA)


def it_maps_logical_names_to_folders_and_refuses_odd_names(store, tmp_path):
    assert store.location("bronze.events") == str(tmp_path / "warehouse" / "bronze" / "events")
    with pytest.raises(Exception, match="expected 'schema.table'"):
        store.location("events")


def it_picks_delta_rs_when_the_connector_is_absent(spark, config):
    assert isinstance(open_store(spark, config.tables), DeltaRsStore)


def it_round_trips_rows_types_and_partitions(spark, store):
    store.append(frame(spark, ROWS), "t.x", partition_by=["d"])
    assert_df_equality(store.read("t.x"), frame(spark, ROWS), ignore_row_order=True, ignore_nullable=True)
    table = DeltaTable(store.location("t.x"))
    assert table.metadata().partition_columns == ["d"]
    assert table.version() == 0
    assert all(path.startswith("d=2024-01-0") for path in committed_files(store.location("t.x")))


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
    operations = [h.get("ltv_operation") for h in store.history("t.x")]
    assert operations == ["OVERWRITE", "OVERWRITE", "APPEND"]


def it_refuses_an_append_whose_schema_differs(spark, store):
    store.append(frame(spark, ROWS), "t.x")
    with pytest.raises(SchemaMismatch, match=r"missing columns \['d'\].*unexpected columns \['w'\]"):
        store.append(spark.createDataFrame([(1, "a", "w")], "k int, v string, w string"), "t.x")


def it_refuses_tables_with_deletion_vectors(store):
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


def it_refuses_tables_with_column_mapping(spark, store):
    _write_log(
        Path(store.location("t.cm")),
        {"minReaderVersion": 2, "minWriterVersion": 5},
        {"delta.columnMapping.mode": "name"},
    )
    with pytest.raises(UnsupportedTableFeature, match=r"column mapping \(mode=name\)"):
        store.read("t.cm")
    with pytest.raises(UnsupportedTableFeature):
        store.append(spark.createDataFrame([(1,)], "k int"), "t.cm")


def it_leaves_the_table_unchanged_when_killed_between_files_and_commit(spark, store, tmp_path):
    """A real SIGKILL after Spark wrote the files, before delta-rs commits them."""
    store.append(frame(spark, ROWS), "t.x")
    script = textwrap.dedent(
        f"""
        import os, signal, datetime as dt
        from ltv_spark.config import load_config
        from ltv_spark.session import build_spark
        from ltv_spark.tables import delta_rs
        spark = build_spark(load_config("local", ["spark.master=local[1]"]))
        delta_rs.before_commit = lambda name: os.kill(os.getpid(), signal.SIGKILL)
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
