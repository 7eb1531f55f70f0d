"""describe ingest: raw drops -> bronze.events + bronze.quarantine, losing no row, exactly once."""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import io
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from ltv_spark import raw_files
from ltv_spark.config import IngestConfig
from ltv_spark.contract import RAW_COLUMNS, Reason
from ltv_spark.ingest import EVENT_ID_BUCKETS
from ltv_spark.pipeline import EVENTS, INGEST_BATCHES, INGEST_FILES, QUARANTINE, ingest_raw
from ltv_spark.pipeline.bronze import EVENT_IDS
from ltv_spark.tables import base as tables_base

NOW = dt.datetime(2025, 6, 10, 12, 0)
T = "2025-06-0{}T10:00:00.000Z"

GOOD = [
    ("a1", "u1", T.format(1), "view", "p1", "c1", "9.99", "", ""),
    ("a2", "u1", T.format(1), "cart", "p1", "c1", "9.99", "1", ""),
    ("a3", "u1", T.format(1), "purchase", "p1", "c1", "9.99", "1", "o1"),
    ("a4", "u2", T.format(2), "refund", "p1", "c1", "9.99", "1", "o1"),
]
BAD = {
    Reason.MISSING_EVENT_ID: ("", "u1", T.format(1), "view", "p1", "c1", "1", "", ""),
    Reason.MISSING_USER: ("b2", "", T.format(1), "view", "p1", "c1", "1", "", ""),
    Reason.UNPARSABLE_TIME: ("b3", "u1", "2025-06-01X10", "view", "p1", "c1", "1", "", ""),
    Reason.TIME_OUT_OF_RANGE: ("b4", "u1", "2099-01-01T00:00:00Z", "view", "p1", "c1", "1", "", ""),
    Reason.UNKNOWN_TYPE: ("b5", "u1", T.format(1), "click", "p1", "c1", "1", "", ""),
    Reason.BAD_PRICE: ("b6", "u1", T.format(1), "purchase", "p1", "c1", "-3", "1", "o2"),
    Reason.BAD_QUANTITY: ("b7", "u1", T.format(1), "purchase", "p1", "c1", "3", "0", "o2"),
    Reason.MISSING_ORDER_ID: ("b8", "u1", T.format(1), "purchase", "p1", "c1", "3", "1", ""),
}
MALFORMED = "b9,u1,2025-06-01T10:00:00Z,view"  # four fields where nine are expected


def csv_text(rows, extra_lines=()):
    lines = [",".join(RAW_COLUMNS), *(",".join(r) for r in rows), *extra_lines]
    return "\n".join(lines) + "\n"


def write_every_bad_input(raw: Path) -> int:
    """A day's drop holding every bad-input class of the contract; returns its number of input rows."""
    day = raw / "2025-06-01"
    day.mkdir(parents=True)
    rows = [*GOOD, *BAD.values(), GOOD[0]]  # GOOD[0] again: a replayed event id
    (day / "part-00000.csv").write_text(csv_text(rows, [MALFORMED]))
    bad_encoding = csv_text(GOOD[:2]).replace("view", "vi\u00e9w").encode("latin-1")
    (day / "bad-encoding.csv").write_bytes(bad_encoding)  # 3 lines
    (day / "truncated.csv").write_bytes(csv_text(GOOD[:2]).encode()[:-9])  # 3 lines
    (day / "semicolons.csv").write_text(csv_text(GOOD[:3]).replace(",", ";"))  # 4 lines
    return len(rows) + 1 + 3 + 3 + 4


def config(raw: Path, fmt: str = "csv") -> IngestConfig:
    return IngestConfig(raw_dir=str(raw), format=fmt)


def table_counts(store) -> tuple[int, int]:
    return store.read(EVENTS).count(), store.read(QUARANTINE).count()


def it_loses_no_row_of_a_folder_holding_every_bad_input_class(spark, store, tmp_path):
    raw = tmp_path / "raw"
    input_rows = write_every_bad_input(raw)
    counts = ingest_raw(spark, store, config(raw), now=NOW)
    bronze, quarantine = table_counts(store)
    assert counts.input_rows == input_rows == bronze + quarantine + counts.duplicate_rows
    assert (bronze, counts.duplicate_rows) == (len(GOOD), 1)
    reasons = {r["reason"]: r["count"] for r in store.read(QUARANTINE).groupBy("reason").count().collect()}
    assert reasons == {
        **dict.fromkeys(BAD, 1),
        Reason.MALFORMED_LINE: 1,
        Reason.BAD_ENCODING: 3,
        Reason.TRUNCATED: 3,
        Reason.BAD_HEADER: 4,
    }
    assert counts.files == 4 and counts.files_quarantined == 3


