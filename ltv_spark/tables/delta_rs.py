"""Delta tables without the JVM connector: Spark writes the Parquet files, delta-rs commits them.

The write path keeps the work distributed and the commit atomic:
1. Spark writes the DataFrame's files in parallel into ``<table>/_staging/<uuid>/`` (partitioned
   the Hive way, as Delta-Spark lays them out);
2. the driver moves each file to its final place inside the table folder and lists them
   (file names and sizes only: nothing that grows with rows passes the driver);
3. one delta-rs transaction commits all the files as a single table version.
A process killed before step 3 leaves the table at its previous version: the moved files are
not in the log, so no reader sees them (VACUUM removes them later).

Reading lists the snapshot's files with delta-rs and hands them to Spark's Parquet reader. That is
only correct for tables without deletion vectors or column mapping, which are refused (features.py).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    RemoveAction,
    Transaction,
    create_table_with_add_actions,
)
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from ltv_spark.tables.base import (
    TableError,
    TableNotFound,
    all_nullable_schema,
    call_before_commit,
    check_same_columns,
    check_unique_keys,
    commit_metadata,
    history_record,
    split_name,
)
from ltv_spark.tables.features import check_readable, check_writable

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


class DeltaRsStore:
    """TableStore on local folders: ``bronze.events`` -> ``<root>/bronze/events``."""

    def __init__(self, spark: SparkSession, root: str, staging_dir: str = "_staging") -> None:
        if "://" in root and not root.startswith("file://"):
            raise TableError(
                f"tables.root={root!r}: the delta-rs engine writes local folders only; "
                "use tables.engine=spark-delta on a cluster"
            )
        self._spark = spark
        self._root = Path(root.removeprefix("file://")).resolve()
        self._staging_dir = staging_dir

    # ---------------------------------------------------------------- inspect
    def location(self, name: str) -> str:
        schema, table = split_name(name)
        return str(self._root / schema / table)

    def exists(self, name: str) -> bool:
        return (Path(self.location(name)) / "_delta_log").is_dir()

    def version(self, name: str) -> int:
        return self._open(name).version()

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        return [
            history_record(c["version"], c["timestamp"], c.get("operation", ""), c.get("userMetadata"))
            for c in self._open(name).history(limit)
        ]

    def committed_batch(self, name: str, app_id: str) -> int | None:
        if not self.exists(name):
            return None
        return self._open(name).transaction_version(app_id)

    def tables(self) -> list[str]:
        if not self._root.is_dir():
            return []
        return sorted(
            f"{schema.name}.{table.name}"
            for schema in self._root.iterdir()
            if schema.is_dir()
            for table in schema.iterdir()
            if (table / "_delta_log").is_dir()
        )

    # ---------------------------------------------------------------- clean
    def vacuum(self, name: str, retention_hours: int) -> int:
        """delta-rs's full VACUUM (also the files moved in by a write that never committed), then the
        staging folders of Spark writes killed before their files were moved."""
        table = self._open_for_write(name)
        deleted = table.vacuum(
            retention_hours=retention_hours,
            dry_run=False,
            enforce_retention_duration=False,
            full=True,
            commit_properties=_properties("VACUUM", {"retention_hours": retention_hours}),
        )
        return len(deleted) + self._remove_stale_staging(name, retention_hours)

    def _remove_stale_staging(self, name: str, retention_hours: int) -> int:
        """Staging folders (``_staging/<uuid>``) last written before the retention: a live write's
        folder is younger, since it is removed as soon as its files are in the table."""
        staging = Path(self.location(name)) / self._staging_dir
        if not staging.is_dir():
            return 0
        oldest_kept = time.time() - retention_hours * 3600
        removed = 0
        for folder in staging.iterdir():
            files = [f for f in folder.rglob("*") if f.is_file()]
            if max((f.stat().st_mtime for f in files), default=folder.stat().st_mtime) < oldest_kept:
                shutil.rmtree(folder)
                removed += len(files)
        return removed

    # ---------------------------------------------------------------- read
    def read(self, name: str, version: int | None = None) -> DataFrame:
        table = self._open(name, version)
        schema = _spark_schema(table)
        files = table.file_uris()
        if not files:
            return self._spark.createDataFrame([], schema)
        reader = self._spark.read.schema(schema).option("basePath", self.location(name))
        return reader.parquet(*files).select(*schema.fieldNames())

    # ---------------------------------------------------------------- write
    def overwrite(
        self,
        df: DataFrame,
        name: str,
        partition_by: Sequence[str] = (),
        replace_partitions: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        if not self.exists(name):
            return self._create(df, name, partition_by, operation="CREATE OR REPLACE")
        table = self._open_for_write(name)
        partition_by = table.metadata().partition_columns
        if replace_partitions:
            check_same_columns(name, _spark_schema(table), df.schema)
        adds = self._write_files(df, name, partition_by)
        filters = [
            (col, "in", [str(v) for v in values]) for col, values in (replace_partitions or {}).items()
        ]
        self._commit(
            name,
            lambda: table.create_write_transaction(
                adds,
                mode="overwrite",
                schema=_delta_schema(df.schema),
                partition_by=partition_by,
                partition_filters=filters or None,
                commit_properties=_properties("OVERWRITE", {"replace_partitions": filters}),
            ),
        )
        return self.version(name)

    def append(
        self,
        df: DataFrame,
        name: str,
        partition_by: Sequence[str] = (),
        app_id: str | None = None,
        batch_id: int | None = None,
    ) -> int | None:
        if (app_id is None) != (batch_id is None):
            raise TableError("append: app_id and batch_id go together")
        transactions = [Transaction(app_id, batch_id, _now_ms())] if app_id is not None else None
        if not self.exists(name):
            return self._create(df, name, partition_by, operation="APPEND", transactions=transactions)
        table = self._open_for_write(name)
        committed = table.transaction_version(app_id) if app_id is not None else None
        if committed is not None and committed >= batch_id:
            return None  # this batch is already in the table: appending again would duplicate it
        check_same_columns(name, _spark_schema(table), df.schema)
        adds = self._write_files(df, name, table.metadata().partition_columns)
        properties = _properties("APPEND", {"app_id": app_id, "batch_id": batch_id}, transactions)
        self._commit(
            name,
            lambda: table.create_write_transaction(
                adds, mode="append", schema=table.schema(), commit_properties=properties
            ),
        )
        return self.version(name)

    def merge(self, df: DataFrame, name: str, keys: Sequence[str], partition_by: Sequence[str] = ()) -> int:
        """Upsert by rewriting, in Spark, the files of the partitions the source touches."""
        check_unique_keys(df, keys)
        if not self.exists(name):
            return self._create(df, name, partition_by, operation="MERGE")
        table = self._open_for_write(name)
        check_same_columns(name, _spark_schema(table), df.schema)
        partition_by = table.metadata().partition_columns
        touched = _touched_partitions(df, partition_by)
        old_files = _add_actions(table, touched)
        target = self._read_files(name, table, [f["uri"] for f in old_files])
        kept = target.join(df.select(*keys).distinct(), on=list(keys), how="left_anti")
        merged = kept.unionByName(df.select(*target.columns))
        adds = self._write_files(merged, name, partition_by)
        self._commit_rewrite(name, table, old_files, adds, "MERGE", {"keys": list(keys)})
        return self.version(name)

    def delete(self, name: str, condition: Column, description: str) -> int:
        """Rewrite, in Spark, only the files holding a matching row, without those rows (the engine
        has no deletion vectors); one commit removes the old files and adds the new."""
        table = self._open_for_write(name)
        old_files = _add_actions(table, None)
        by_path = {_local_path(f["uri"]): f for f in old_files}
        rows = self._read_files(name, table, [f["uri"] for f in old_files])
        matching = rows.filter(F.coalesce(condition, F.lit(False)))
        hit = matching.groupBy(F.input_file_name().alias("file")).count().collect()  # a row per file
        if not hit:
            return 0
        touched = [by_path[_local_path(row["file"])] for row in hit]
        kept = self._read_files(name, table, [f["uri"] for f in touched])
        kept = kept.filter(~F.coalesce(condition, F.lit(False)))
        adds = self._write_files(kept, name, table.metadata().partition_columns)
        deleted = sum(row["count"] for row in hit)
        self._commit_rewrite(name, table, touched, adds, "DELETE", {"what": description, "rows": deleted})
        return deleted

    # ---------------------------------------------------------------- internals
    def _open(self, name: str, version: int | None = None) -> DeltaTable:
        location = self.location(name)
        try:
            table = DeltaTable(location, version=version)
        except TableNotFoundError:
            raise TableNotFound(f"table {name} not found at {location}") from None
        protocol = table.protocol()
        check_readable(
            location,
            protocol.min_reader_version,
            protocol.reader_features,
            table.metadata().configuration,
        )
        return table

    def _open_for_write(self, name: str) -> DeltaTable:
        table = self._open(name)
        protocol = table.protocol()
        check_writable(
            self.location(name),
            protocol.min_reader_version,
            protocol.min_writer_version,
            protocol.reader_features,
            protocol.writer_features,
            table.metadata().configuration,
        )
        return table

    def _create(
        self,
        df: DataFrame,
        name: str,
        partition_by: Sequence[str],
        operation: str,
        transactions: list[Transaction] | None = None,
    ) -> int:
        adds = self._write_files(df, name, partition_by)
        location = self.location(name)
        self._commit(
            name,
            lambda: create_table_with_add_actions(
                location,
                _delta_schema(df.schema),
                adds,
                mode="append",
                partition_by=list(partition_by) or None,
                name=name,
                commit_properties=_properties(operation, {}, transactions),
            ),
        )
        return self.version(name)

    def _commit_rewrite(
        self,
        name: str,
        table: DeltaTable,
        old_files: list[dict[str, Any]],
        adds: list[AddAction],
        operation: str,
        parameters: dict[str, Any],
    ) -> None:
        """One commit that replaces ``old_files`` by the files rewritten from them (merge, delete)."""
        removes = [
            RemoveAction(f["path"], True, _now_ms(), f["size"], f["partition_values"]) for f in old_files
        ]
        self._commit(
            name,
            lambda: table.create_write_transaction(
                [*removes, *adds],
                mode="append",
                schema=table.schema(),
                commit_properties=_properties(operation, parameters),
            ),
        )

    def _commit(self, name: str, commit: Callable[[], None]) -> None:
        call_before_commit(name)  # the files are in the table, the commit is next
        commit()

    def _write_files(self, df: DataFrame, name: str, partition_by: Sequence[str]) -> list[AddAction]:
        """Spark writes the files in parallel; the driver moves them into the table and lists them."""
        table_dir = Path(self.location(name))
        staging = table_dir / self._staging_dir / uuid.uuid4().hex
        writer = df.write.mode("errorifexists")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(str(staging))
        adds = [_move_into_table(staged, staging, table_dir) for staged in _data_files(staging)]
        shutil.rmtree(staging, ignore_errors=True)
        return adds

    def _read_files(self, name: str, table: DeltaTable, uris: list[str]) -> DataFrame:
        schema = _spark_schema(table)
        if not uris:
            return self._spark.createDataFrame([], schema)
        reader = self._spark.read.schema(schema).option("basePath", self.location(name))
        return reader.parquet(*uris).select(*schema.fieldNames())


def _data_files(staging: Path) -> list[Path]:
    return sorted(
        path
        for path in staging.rglob("*.parquet")
        if not any(part.startswith(("_", ".")) for part in path.relative_to(staging).parts)
    )


def _move_into_table(staged: Path, staging: Path, table_dir: Path) -> AddAction:
    relative = staged.relative_to(staging)
    target = table_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, target)
    stat = target.stat()
    partition_values = {}
    for part in relative.parts[:-1]:
        key, _, value = part.partition("=")
        value = urllib.parse.unquote(value)
        partition_values[key] = None if value == HIVE_NULL else value
    rows = pq.read_metadata(target).num_rows
    return AddAction(
        path=urllib.parse.quote(relative.as_posix(), safe="/="),
        size=stat.st_size,
        partition_values=partition_values,
        modification_time=int(stat.st_mtime * 1000),
        data_change=True,
        stats=json.dumps({"numRecords": rows}),
    )


def _add_actions(table: DeltaTable, touched: list[dict[str, str | None]] | None) -> list[dict[str, Any]]:
    """The table's live files, limited to the touched partitions when the table is partitioned."""
    root = table.table_uri.rstrip("/")
    actions = _arrow(table.get_add_actions(flatten=True)).to_pydict()
    partition_columns = table.metadata().partition_columns
    files = []
    for i, path in enumerate(actions.get("path", [])):
        values = {col: _partition_string(actions[f"partition.{col}"][i]) for col in partition_columns}
        if touched is not None and values not in touched:
            continue
        uri = path if "://" in path else f"{root}/{path}"
        files.append({"path": path, "uri": uri, "size": actions["size_bytes"][i], "partition_values": values})
    return files


