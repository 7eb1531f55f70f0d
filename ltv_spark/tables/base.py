"""The table interface every stage reads and writes through, and its errors.

Two engines implement it (delta_rs.DeltaRsStore, spark_delta.SparkDeltaStore); callers never know
which one they hold. Table names are logical (``bronze.events``): the engine maps them to a folder
or to a Unity Catalog name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


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
        """Commit records, newest first."""

    def committed_batch(self, name: str, app_id: str) -> int | None:
        """The last batch id committed by ``app_id`` (None if none)."""


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