def it_records_the_reason_original_values_and_file_of_each_quarantined_row(spark, store, tmp_path):
    raw = tmp_path / "raw"
    write_every_bad_input(raw)
    ingest_raw(spark, store, config(raw), now=NOW)
    row = store.read(QUARANTINE).filter(f"reason = '{Reason.BAD_PRICE}'").first()
    assert json.loads(row["raw"])["price"] == "-3"
    assert row["source_file"].endswith("2025-06-01/part-00000.csv")
    assert row["batch_id"] == 0 and row["ingested_at"] == NOW
    encoded = store.read(QUARANTINE).filter(f"reason = '{Reason.BAD_ENCODING}'").collect()
    assert any("vi\u00e9w" in r["raw"] for r in encoded)  # the latin-1 byte survives, readable


def it_ingests_a_new_day_on_its_own_and_never_twice(spark, store, tmp_path):
    raw = tmp_path / "raw"
    (raw / "2025-06-01").mkdir(parents=True)
    (raw / "2025-06-01" / "part-00000.csv").write_text(csv_text(GOOD[:2]))
    assert ingest_raw(spark, store, config(raw), now=NOW).bronze_rows == 2
    (raw / "2025-06-02").mkdir()
    (raw / "2025-06-02" / "part-00000.csv").write_text(csv_text(GOOD[2:] + [GOOD[0]]))  # GOOD[0] replayed
    second = ingest_raw(spark, store, config(raw), now=NOW)
    assert (second.files, second.input_rows, second.bronze_rows, second.duplicate_rows) == (1, 3, 2, 1)
    versions = {name: store.version(name) for name in (EVENTS, QUARANTINE, INGEST_FILES)}
    third = ingest_raw(spark, store, config(raw), now=NOW)
    assert third.files == 0 and third.input_rows == 0
    assert {name: store.version(name) for name in versions} == versions
    assert store.read(EVENTS).count() == 4
    assert store.read(EVENTS).select("event_id").distinct().count() == 4


def drop_day(raw: Path, day: str, rows) -> None:
    (raw / day).mkdir(parents=True)
    (raw / day / "part-00000.csv").write_text(csv_text(rows))


def it_catches_a_replay_with_another_date_in_a_later_batch(spark, store, tmp_path):
    raw = tmp_path / "raw"
    drop_day(raw, "2025-06-01", GOOD[:2])
    ingest_raw(spark, store, config(raw), now=NOW)
    replayed = (GOOD[0][0], GOOD[0][1], T.format(5), *GOOD[0][3:])  # a1 again, four days later
    drop_day(raw, "2025-06-05", [replayed, GOOD[2]])
    second = ingest_raw(spark, store, config(raw), now=NOW)
    assert second.balanced and (second.bronze_rows, second.duplicate_rows) == (1, 1)
    (kept,) = store.read(EVENTS).filter(F.col("event_id") == "a1").collect()
    assert kept["event_date"] == dt.date(2025, 6, 1)  # the first version stays
    ids = store.read(EVENT_IDS).collect()
    assert sorted((r["event_id"], r["batch_id"]) for r in ids) == [("a1", 0), ("a2", 0), ("a3", 1)]
    assert all(0 <= r["id_bucket"] < EVENT_ID_BUCKETS and r["user_id"] == "u1" for r in ids)


def it_indexes_the_ids_of_a_bronze_ingested_before_the_index_existed(spark, store, tmp_path):
    raw = tmp_path / "raw"
    drop_day(raw, "2025-06-01", GOOD[:2])
    ingest_raw(spark, store, config(raw), now=NOW)
    shutil.rmtree(store.location(EVENT_IDS))  # a warehouse from before bronze.event_ids
    drop_day(raw, "2025-06-05", [(*GOOD[1][:2], T.format(5), *GOOD[1][3:]), GOOD[2]])  # a2 replayed
    second = ingest_raw(spark, store, config(raw), now=NOW)
    assert (second.bronze_rows, second.duplicate_rows) == (1, 1)
    assert sorted(r["event_id"] for r in store.read(EVENT_IDS).collect()) == ["a1", "a2", "a3"]


