"""Delta tables through Spark's own connector (Databricks, clusters with --packages, ``make``'s jars).

Every operation is Delta-Spark's: ``format("delta")`` reads and writes, ``replaceWhere`` for
partition overwrites, ``txnAppId``/``txnVersion`` for idempotent appends, ``DeltaTable.merge``.
Files are written by the executors straight into the table and committed by the driver in one
optimistic transaction, on any file system Hadoop reaches (``s3a://`` included).

With a catalog configured, ``bronze.events`` is the managed table ``<catalog>.bronze.events``
(``saveAsTable``, ``DeltaTable.forName``): on Databricks a Unity Catalog name (catalog, schema,
table); with ``spark_catalog``, the session catalog's ``bronze.events`` (a Hive metastore). Without
one it is the folder ``<root>/bronze/events``.
Each commit carries ``{"ltv_operation", "ltv_parameters"}`` as Delta's userMetadata, so that
``history`` reads the same on both engines.

Writes are optimistic: a commit that conflicts with a concurrent one (another job's merge into the
same files, a concurrent create) is re-run from a fresh snapshot, which every write here allows
(appends are idempotent per batch, merges and overwrites replace what they write), up to
``CONFLICT_ATTEMPTS`` times, then reported naming the table; nothing of a failed attempt is visible.
On ``s3a://`` the commit is atomic across drivers only with a multi-driver log store (``make``'s
conditional-PUT one, ltv_spark.jvm_jars).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from delta import exceptions as delta_exceptions
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType
from pyspark.sql.utils import AnalysisException

from ltv_spark.tables.base import (
    TableError,
    TableNotFound,
    call_before_commit,
    check_same_columns,
    check_unique_keys,
    commit_metadata,
    history_record,
    split_name,
)

LOG = logging.getLogger(__name__)

SESSION_CATALOG = "spark_catalog"  # Spark's own catalog (a Hive metastore, or Databricks' hive_metastore)
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"  # Delta's per-commit comment
CONFLICT_ATTEMPTS = 4
COMMIT_CONFLICTS = tuple(  # Delta's optimistic-concurrency failures: the commit was refused whole
    getattr(delta_exceptions, name)
    for name in (
        "ConcurrentAppendException",
        "ConcurrentDeleteDeleteException",
        "ConcurrentDeleteReadException",
        "ConcurrentTransactionException",
        "ConcurrentWriteException",
        "DeltaConcurrentModificationException",
        "MetadataChangedException",
        "ProtocolChangedException",
    )
)


def _retried_on_conflict(write: Callable[..., Any]) -> Callable[..., Any]:
    """Re-run a write whose commit lost to a concurrent one; after the last try, say so clearly."""

    @functools.wraps(write)
    def retried(self: SparkDeltaStore, df: DataFrame, name: str, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                return write(self, df, name, *args, **kwargs)
            except COMMIT_CONFLICTS as error:
                summary = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                if attempt == CONFLICT_ATTEMPTS:
                    raise TableError(
                        f"{write.__name__} into {name}: lost to concurrent commits {attempt} times "
                        f"(last: {summary}); nothing of it was committed, run it again"
                    ) from error
                LOG.warning("%s into %s: concurrent commit (%s); again", write.__name__, name, summary)
        raise AssertionError("unreachable")

    return retried


class SparkDeltaStore:
    """TableStore over the JVM Delta connector."""

    def __init__(self, spark: SparkSession, root: str, catalog: str | None = None) -> None:
        from delta.tables import DeltaTable  # the Python half of delta-spark; the JVM half must load

        self._spark = spark
        self._root = _absolute(root)
        self._catalog = catalog
        self._delta_table = DeltaTable

    # ---------------------------------------------------------------- inspect
    def location(self, name: str) -> str:
        schema, table = split_name(name)
        if self._catalog == SESSION_CATALOG:  # open-source DeltaTable.forName parses two parts only
            return f"{schema}.{table}"
        if self._catalog:
            return f"{self._catalog}.{schema}.{table}"
        return f"{self._root}/{schema}/{table}"

    def exists(self, name: str) -> bool:
        if self._catalog:
            return self._spark.catalog.tableExists(self.location(name))
        return self._delta_table.isDeltaTable(self._spark, self.location(name))

    def version(self, name: str) -> int:
        return int(self._table(name).history(1).select("version").first()[0])

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        history = self._table(name).history(limit) if limit else self._table(name).history()
        records = []
        for row in history.select("version", "timestamp", "operation", "userMetadata").collect():
            records.append(
                history_record(row["version"], row["timestamp"], row["operation"], row["userMetadata"])
            )
        return records

    def committed_batch(self, name: str, app_id: str) -> int | None:
        """The txnVersion Delta recorded for ``app_id`` (its SetTransaction action), or None."""
        if not self.exists(name):
            return None
        log = self._spark._jvm.org.apache.spark.sql.delta.DeltaLog.forTable(
            self._spark._jsparkSession, self._path(name)
        )
        committed = log.update(False, _none(self._spark), _none(self._spark)).transactions().get(app_id)
        return int(committed.get()) if committed.isDefined() else None

    def tables(self) -> list[str]:
        if self._catalog:
            return self._catalog_tables()
        jvm = self._spark._jvm
        root = jvm.org.apache.hadoop.fs.Path(self._root)
        fs = root.getFileSystem(self._spark._jsc.hadoopConfiguration())
        if not fs.exists(root):
            return []
        names = []
        for schema in fs.listStatus(root):
            if not schema.isDirectory():
                continue
            for table in fs.listStatus(schema.getPath()):
                if fs.exists(jvm.org.apache.hadoop.fs.Path(table.getPath(), "_delta_log")):
                    names.append(f"{schema.getPath().getName()}.{table.getPath().getName()}")
        return sorted(names)

    def _catalog_tables(self) -> list[str]:
        """The Delta tables of the catalog's schemas (the session catalog's databases)."""
        prefix = "" if self._catalog == SESSION_CATALOG else f"{self._catalog}."
        names = []
        for schema in self._spark.sql(f"SHOW SCHEMAS IN {self._catalog}").collect():
            for table in self._spark.sql(f"SHOW TABLES IN {prefix}{schema[0]}").collect():
                if not table["isTemporary"] and self._delta_table.isDeltaTable(
                    self._spark, self._path(f"{schema[0]}.{table['tableName']}")
                ):
                    names.append(f"{schema[0]}.{table['tableName']}")
        return sorted(names)

    # ---------------------------------------------------------------- clean
    def vacuum(self, name: str, retention_hours: int) -> int:
        """Delta's VACUUM, counted by its dry run first; its retention check is lifted for the call
        (it refuses under 168 hours), since the retention is the caller's decision."""
        target = self.location(name) if self._catalog else f"delta.`{self.location(name)}`"
        check = "spark.databricks.delta.retentionDurationCheck.enabled"
        previous = self._spark.conf.get(check, "true")
        self._spark.conf.set(check, "false")
        try:
            retain = f"RETAIN {int(retention_hours)} HOURS"
            deleted = self._spark.sql(f"VACUUM {target} {retain} DRY RUN").count()
            if deleted:
                self._spark.sql(f"VACUUM {target} {retain}").collect()
            return deleted
        finally:
            self._spark.conf.set(check, previous)

    def delete(self, name: str, condition: Column, description: str) -> int:
        """Delta's DELETE, after counting the rows (no count: no commit)."""
        matches = F.coalesce(condition, F.lit(False))
        deleted = self.read(name).filter(matches).count()
        if deleted:
            with self._commit_metadata(name, "DELETE", {"what": description, "rows": deleted}):
                self._table(name).delete(matches)
        return deleted

    # ---------------------------------------------------------------- read
    def read(self, name: str, version: int | None = None) -> DataFrame:
        if not self.exists(name):
            raise TableNotFound(f"table {name} not found at {self.location(name)}")
        reader = self._spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.table(self.location(name)) if self._catalog else reader.load(self.location(name))

    # ---------------------------------------------------------------- write
    @_retried_on_conflict
    def overwrite(
        self,
        df: DataFrame,
        name: str,
        partition_by: Sequence[str] = (),
        replace_partitions: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        writer = df.write.format("delta").mode("overwrite")
        exists = self.exists(name)
        if exists:
            partition_by = self._partition_columns(name)  # an existing table keeps its layout
        if replace_partitions and exists:  # a new table is created whole, as on delta-rs
            check_same_columns(name, self._schema(name), df.schema)
            condition = " AND ".join(
                f"`{col}` IN ({', '.join(_sql_string(v) for v in values)})"
                for col, values in replace_partitions.items()
            )
            writer = writer.option("replaceWhere", condition)
            parameters: dict[str, Any] = {
                "replace_partitions": [
                    [c, "in", [str(v) for v in vs]] for c, vs in replace_partitions.items()
                ]
            }
        else:
            writer = writer.option("overwriteSchema", "true")
            parameters = {"replace_partitions": []}
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        operation = "OVERWRITE" if exists else "CREATE OR REPLACE"
        with self._commit_metadata(name, operation, parameters):
            self._save(writer, name)
        return self.version(name)

    @_retried_on_conflict
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
        writer = df.write.format("delta").mode("append")
        if self.exists(name):
            committed = self.committed_batch(name, app_id) if app_id is not None else None
            if committed is not None and committed >= batch_id:
                return None  # this batch is already in the table: appending again would duplicate it
            check_same_columns(name, self._schema(name), df.schema)
        elif partition_by:
            writer = writer.partitionBy(*partition_by)
        if app_id is not None:
            writer = writer.option("txnAppId", app_id).option("txnVersion", batch_id)
        with self._commit_metadata(name, "APPEND", {"app_id": app_id, "batch_id": batch_id}):
            self._save(writer, name)
        return self.version(name)

    @_retried_on_conflict
    def merge(self, df: DataFrame, name: str, keys: Sequence[str], partition_by: Sequence[str] = ()) -> int:
        check_unique_keys(df, keys)
        if not self.exists(name):
            with self._commit_metadata(name, "MERGE", {}):
                writer = df.write.format("delta").mode("errorifexists")
                self._save(writer.partitionBy(*partition_by) if partition_by else writer, name)
            return self.version(name)
        check_same_columns(name, self._schema(name), df.schema)
        condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        with self._commit_metadata(name, "MERGE", {"keys": list(keys)}):
            (
                self._table(name)
                .alias("t")
                .merge(df.alias("s"), condition)
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll()
                .execute()
            )
        return self.version(name)

    # ---------------------------------------------------------------- internals
    def _table(self, name: str) -> Any:
        if not self.exists(name):
            raise TableNotFound(f"table {name} not found at {self.location(name)}")
        if self._catalog:
            return self._delta_table.forName(self._spark, self.location(name))
        return self._delta_table.forPath(self._spark, self.location(name))

    def _path(self, name: str) -> str:
        """The table's folder (a catalog table's location comes from its metadata)."""
        if not self._catalog:
            return self.location(name)
        return self._table(name).detail().select("location").first()[0]

    def _schema(self, name: str) -> StructType:
        return self.read(name).schema

    def _partition_columns(self, name: str) -> list[str]:
        return list(self._table(name).detail().select("partitionColumns").first()[0])

    def _save(self, writer: Any, name: str) -> None:
        if not self._catalog:
            writer.save(self.location(name))
            return
        schema = self.location(name).rsplit(".", 1)[0]
        self._spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        writer.saveAsTable(self.location(name))

    @contextmanager
    def _commit_metadata(self, name: str, operation: str, parameters: dict[str, Any]) -> Iterator[None]:
        """Every commit made inside the block carries our operation and parameters."""
        self._spark.conf.set(USER_METADATA, commit_metadata(operation, parameters))
        try:
            call_before_commit(name)
            yield
        except AnalysisException as error:
            raise TableError(f"{operation}: {error}") from error
        finally:
            self._spark.conf.unset(USER_METADATA)


def _absolute(root: str) -> str:
    """A local folder as an absolute path, as delta-rs resolves it; a URI (s3a://, dbfs:) as given."""
    root = root.rstrip("/")
    if "://" in root or root.startswith(("dbfs:", "/Volumes/")):
        return root
    return str(Path(root.removeprefix("file:")).resolve())


def _sql_string(value: Any) -> str:
    if isinstance(value, dt.date):
        value = value.isoformat()
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _none(spark: SparkSession) -> Any:
    """Scala's ``None``, for a JVM method whose optional arguments py4j cannot leave out."""
    return spark._jvm.scala.Option.empty()
