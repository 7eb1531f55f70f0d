"""Which listed drops an ingest run reads: the new ones, and the ones changed since they were read.

``bronze.ingest_files`` keeps a row per file and batch with the file's size, modification time and
content hash as ingest saw them. A platform that re-drops a corrected file under the same name
changes its size or modification time: the plan takes it again, and once the batch has hashed its
bytes, a file whose content is the same (copied again, touched) is recorded and not read.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ltv_spark.raw_files import RawFile

# Columns the file log gained with re-drop detection; a log written before has them as nulls.
VERSION_COLUMNS = {"size": "long", "modified_ms": "long", "sha256": "string"}


@dataclass(frozen=True)
class LoggedFile:
    """A file as the file log last recorded it (size, time and hash are None in an older log)."""

    path: str
    batch_id: int
    size: int | None
    modified_ms: int | None
    sha256: str | None


def latest_logged(file_log: DataFrame) -> dict[str, LoggedFile]:
    """The newest log row of each path (a row per file reaches the driver, as the plan needs)."""
    newest = Window.partitionBy("path").orderBy(F.col("batch_id").desc())
    rows = (
        file_log.withColumn("_newest", F.row_number().over(newest))
        .filter(F.col("_newest") == 1)
        .select("path", "batch_id", "size", "modified_ms", "sha256")
        .collect()
    )
    return {row["path"]: LoggedFile(**row.asDict()) for row in rows}


def has_changed(file: RawFile, logged: LoggedFile) -> bool:
    """Whether the file's size or modification time differs from the log's.

    A row logged before the log kept them cannot tell, and counts as unchanged: an old warehouse
    is not read again whole.
    """
    if logged.size is None or logged.modified_ms is None:
        return False
    return (file.size, file.modified_ms) != (logged.size, logged.modified_ms)


def files_to_read(listed: list[RawFile], logged: dict[str, LoggedFile]) -> list[RawFile]:
    """The listed files never logged, and the logged ones that changed since (in listing order)."""
    return [f for f in listed if f.path not in logged or has_changed(f, logged[f.path])]


def describe_change(file: RawFile, logged: LoggedFile) -> str:
    """What changed since the file's last batch, for the file log and the run's summary."""
    parts = []
    if file.size != logged.size:
        parts.append(f"size {logged.size:,} -> {file.size:,} bytes")
    if file.modified_ms != logged.modified_ms:
        parts.append("modification time")
    return f"changed since batch {logged.batch_id} ({', '.join(parts)})"


def with_columns(file_log: DataFrame, columns: dict[str, str]) -> DataFrame:
    """An older file log with ``columns`` (name -> type) added as nulls (an old table's upgrade)."""
    for column, kind in columns.items():
        if column not in file_log.columns:
            file_log = file_log.withColumn(column, F.lit(None).cast(kind))
    return file_log