def it_records_a_zero_byte_drop_once_and_writes_nothing_on_later_runs(spark, store, tmp_path):
    raw = tmp_path / "raw"
    (raw / "2025-06-01").mkdir(parents=True)
    (raw / "2025-06-01" / "part-00000.csv").write_text(csv_text(GOOD[:2]))
    (raw / "2025-06-01" / "part-00001.csv").write_bytes(b"")  # a platform's empty drop
    first = ingest_raw(spark, store, config(raw), now=NOW)
    assert (first.files, first.files_empty, first.files_quarantined, first.bronze_rows) == (2, 1, 0, 2)
    logged = store.read(INGEST_FILES).filter(F.col("path").endswith("part-00001.csv")).first()
    assert logged["file_reason"] is None and logged["input_rows"] == 0
    assert logged["detail"] == "empty file (0 bytes)"
    versions = {name: store.version(name) for name in (EVENTS, INGEST_FILES, INGEST_BATCHES)}
    for _ in range(2):  # a second and a third run: no new batch, no table version
        assert ingest_raw(spark, store, config(raw), now=NOW).files == 0
    assert {name: store.version(name) for name in versions} == versions


def it_reads_drops_as_platforms_send_them_and_lists_what_it_does_not_read(spark, store, tmp_path):
    raw = tmp_path / "raw" / "2025-06-01"
    raw.mkdir(parents=True)
    (raw / "a.csv.gz").write_bytes(gzip.compress(csv_text(GOOD[:1]).encode()))
    (raw / "b.csv.bz2").write_bytes(bz2.compress(csv_text(GOOD[1:2]).encode()))
    windows = ("\ufeff" + csv_text(GOOD[2:])).replace("\n", "\r\n")  # byte-order mark, CRLF
    (raw / "c.csv").write_bytes(windows.encode("utf-8"))
    (raw / "d.csv.gz").write_bytes(gzip.compress(csv_text(GOOD[:1]).encode())[:-12])  # cut short
    (raw / "e.xlsx").write_bytes(b"PK\x03\x04 not read")
    counts = ingest_raw(spark, store, config(tmp_path / "raw"), now=NOW)
    assert counts.balanced and (counts.bronze_rows, counts.files, counts.files_quarantined) == (4, 4, 1)
    bronze = store.read(EVENTS)
    assert sorted(r["event_id"] for r in bronze.collect()) == [row[0] for row in GOOD]
    assert bronze.filter(F.col("order_id").endswith("\r")).count() == 0  # CR is not kept in a value
    assert counts.reasons == {Reason.UNREADABLE: 1}
    assert [path.rsplit("/", 1)[-1] for path in counts.skipped_files] == ["e.xlsx"]
    assert any("e.xlsx" in line for line in counts.lines())
    again = ingest_raw(spark, store, config(tmp_path / "raw"), now=NOW)
    assert again.files == 0 and len(again.skipped_files) == 1  # still listed, never read


def it_lists_a_local_folder_as_hadoops_file_system_does(spark, tmp_path):
    raw = tmp_path / "raw"
    for relative, text in {
        "2025-06-01/part-00000.csv": "a,b\n",
        "2025-06-01/empty.csv": "",
        "2025-06-02/deep/er/a file.csv.gz": "x",
        "_staging/inside.csv": "y",
        "2025-06-01/_SUCCESS": "",
        "2025-06-01/.part.crc": "z",
        "notes.txt": "not a drop",
    }.items():
        (raw / relative).parent.mkdir(parents=True, exist_ok=True)
        (raw / relative).write_text(text)
    os.utime(raw / "notes.txt", ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))  # ms truncated
    hadoop_path = spark._jvm.org.apache.hadoop.fs.Path(str(raw))
    fs = hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration())

    by_hadoop = sorted(raw_files._hadoop_files(fs, fs.makeQualified(hadoop_path)), key=lambda f: f.path)
    listing = raw_files.list_raw_files(spark, str(raw), "csv")

    assert sorted(raw_files._local_files(str(raw)), key=lambda f: f.path) == by_hadoop
    assert len(by_hadoop) == 6  # .part.crc: a checksum file, hidden by Hadoop's local file system
    wanted = {f.path for f in by_hadoop if not f.path.rsplit("/", 1)[-1].startswith(("_", "."))}
    assert {f.path for f in listing.files + listing.skipped} == wanted
    assert [f.path.rsplit("/", 1)[-1] for f in listing.skipped] == ["notes.txt"]
    assert listing.skipped[0].modified_ms == 1_700_000_000_123