def _local_path(uri: str) -> str:
    """A file URI as Spark's input_file_name or delta-rs spell it -> one local path spelling."""
    return urllib.parse.unquote(urllib.parse.urlparse(uri).path if "://" in uri else uri)


def _arrow(table: Any) -> pa.Table:
    """delta-rs returns arro3 tables; take them into pyarrow through the Arrow C stream interface."""
    return pa.RecordBatchReader._import_from_c_capsule(table.__arrow_c_stream__()).read_all()


def _touched_partitions(df: DataFrame, partition_by: Sequence[str]) -> list[dict[str, str | None]] | None:
    """The distinct partition values of a merge source (bounded by the number of partitions)."""
    if not partition_by:
        return None
    rows = df.select(*partition_by).distinct().collect()
    return [{col: _partition_string(row[col]) for col in partition_by} for row in rows]


def _partition_string(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _spark_schema(table: DeltaTable) -> StructType:
    """Delta's schema JSON is Spark's StructType JSON, so the types round-trip exactly."""
    return StructType.fromJson(json.loads(table.schema().to_json()))


def _delta_schema(schema: StructType) -> DeltaSchema:
    """Spark schema -> Delta schema, every field nullable (as Delta-Spark writes them)."""
    return DeltaSchema.from_json(all_nullable_schema(schema).json())


def _properties(
    operation: str, parameters: dict[str, Any], transactions: list[Transaction] | None = None
) -> CommitProperties:
    metadata = {"userMetadata": commit_metadata(operation, parameters)}
    return CommitProperties(custom_metadata=metadata, app_transactions=transactions)


def _now_ms() -> int:
    return int(time.time() * 1000)
