"""A real S3-compatible server for the tests: moto's, on 127.0.0.1 only, started and stopped by them.

Spark reaches it through hadoop-aws (``s3a://``) with path-style requests and dummy keys; boto3
reaches it to land raw drops and to look at what was written.
"""

from __future__ import annotations

import logging
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise

BUCKET = "ltv-test"
ACCESS_KEY, SECRET_KEY = "testing", "testing"


class LocalS3:
    """``with LocalS3() as s3:`` a fresh server with one bucket; ``s3.uri("a/b")`` -> s3a://bucket/a/b."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def __enter__(self) -> LocalS3:
        self._server.start()
        host, port = self._server.get_host_and_port()
        assert host == "127.0.0.1", host  # never bound beyond loopback
        self.endpoint = f"http://{host}:{port}"
        self.client().create_bucket(Bucket=BUCKET)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.stop()

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def uri(self, key: str) -> str:
        return f"s3a://{BUCKET}/{key.strip('/')}"

    def spark_overrides(self) -> list[str]:
        """Config overrides that point Spark's s3a:// file system at this server."""
        settings = {
            "fs.s3a.endpoint": self.endpoint,
            "fs.s3a.path.style.access": "true",
            "fs.s3a.connection.ssl.enabled": "false",
            "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
            "fs.s3a.access.key": ACCESS_KEY,
            "fs.s3a.secret.key": SECRET_KEY,
        }
        return [f"spark.conf.spark.hadoop.{key}={value}" for key, value in settings.items()]

    def environment(self) -> dict[str, str]:
        """The AWS environment that points pyarrow (ltv_spark.storage) and boto3 at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }

    def executor_overrides(self) -> list[str]:
        """Config overrides that give every executor the same environment (spark.executorEnv)."""
        return [f"spark.conf.spark.executorEnv.{key}={value}" for key, value in self.environment().items()]

    def upload(self, folder: Path, prefix: str) -> int:
        """Land every file under ``folder`` at ``prefix`` (same relative paths); the count landed."""
        client, count = self.client(), 0
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            client.upload_file(
                str(path), BUCKET, f"{prefix.strip('/')}/{path.relative_to(folder).as_posix()}"
            )
            count += 1
        return count

    def keys(self, prefix: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]