def it_finishes_an_interrupted_batch_exactly_once(spark, store, tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    input_rows = write_every_bad_input(raw)

    def crash_before_file_log(name):
        if name == INGEST_FILES:
            raise RuntimeError("simulated crash after bronze was committed")

    monkeypatch.setattr(tables_base, "before_commit", crash_before_file_log)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ingest_raw(spark, store, config(raw), now=NOW)
    assert store.read(EVENTS).count() == len(GOOD)  # bronze got its batch ...
    assert store.read(EVENT_IDS).count() == len(GOOD)  # ... and its ids, not seen as duplicates below
    monkeypatch.setattr(tables_base, "before_commit", None)
    resumed = ingest_raw(spark, store, config(raw), now=dt.datetime(2030, 1, 1))
    bronze, quarantine = table_counts(store)
    assert (bronze, quarantine) == (len(GOOD), input_rows - len(GOOD) - 1)  # ... and not twice
    assert resumed.input_rows == input_rows == bronze + quarantine + resumed.duplicate_rows
    assert store.read(EVENTS).first()["ingested_at"] == NOW  # the batch kept its planned timestamp


def it_reads_json_lines_with_the_same_contract(spark, store, tmp_path):
    day = tmp_path / "raw" / "2025-06-01"
    day.mkdir(parents=True)
    records = [dict(zip(RAW_COLUMNS, row, strict=True)) for row in [*GOOD, BAD[Reason.UNKNOWN_TYPE]]]
    records[2]["price"], records[2]["quantity"] = 9.99, 1  # numbers, as JSON loggers write them
    lines = [json.dumps(r) for r in records] + ['{"event_id": "b9", "user_id": ']
    (day / "part-00000.json").write_text("\n".join(lines) + "\n")
    (day / "truncated.json").write_text(json.dumps(records[0])[:20])
    counts = ingest_raw(spark, store, config(tmp_path / "raw", "json"), now=NOW)
    assert (counts.input_rows, counts.bronze_rows, counts.quarantine_rows) == (7, 4, 3)
    assert store.read(EVENTS).filter("event_id = 'a3'").first()["price"] == 9.99


def it_reads_parquet_drops_and_quarantines_an_unreadable_one(spark, store, tmp_path):
    day = tmp_path / "raw" / "2025-06-01"
    day.mkdir(parents=True)
    table = pa.table({c: [row[i] for row in GOOD] for i, c in enumerate(RAW_COLUMNS)})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    (day / "part-00000.parquet").write_bytes(sink.getvalue())
    (day / "cut.parquet").write_bytes(sink.getvalue()[:100])
    counts = ingest_raw(spark, store, config(tmp_path / "raw", "parquet"), now=NOW)
    assert (counts.input_rows, counts.bronze_rows, counts.quarantine_rows) == (5, 4, 1)
    assert store.read(QUARANTINE).first()["reason"] == Reason.UNREADABLE


def redrop(path: Path, text: str, seconds_later: int = 60) -> None:
    """Write ``text`` to an ingested file again, as a platform re-dropping it later would."""
    modified = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(modified + seconds_later * 10**9, modified + seconds_later * 10**9))


def ingested_drop(spark, store, tmp_path) -> Path:
    """A day's drop of two events, ingested as batch 0."""
    day = tmp_path / "raw" / "2025-06-01"
    day.mkdir(parents=True)
    drop = day / "part-00000.csv"
    drop.write_text(csv_text(GOOD[:2]))
    ingest_raw(spark, store, config(tmp_path / "raw"), now=NOW)
    return drop


def file_log(store, name: str) -> list:
    return store.read(INGEST_FILES).filter(F.col("path").endswith(name)).orderBy("batch_id").collect()


def it_reads_a_redropped_file_again_adding_only_its_new_events(spark, store, tmp_path):
    drop = ingested_drop(spark, store, tmp_path)
    redrop(drop, csv_text(GOOD[:3]))  # corrected: one event was missing
    again = ingest_raw(spark, store, config(tmp_path / "raw"), now=NOW)
    assert (again.files, again.input_rows, again.bronze_rows, again.duplicate_rows) == (1, 3, 1, 2)
    assert len(again.changed_files) == 1 and "changed since batch 0 (size" in again.changed_files[0]
    assert any("re-dropped (changed since ingested): 1 files" in line for line in again.lines())
    assert sorted(r["event_id"] for r in store.read(EVENTS).collect()) == ["a1", "a2", "a3"]
    first, second = file_log(store, "part-00000.csv")
    assert (first["batch_id"], second["batch_id"]) == (0, 1)
    assert second["size"] == drop.stat().st_size and second["size"] > first["size"]
    assert second["modified_ms"] == drop.stat().st_mtime_ns // 10**6
    assert "read again" in second["detail"] and second["sha256"] != first["sha256"]
    versions = {name: store.version(name) for name in (EVENTS, INGEST_FILES, INGEST_BATCHES)}
    assert ingest_raw(spark, store, config(tmp_path / "raw"), now=NOW).files == 0
    assert {name: store.version(name) for name in versions} == versions


