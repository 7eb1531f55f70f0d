"""Reading a table without Spark: into Arrow or pandas, for a notebook or a script on a laptop.

``deltalake.DeltaTable(path).to_pandas()`` raises ``TypeError: field() takes at least 2
positional arguments`` on every partitioned table with the pinned pyarrow 14 (delta-rs builds its
partition fields with a newer pyarrow's signature). This reader asks delta-rs only for what it
reads without pyarrow (the snapshot's files with their typed partition values, and the schema),
then reads the files with pyarrow and adds each file's partition values as columns. It reads
the same snapshot as Spark, time travel included, for tables written by either engine.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable

from ltv_spark.storage import Location

PARTITION_PREFIX = "partition."


def read_arrow(path: str | Path, version: int | None = None) -> pa.Table:
    """The table at a local folder ``path`` (latest, or ``version``) as one Arrow table."""
    root = _local_folder(path)
    table = DeltaTable(str(root), version=version)
    schema = pa.schema(table.schema().to_arrow())
    partition_columns = table.metadata().partition_columns
    files = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    pieces = [_read_file(root, file, partition_columns, schema) for file in files]
    return pa.concat_tables(pieces) if pieces else schema.empty_table()


def read_pandas(path: str | Path, version: int | None = None) -> pd.DataFrame:
    """The table at a local folder ``path`` as a pandas DataFrame (the whole table: mind its size)."""
    return read_arrow(path, version).to_pandas()


def _read_file(root: Path, file: dict, partition_columns: list[str], schema: pa.Schema) -> pa.Table:
    data = pq.read_table(root / unquote(file["path"]))
    for column in partition_columns:
        field = schema.field(column)
        values = pa.array([file[PARTITION_PREFIX + column]] * data.num_rows, type=field.type)
        data = data.append_column(field, values)
    return data.select(schema.names).cast(schema)


def _local_folder(path: str | Path) -> Path:
    if urlparse(str(path)).scheme not in ("", "file"):
        raise ValueError(
            f"{path}: read_arrow reads tables in local folders; for object storage read the table "
            "with Spark (store.read) or with deltalake and a pyarrow newer than the pinned 14"
        )
    return Path(Location.of(path).uri)
