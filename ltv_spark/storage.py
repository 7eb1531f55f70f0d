"""Files beside the tables (models, the Petastorm cache, reports): a local folder or an ``s3a://`` URI.

On a multi-node cluster Horovod's rank 0 runs on some executor and the driver scores later: a
model written to that executor's disk would be lost to everyone else. So every such path is a
``Location``, read and written through pyarrow's file systems: the local one for a path, S3 for
``s3a://`` / ``s3://`` (a DBFS or Volumes path is a local FUSE path on Databricks).

S3 settings come from the standard AWS environment, as boto3 and the AWS CLI read them:
``AWS_ENDPOINT_URL`` (an S3-compatible server), ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``; or the machine's own role. Set them for the driver and the executors alike
(``spark.executorEnv.*``), as hadoop-aws reads its own ``fs.s3a.*`` settings for the tables.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import posixpath
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pyarrow import fs as pafs

OBJECT_STORE_SCHEMES = ("s3a", "s3", "s3n")
FILE_SCHEME = re.compile(r"^file:(//)?")


def is_object_store(uri: str) -> bool:
    return urlparse(str(uri)).scheme in OBJECT_STORE_SCHEMES


@functools.lru_cache(maxsize=8)
def s3_filesystem(endpoint: str | None, region: str) -> pafs.S3FileSystem:
    """One pyarrow S3 client per endpoint (credentials: the AWS environment or the machine's role)."""
    if not endpoint:
        return pafs.S3FileSystem(region=region)
    parsed = urlparse(endpoint)
    return pafs.S3FileSystem(endpoint_override=parsed.netloc, scheme=parsed.scheme or "https", region=region)


@dataclass(frozen=True)
class Location:
    """A folder or file on the local disk or in an object store; ``location / "name"`` descends."""

    uri: str

    @classmethod
    def of(cls, where: str | Path | Location) -> Location:
        if isinstance(where, Location):
            return where
        where = str(where)
        if is_object_store(where):
            return cls(where.rstrip("/"))
        return cls(str(Path(FILE_SCHEME.sub("", where)).resolve()))  # file:///x and Hadoop's file:/x

    def __truediv__(self, name: str) -> Location:
        return Location(f"{self.uri}/{name}")

    def __str__(self) -> str:
        return self.uri

    @property
    def name(self) -> str:
        return posixpath.basename(self.uri)

    @property
    def parent(self) -> Location:
        return Location(posixpath.dirname(self.uri))

    @property
    def remote(self) -> bool:
        return is_object_store(self.uri)

    def as_uri(self) -> str:
        """A URI Spark and Petastorm open: ``file:///...`` for a local folder, ``s3a://`` as given."""
        return self.uri if self.remote else Path(self.uri).as_uri()

    # ---------------------------------------------------------------- file system
    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def mkdir(self) -> None:
        """Create the folder and its parents (a no-op on S3, where folders are key prefixes)."""
        filesystem, path = self._resolve()
        filesystem.create_dir(path, recursive=True)

    def children(self, pattern: str = "*") -> list[Location]:
        """Entries directly inside this folder whose name matches ``pattern``, sorted by name."""
        filesystem, path = self._resolve()
        if not self.is_dir():
            return []
        found = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        names = sorted(posixpath.basename(info.path) for info in found)
        return [self / name for name in names if fnmatch.fnmatchcase(name, pattern)]

    def read_bytes(self) -> bytes:
        filesystem, path = self._resolve()
        if not self.exists():  # S3 says "path does not exist" as a plain OSError: say it one way
            raise FileNotFoundError(f"no such file: {self.uri}")
        with filesystem.open_input_stream(path) as stream:
            return stream.read()

    def write_bytes(self, data: bytes) -> None:
        """All or nothing: a local file is written aside then renamed; an S3 PUT is atomic already."""
        filesystem, path = self._resolve()
        if not self.remote:
            filesystem.create_dir(posixpath.dirname(path), recursive=True)
        target = path if self.remote else f"{path}.{uuid.uuid4().hex}.tmp"
        with filesystem.open_output_stream(target) as stream:
            stream.write(data)
        if target != path:
            os.replace(target, path)

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def delete(self) -> None:
        """Remove this file or folder with everything under it; nothing happens if it is absent."""
        filesystem, path = self._resolve()
        info = self._info()
        if info.type == pafs.FileType.Directory:
            filesystem.delete_dir(path)
        elif info.type == pafs.FileType.File:
            filesystem.delete_file(path)

    def _info(self) -> pafs.FileInfo:
        filesystem, path = self._resolve()
        return filesystem.get_file_info(path)

    def _resolve(self) -> tuple[pafs.FileSystem, str]:
        if not self.remote:
            return pafs.LocalFileSystem(), self.uri
        parsed = urlparse(self.uri)
        return object_store_filesystem(), f"{parsed.netloc}{parsed.path}"


def object_store_filesystem() -> pafs.S3FileSystem:
    """pyarrow's S3 client as the AWS environment of this process configures it."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return s3_filesystem(endpoint, region)