def it_records_a_file_dropped_again_with_the_same_bytes_without_reading_it(spark, store, tmp_path):
    drop = ingested_drop(spark, store, tmp_path)
    redrop(drop, csv_text(GOOD[:2]))  # copied again: a new modification time, the same bytes
    again = ingest_raw(spark, store, config(tmp_path / "raw"), now=NOW)
    assert (again.files, again.input_rows, again.files_empty) == (1, 0, 0)
    assert "same bytes as batch 0: not read again" in again.changed_files[0]
    assert file_log(store, "part-00000.csv")[-1]["input_rows"] == 0
    assert store.read(EVENTS).count() == 2
    assert ingest_raw(spark, store, config(tmp_path / "raw"), now=NOW).files == 0


def it_quarantines_a_redropped_file_whole_when_told_to(spark, store, tmp_path):
    drop = ingested_drop(spark, store, tmp_path)
    redrop(drop, csv_text(GOOD[:3]))
    strict = IngestConfig(raw_dir=str(tmp_path / "raw"), changed_files="quarantine")
    again = ingest_raw(spark, store, strict, now=NOW)
    assert (again.input_rows, again.quarantine_rows, again.bronze_rows) == (4, 4, 0)  # header + 3 rows
    assert again.reasons == {Reason.CHANGED: 4} and again.files_quarantined == 1
    assert store.read(EVENTS).count() == 2
    assert file_log(store, "part-00000.csv")[-1]["file_reason"] == Reason.CHANGED


def it_gives_an_old_file_log_its_version_columns_without_reading_its_files_again(spark, store, tmp_path):
    drop = ingested_drop(spark, store, tmp_path)
    old_columns = [c for c in store.read(INGEST_FILES).columns if c not in ("size", "modified_ms", "sha256")]
    store.overwrite(store.read(INGEST_FILES).select(*old_columns), INGEST_FILES)  # as logs were
    redrop(drop, csv_text(GOOD[:3]))  # the old log cannot tell: nothing is read again
    versions = {name: store.version(name) for name in (EVENTS, INGEST_BATCHES)}
    assert ingest_raw(spark, store, config(tmp_path / "raw"), now=NOW).files == 0
    assert {name: store.version(name) for name in versions} == versions
    upgraded = file_log(store, "part-00000.csv")
    assert len(upgraded) == 1 and upgraded[0]["size"] is None and upgraded[0]["sha256"] is None


def it_ignores_columns_the_contract_lacks_and_quarantines_a_drop_missing_a_required_one(
    spark, store, tmp_path
):
    day = tmp_path / "raw" / "2025-06-01"
    day.mkdir(parents=True)
    columns = [c for c in RAW_COLUMNS if c != "category"] + ["coupon"]  # one optional column less
    rows = [[*(v for c, v in zip(RAW_COLUMNS, row, strict=True) if c != "category"), "X1"] for row in GOOD]
    (day / "drift.csv").write_text("\n".join([",".join(columns), *(",".join(r) for r in rows)]) + "\n")
    no_user = [c for c in RAW_COLUMNS if c != "user_id"]
    (day / "no-user.csv").write_text(",".join(no_user) + "\n" + ",".join(["x"] * len(no_user)) + "\n")
    counts = ingest_raw(spark, store, config(tmp_path / "raw"), now=NOW)
    assert counts.balanced and (counts.bronze_rows, counts.quarantine_rows) == (4, 2)
    assert counts.ignored_columns == {"coupon": 1}
    assert any("'coupon' is not in the contract: ignored in 1 files" in line for line in counts.lines())
    assert store.read(EVENTS).filter(F.col("category").isNotNull()).count() == 0
    assert "coupon" in file_log(store, "drift.csv")[0]["detail"]
    rejected = file_log(store, "no-user.csv")[0]
    assert rejected["file_reason"] == Reason.BAD_HEADER and "'user_id'" in rejected["detail"]
