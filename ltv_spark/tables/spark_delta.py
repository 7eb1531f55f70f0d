"""Delta tables through Spark's own connector (Databricks, clusters started with --packages).

Every operation is Delta-Spark's: ``format("delta")`` reads and writes, ``replaceWhere`` for
partition overwrites, ``txnAppId``/``txnVersion`` for idempotent appends, ``DeltaTable.merge``.
With a catalog configured, ``bronze.events`` is the Unity Catalog table ``<catalog>.bronze.events``;
otherwise it is the folder ``<root>/bronze/events``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from ltv_spark.tables.base import TableNotFound, check_unique_keys, split_name


class SparkDeltaStore:
    """TableStore over the JVM Delta connector."""

    def __init__(self, spark: SparkSession, root: str, catalog: str | None = None) -> None:
        from delta.tables import DeltaTable  # the Python half of delta-spark; the JVM half must load

        self._spark = spark
        self._root = root.rstrip("/")
        self._catalog = catalog
        self._delta_table = DeltaTable

    def location(self, name: str) -> str:
        schema, table = split_name(name)
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
        return [row.asDict(recursive=True) for row in history.collect()]

    def committed_batch(self, name: str, app_id: str) -> int | None:
        """Latest txnVersion of ``app_id``, as recorded in the commit info of our appends."""
        if not self.exists(name):
            return None
        rows = (
            self._table(name)
            .history()
            .filter(f"userMetadata LIKE 'ltv_batch {app_id} %'")
            .select("userMetadata")
            .collect()
        )
        batches = [int(row[0].rsplit(" ", 1)[1]) for row in rows]
        return max(batches) if batches else None

    def read(self, name: str, version: int | None = None) -> DataFrame:
        if not self.exists(name):
            raise TableNotFound(f"table {name} not found at {self.location(name)}")
        reader = self._spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.table(self.location(name)) if self._catalog else reader.load(self.location(name))

    def overwrite(
        self,
        df: DataFrame,
        name: str,
        partition_by: Sequence[str] = (),
        replace_partitions: Mapping[str, Sequence[str]] | None = None,
    ) -> int:
        writer = df.write.format("delta").mode("overwrite")
        if replace_partitions:
            condition = " AND ".join(
                f"{col} IN ({', '.join(repr(str(v)) for v in values)})"
                for col, values in replace_partitions.items()
            )
            writer = writer.option("replaceWhere", condition)
        else:
            writer = writer.option("overwriteSchema", "true")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        self._save(writer, name)
        return self.version(name)

    def append(
        self,
        df: DataFrame,
        name: str,
        partition_by: Sequence[str] = (),
        app_id: str | None = None,
        batch_id: int | None = None,
    ) -> int | None:
        before = self.version(name) if self.exists(name) else -1
        writer = df.write.format("delta").mode("append")
        if app_id is not None:
            writer = (
                writer.option("txnAppId", app_id)
                .option("txnVersion", batch_id)
                .option("userMetadata", f"ltv_batch {app_id} {batch_id}")
            )
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        self._save(writer, name)
        after = self.version(name)
        return None if after == before else after  # Delta skips a (txnAppId, txnVersion) seen before

    def merge(self, df: DataFrame, name: str, keys: Sequence[str], partition_by: Sequence[str] = ()) -> int:
        check_unique_keys(df, keys)
        if not self.exists(name):
            return self.overwrite(df, name, partition_by)
        condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        (
            self._table(name)
            .alias("t")
            .merge(df.alias("s"), condition)
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )
        return self.version(name)

    def _table(self, name: str) -> Any:
        if self._catalog:
            return self._delta_table.forName(self._spark, self.location(name))
        return self._delta_table.forPath(self._spark, self.location(name))

    def _save(self, writer: Any, name: str) -> None:
        if self._catalog:
            writer.saveAsTable(self.location(name))
        else:
            writer.save(self.location(name))
