"""describe ltv forget: a customer's rows leave every table, their files leave the disk, and later
ingests never bring them back; on both engines."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark.sql import functions as F

from ltv_spark.config import FeaturesConfig, IngestConfig
from ltv_spark.contract import RAW_COLUMNS
from ltv_spark.forget import SUPPRESSION_LIST, names_users
from ltv_spark.lease import LEASES
from ltv_spark.pipeline import EVENTS, QUARANTINE, SESSIONS, build_sessions, ingest_raw
from ltv_spark.pipeline.bronze import EVENT_IDS
from ltv_spark.pipeline.forget import FORGET_AUDIT, forget_users
from ltv_spark.pipeline.streaming import STREAM_EVENTS, STREAM_QUARANTINE, score_micro_batch

NOW = dt.datetime(2025, 6, 10, 12, 0)
GONE, KEPT = "cust-4711", "cust-0815"
T = "2025-06-0{}T10:0{}:00Z"
ROWS = [
    ("a1", GONE, T.format(1, 0), "view", "p1", "c1", "9.99", "", ""),
    ("a2", GONE, T.format(1, 1), "purchase", "p1", "c1", "9.99", "1", "o1"),
    ("a3", GONE, T.format(1, 2), "purchase", "p1", "c1", "-3", "1", "o2"),  # quarantined: bad price
    ("a4", KEPT, T.format(1, 0), "purchase", "p2", "c2", "5.00", "1", "o3"),
]
MALFORMED = f"a5,{GONE},2025-06-01T10:00:00Z,view"  # quarantined whole line: only its raw text names him


def drop(folder: Path, rows, extra_lines=()) -> None:
    folder.mkdir(parents=True)
    lines = [",".join(RAW_COLUMNS), *(",".join(r) for r in rows), *extra_lines]
    (folder / "part-00000.csv").write_text("\n".join(lines) + "\n")


def data_files_naming(root: Path, user: str) -> list[Path]:
    """Parquet files on disk (not the Delta log) whose bytes hold the id: the value or its statistics."""
    return [
        p for p in root.rglob("*.parquet") if "_delta_log" not in p.parts and user.encode() in p.read_bytes()
    ]


def it_deletes_a_customer_everywhere_removes_the_files_and_keeps_them_out_of_later_ingests(
    spark, store, tmp_path
):
    raw = tmp_path / "raw"
    drop(raw / "2025-06-01", ROWS, [MALFORMED])
    ingest = IngestConfig(raw_dir=str(raw))
    ingest_raw(spark, store, ingest, now=NOW)
    build_sessions(spark, store, FeaturesConfig())
    scores = spark.createDataFrame([(GONE, 12.0), (KEPT, 3.0)], "user_id string, expected_ltv double")
    store.append(scores, "gold.predictions")
    warehouse = tmp_path / "warehouse"
    assert data_files_naming(warehouse, GONE)  # the check below can fail

    result = forget_users(spark, store, [GONE], "dpo@shop", retention_hours=0, now=NOW)

    assert {k: v for k, v in result.deleted.items() if v} == {
        EVENTS: 2,
        EVENT_IDS: 2,  # the duplicate lookup's ids go with the events
        QUARANTINE: 2,
        SESSIONS: 1,
        "gold.predictions": 1,
    }
    for name in store.tables():
        condition = names_users(store.read(name).columns, [GONE])
        assert condition is None or store.read(name).filter(condition).count() == 0, name
    assert [r["user_id"] for r in store.read(EVENTS).collect()] == [KEPT]
    assert store.read("gold.predictions").count() == 1 and store.read(SESSIONS).count() == 1
    assert data_files_naming(warehouse, GONE) == []  # VACUUM with retention 0: the old files are gone
    assert data_files_naming(warehouse, KEPT)

    audit = store.read(FORGET_AUDIT).collect()
    assert {r["table_name"]: r["rows_deleted"] for r in audit} == result.deleted  # zeros included
    assert all(r["requested_by"] == "dpo@shop" and r["requested_at"] == NOW for r in audit)
    assert all(GONE not in str(r.asDict().values()) for r in audit)
    assert store.read(SUPPRESSION_LIST).count() == 1
    assert GONE not in str(store.read(SUPPRESSION_LIST).collect())

    versions = {name: store.version(name) for name in store.tables() if name != LEASES}
    again = forget_users(spark, store, [GONE], "dpo@shop", retention_hours=0, now=NOW)
    assert sum(again.deleted.values()) == 0 and again.new_on_suppression_list == 0
    assert {name: store.version(name) for name in versions} == versions

    drop(raw / "2025-06-02", [("b1", GONE, T.format(2, 0), "view", "p1", "c1", "", "", "")], [MALFORMED])
    later = ingest_raw(spark, store, ingest, now=NOW)
    assert later.balanced and (later.input_rows, later.forgotten_rows, later.bronze_rows) == (2, 2, 0)
    assert store.read(EVENTS).filter(F.col("user_id") == GONE).count() == 0
    assert store.read(QUARANTINE).filter(F.col("raw").contains(GONE)).count() == 0


def it_keeps_a_forgotten_customer_out_of_the_stream_tables(spark, config, store):
    forget_users(spark, store, [GONE], "dpo@shop", retention_hours=0, now=NOW)  # before any data
    (audit,) = store.read(FORGET_AUDIT).collect()  # no table could name him: he joined the list only
    assert (audit["table_name"], audit["rows_deleted"], audit["users"]) == (None, 0, 1)
    schema = ", ".join(f"{c} string" for c in RAW_COLUMNS) + ", _corrupt_record string, source_file string"
    rows = [(*ROWS[0], None, "file:/d.csv"), (*[None] * len(RAW_COLUMNS), MALFORMED, "file:/d.csv")]
    landed = score_micro_batch(spark, store, config, spark.createDataFrame(rows, schema), batch_id=0)
    assert (landed.events, landed.quarantined, landed.forgotten) == (0, 0, 2)
    assert store.read(STREAM_EVENTS).count() == 0 and store.read(STREAM_QUARANTINE).count() == 0
