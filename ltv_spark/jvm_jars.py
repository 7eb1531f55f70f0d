"""The JVM pieces a local session needs for Delta's own connector and for ``s3a://``.

On Databricks and on clusters (``--packages``) the jars are already there. A laptop or CI fetches
them once from Maven Central with ``mvn`` (``python -m ltv_spark.jvm_jars``, run by ``make``) into a
cache outside git, keyed by the versions; the local session then lists the files in
``spark.jars``, so nothing is resolved or downloaded when Spark starts. Without Maven the cache
stays empty and every table runs on delta-rs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Delta for Spark 3.5 (Scala 2.12). Not 3.3.2: on Spark >= 3.5.6 its saveAsTable in overwrite mode
# fails ("does not support truncate in batch mode", delta-io/delta#4671, fixed in 3.3.3).
DELTA_VERSION = "3.3.3"
HADOOP_VERSION = "3.3.4"  # pyspark 3.5.9's Hadoop client (pyspark/jars/hadoop-client-api-3.3.4.jar)
ARTIFACTS = (
    ("io.delta", f"delta-spark_2.12:{DELTA_VERSION}"),  # pulls io.delta:delta-storage
    ("org.apache.hadoop", f"hadoop-aws:{HADOOP_VERSION}"),  # pulls the AWS SDK bundle it was built with
)
ALREADY_IN_PYSPARK = ("scala-library", "antlr4-runtime")  # pyspark/jars ships both, same versions
CACHE_KEY = f"delta-spark-{DELTA_VERSION}_hadoop-aws-{HADOOP_VERSION}"
COMPLETE_MARK = ".complete"


def jars_dir() -> Path:
    """Where the jars are cached: $LTV_JARS_DIR, else ~/.cache/ltv_spark/jars/<versions>."""
    override = os.environ.get("LTV_JARS_DIR")
    if override:
        return Path(override)
    return Path.home() / ".cache" / "ltv_spark" / "jars" / CACHE_KEY


def cached_jars() -> list[Path]:
    """The cached jar files, or [] when the fetch never completed (no Maven, no network)."""
    folder = jars_dir()
    if not (folder / COMPLETE_MARK).exists():
        return []
    return sorted(folder.glob("*.jar"))


def fetch(folder: Path | None = None) -> list[Path]:
    """Download the jars with Maven into ``folder`` once; a later call finds them and returns."""
    folder = folder or jars_dir()
    if (folder / COMPLETE_MARK).exists():
        return sorted(folder.glob("*.jar"))
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FileNotFoundError(
            "mvn not found (apt-get install maven): the Delta JVM connector is not cached"
        )
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        pom = Path(work) / "pom.xml"
        pom.write_text(_pom())
        command = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={folder}",
            "-DincludeScope=runtime",
            f"-DexcludeArtifactIds={','.join(ALREADY_IN_PYSPARK)}",
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"mvn failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    (folder / COMPLETE_MARK).write_text(" ".join(f"{g}:{a}" for g, a in ARTIFACTS) + "\n")
    return sorted(folder.glob("*.jar"))


def _pom() -> str:
    dependencies = "".join(
        f"<dependency><groupId>{group}</groupId><artifactId>{name.split(':')[0]}</artifactId>"
        f"<version>{name.split(':')[1]}</version></dependency>"
        for group, name in ARTIFACTS
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>ltv_spark</groupId><artifactId>jvm-jars</artifactId><version>1</version>"
        f"<packaging>pom</packaging><dependencies>{dependencies}</dependencies></project>"
    )


def main() -> int:
    """``python -m ltv_spark.jvm_jars``: fetch once, or say clearly that delta-rs alone will run."""
    try:
        jars = fetch()
    except (FileNotFoundError, RuntimeError) as error:
        print(f"[jars] not fetched ({error}); tables will run on delta-rs only", file=sys.stderr)
        return 0
    print(f"[jars] {len(jars)} jars in {jars_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
