"""Write the world's events as a platform drops them: ``<out>/<YYYY-MM-DD>/part-<bucket>.<ext>``.

Files are written by the executors (mapInPandas), one (day, bucket) group at a time, in a fixed
row order, under fixed names: the same seed gives the same bytes, and a retried task rewrites the
same file. Only the manifest (one row per file) returns to the driver.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from ltv_spark.world.simulate import EVENT_COLUMNS

EXTENSION = {"csv": "csv", "json": "json", "parquet": "parquet"}
MANIFEST_SCHEMA = "path string, rows long, bytes long"


def file_path(out: str, start: dt.date, day: int, bucket: int, fmt: str) -> str:
    folder = (start + dt.timedelta(days=int(day))).isoformat()
    return f"{out.rstrip('/')}/{folder}/part-{int(bucket):05d}.{EXTENSION[fmt]}"


def write_groups(out: str, start: dt.date, fmt: str):
    """mapInPandas over rows sorted by (day, bucket, sort_ms, event_id): one file per (day, bucket)."""

    def write(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        filesystem, root = _filesystem(out)
        pending: list[pd.DataFrame] = []
        key = None
        manifest = []
        for batch in batches:
            for group_key, group in batch.groupby(["day", "bucket"], sort=False):
                if key is not None and group_key != key:
                    manifest.append(_write_file(filesystem, root, start, key, pd.concat(pending), fmt))
                    pending = []
                key = group_key
                pending.append(group)
        if pending:
            manifest.append(_write_file(filesystem, root, start, key, pd.concat(pending), fmt))
        yield pd.DataFrame(manifest, columns=["path", "rows", "bytes"])

    return write


def render(events: pd.DataFrame, fmt: str) -> bytes:
    """The bytes of one raw file. Rows flagged ``malformed`` are broken the way a bad logger breaks them."""
    if fmt == "parquet":
        table = pa.Table.from_pandas(events[list(EVENT_COLUMNS)].astype(str), preserve_index=False)
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()
    malformed = events["malformed"].to_numpy()
    values = events[list(EVENT_COLUMNS)].to_numpy()
    if fmt == "csv":
        lines = [",".join(EVENT_COLUMNS)]
        for row, broken in zip(values, malformed, strict=True):
            lines.append(",".join(row[:-3]) if broken else ",".join(row))  # broken: fields missing
    else:
        lines = [_json_line(row, broken) for row, broken in zip(values, malformed, strict=True)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _json_line(row: np.ndarray, broken: bool) -> str:
    record = dict(zip(EVENT_COLUMNS, row, strict=True))
    for column, kind in (("price", float), ("quantity", int)):
        with contextlib.suppress(ValueError):  # bad text stays as it is: the contract must catch it
            record[column] = kind(record[column]) if record[column] != "" else None
    line = json.dumps(record, separators=(",", ":"))
    return line[: len(line) // 2] if broken else line


def _write_file(filesystem, root: str, start: dt.date, key, events: pd.DataFrame, fmt: str) -> tuple:
    day, bucket = key
    path = file_path(root, start, day, bucket, fmt)
    if fmt == "parquet":
        events = events[~events["malformed"]]  # a Parquet writer cannot emit a broken line
    payload = render(events, fmt)
    filesystem.create_dir(os.path.dirname(path), recursive=True)
    temporary = f"{path}.inprogress"
    with filesystem.open_output_stream(temporary) as stream:
        stream.write(payload)
    filesystem.move(temporary, path)
    return (path, len(events), len(payload))


def _filesystem(out: str):
    """A pyarrow filesystem for local folders and object stores (s3://, gs://, hdfs://)."""
    if "://" in out and not out.startswith("file://"):
        return pafs.FileSystem.from_uri(out)
    return pafs.LocalFileSystem(), os.path.abspath(out.removeprefix("file://"))
