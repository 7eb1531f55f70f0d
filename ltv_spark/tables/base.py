"""The table interface every stage reads and writes through, and its errors.

Two engines implement it (delta_rs.DeltaRsStore, spark_delta.SparkDeltaStore); callers never know
which one they hold. Table names are logical (``bronze.events``): the engine maps them to a folder
or to a Unity Catalog name.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

# Called with the table's name just before a write commits: on delta-rs once its files are in the
# table, on the JVM connector before its writer starts (Spark writes and commits in one call).
# Tests set it to crash or kill the process at that point; None in production.
before_commit: Callable[[str], None] | None = None


def call_before_commit(name: str) -> None:
    """Run the ``before_commit`` hook, if a test installed one."""
    if before_commit is not None:
        before_commit(name)


class TableError(RuntimeError):
    """Base class of table-layer errors."""


class TableNotFound(TableError):
    """The logical table has never been written."""


class UnsupportedTableFeature(TableError):
    """The table uses a Delta feature this engine cannot honour; reading it would give wrong rows."""


class SchemaMismatch(TableError):
    """An append or merge whose columns or types differ from the table's."""


class DuplicateMergeKey(TableError):
    """A MERGE source holding the same key twice: which row should win is undefined."""


class TableStore(Protocol):
    """Read, write and inspect Delta tables by logical name."""

    def location(self, name: str) -> str:
        """Where the table lives: a folder/URI, or ``catalog.schema.table``."""

    def exists(self, name: str) -> bool:
        """Whether the table has at least one committed version."""

    def read(self, name: str, version: int | None = None) -> DataFrame:
        """The table's snapshot (latest, or ``version`` for time travel)."""

    def overwrite(
        self,
        df: DataFrame,
        name: str,
        partition_by: Sequence[str] = (),
        replace_partitions: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        """Replace the table (or only the partitions named in ``replace_partitions``); new version."""

    def append(
        self,
        df: DataFrame,
        name: str,
        partition_by: Sequence[str] = (),
        app_id: str | None = None,
        batch_id: int | None = None,
    ) -> int | None:
        """Add rows; with (app_id, batch_id) a batch already committed is skipped (returns None)."""

    def merge(self, df: DataFrame, name: str, keys: Sequence[str], partition_by: Sequence[str] = ()) -> int:
        """Upsert on ``keys``: matching rows are replaced, others inserted; new version."""

    def version(self, name: str) -> int:
        """The latest committed version."""

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Commit records, newest first, as ``history_record`` shapes them."""

    def committed_batch(self, name: str, app_id: str) -> int | None:
        """The last batch id committed by ``app_id`` (None if none)."""

    def delete(self, name: str, condition: Column, description: str) -> int:
        """Delete the rows where ``condition`` holds (null counts as false); how many. Commits a
        version only when there are some. ``description`` goes in the commit, not the rows' values."""

    def tables(self) -> list[str]:
        """Every Delta table of the warehouse, by logical name, sorted."""

    def vacuum(self, name: str, retention_hours: int) -> int:
        """Delete the table's files that no version younger than ``retention_hours`` needs, and the
        files of writes that never committed (a killed job's) older than that; how many went.

        A file the latest version reads is never deleted. Time travel to a version older than the
        retention stops working, as with Delta's own VACUUM.
        """


def split_name(name: str) -> tuple[str, str]:
    """``bronze.events`` -> ("bronze", "events"); anything else is refused."""
    parts = name.split(".")
    if len(parts) != 2 or not all(part.isidentifier() for part in parts):
        raise TableError(f"table name {name!r}: expected 'schema.table', e.g. 'bronze.events'")
    return parts[0], parts[1]


def check_unique_keys(df: DataFrame, keys: Sequence[str]) -> None:
    """Refuse a MERGE source with two rows for one key (Delta's own merge refuses it too)."""
    duplicate = df.groupBy(*keys).count().filter(F.col("count") > 1).limit(1).collect()
    if duplicate:
        shown = {k: duplicate[0][k] for k in keys}
        raise DuplicateMergeKey(f"merge source has {duplicate[0]['count']} rows for key {shown}")


def history_record(
    version: int, timestamp: dt.datetime | int, operation: str, user_metadata: str | None
) -> dict[str, Any]:
    """One commit as both engines report it: version, UTC time, Delta's operation name, and ours.

    Our writes put ``{"ltv_operation", "ltv_parameters"}`` in the commit's ``userMetadata`` (a
    field every Delta engine keeps), so a table reads the same history whichever engine wrote it.
    """
    if isinstance(timestamp, int):
        timestamp = dt.datetime.fromtimestamp(timestamp / 1000, dt.UTC)
    elif timestamp.tzinfo is None:  # Spark returns session-time (UTC) datetimes without a zone
        timestamp = timestamp.replace(tzinfo=dt.UTC)
    ours = json.loads(user_metadata) if user_metadata else {}
    return {
        "version": int(version),
        "timestamp": timestamp,
        "operation": operation,
        "ltv_operation": ours.get("ltv_operation"),
        "ltv_parameters": json.loads(ours.get("ltv_parameters") or "{}"),
    }


def commit_metadata(operation: str, parameters: Mapping[str, Any]) -> str:
    """The ``userMetadata`` string our commits carry (read back by ``history_record``)."""
    return json.dumps({"ltv_operation": operation, "ltv_parameters": json.dumps(parameters, default=str)})


def check_same_columns(name: str, table: StructType, data: StructType) -> None:
    """Refuse an append, partition overwrite or merge whose columns or types differ from the table's.

    Nullability is ignored: Delta stores every written column as nullable.
    """
    expected = {f["name"]: f["type"] for f in _all_nullable(json.loads(table.json()))["fields"]}
    actual = {f["name"]: f["type"] for f in _all_nullable(json.loads(data.json()))["fields"]}
    if expected != actual:
        missing = sorted(set(expected) - set(actual))
        extra = sorted(set(actual) - set(expected))
        changed = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
        raise SchemaMismatch(
            f"{name}: data does not match the table schema "
            f"(missing columns {missing}, unexpected columns {extra}, different types {changed})"
        )


def all_nullable_schema(schema: StructType) -> StructType:
    """``schema`` with every field, array element and map value nullable (as Delta writes them)."""
    return StructType.fromJson(_all_nullable(json.loads(schema.json())))


def _all_nullable(node: Any) -> Any:
    if isinstance(node, dict):
        flags = ("nullable", "containsNull", "valueContainsNull")
        return {k: (True if k in flags else _all_nullable(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_all_nullable(v) for v in node]
    return node
