"""The JVM pieces a local session needs for Delta's own connector and for ``s3a://``.

On Databricks and on clusters (``--packages``) the jars are already there. A laptop or CI fetches
them once from Maven Central with ``mvn`` (``python -m ltv_spark.jvm_jars``, run by ``make``) into a
cache outside git, keyed by the versions; the local session then lists the files in
``spark.jars``, so nothing is resolved or downloaded when Spark starts. Without Maven the cache
stays empty and every table runs on delta-rs.

With them it compiles one class of our own (``ltv_spark/jvm/S3ConditionalPutLogStore.java``, a
Delta log store that commits on ``s3a://`` with S3's conditional PUT, so that several drivers can
write one table) into a jar beside them, named by a hash of its source: edit it and ``make``
rebuilds it. A second class of ours (``ltv_spark/jvm/NioLocalFileSystem.java``: Hadoop's local file
system without a ``chmod`` process per file written) needs only pyspark's jars, so ``make`` builds
it with or without Maven; every local session runs on it when it is there.
"""

from __future__ import annotations

import hashlib
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
LOG_STORE_SOURCE = Path(__file__).parent / "jvm" / "S3ConditionalPutLogStore.java"
LOG_STORE_CLASS = "ltvspark.delta.S3ConditionalPutLogStore"
LOG_STORE_JAR_PREFIX = "ltv-s3-logstore-"
LOCAL_FS_SOURCE = Path(__file__).parent / "jvm" / "NioLocalFileSystem.java"
LOCAL_FS_CLASS = "ltvspark.fs.NioLocalFileSystem"
LOCAL_FS_JAR_PREFIX = "ltv-local-fs-"


def jars_dir() -> Path:
    """Where the jars are cached: $LTV_JARS_DIR, else ~/.cache/ltv_spark/jars/<versions>."""
    override = os.environ.get("LTV_JARS_DIR")
    if override:
        return Path(override)
    return Path.home() / ".cache" / "ltv_spark" / "jars" / CACHE_KEY


def cached_jars() -> list[Path]:
    """The cached jar files, or [] when the fetch never completed (no Maven, no network).

    A log-store jar built from an older source is left out (``make`` builds the current one), and
    so is the local file system's jar, which goes on the class path instead (see session.py).
    """
    folder = jars_dir()
    if not (folder / COMPLETE_MARK).exists():
        return []
    current = log_store_jar(folder)
    return sorted(
        jar
        for jar in folder.glob("*.jar")
        if not jar.name.startswith((LOG_STORE_JAR_PREFIX, LOCAL_FS_JAR_PREFIX)) or jar == current
    )


def log_store_jar(folder: Path | None = None) -> Path:
    """Where the jar of the current log-store source lives (it may not be built yet)."""
    return _own_jar(LOG_STORE_SOURCE, LOG_STORE_JAR_PREFIX, folder)


def local_fs_jar(folder: Path | None = None) -> Path:
    """Where the jar of the current local file system source lives (it may not be built yet)."""
    return _own_jar(LOCAL_FS_SOURCE, LOCAL_FS_JAR_PREFIX, folder)


def build_log_store(folder: Path | None = None) -> Path:
    """Compile the s3a log store against the cached jars and pyspark's, once per source version."""
    folder = folder or jars_dir()
    classpath = f"{folder}/*{os.pathsep}{_pyspark_jars()}/*"
    return _build_own_jar(LOG_STORE_SOURCE, LOG_STORE_JAR_PREFIX, folder, classpath)


def build_local_fs(folder: Path | None = None) -> Path:
    """Compile the local file system against pyspark's jars (no Maven needed), once per source version."""
    folder = folder or jars_dir()
    return _build_own_jar(LOCAL_FS_SOURCE, LOCAL_FS_JAR_PREFIX, folder, f"{_pyspark_jars()}/*")


def _own_jar(source: Path, prefix: str, folder: Path | None) -> Path:
    """A class of ours as a jar in the cache, named by a hash of its source."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    return (folder or jars_dir()) / f"{prefix}{digest}.jar"


def _build_own_jar(source: Path, prefix: str, folder: Path, classpath: str) -> Path:
    """Compile ``source`` into its jar unless it is there; remove the jars of its older sources."""
    target = _own_jar(source, prefix, folder)
    if target.exists():
        return target
    javac, jar = shutil.which("javac"), shutil.which("jar")
    if javac is None or jar is None:
        raise FileNotFoundError("javac/jar not found (apt-get install openjdk-17-jdk-headless)")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as classes:
        _run([javac, "-nowarn", "-d", classes, "-cp", classpath, str(source)])
        _run([jar, "cf", str(target), "-C", classes, "."])
    for stale in folder.glob(f"{prefix}*.jar"):
        if stale != target:
            stale.unlink()
    return target


def _pyspark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        name = Path(command[0]).name
        raise RuntimeError(f"{name} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


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
        _run(command)
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
    """``python -m ltv_spark.jvm_jars``: build the local file system, fetch once, or say clearly
    what will run without them."""
    try:
        build_local_fs()
    except (FileNotFoundError, RuntimeError) as error:
        print(f"[jars] local file system not built ({error}); Hadoop's runs (slower writes)", file=sys.stderr)
    try:
        fetch()
    except (FileNotFoundError, RuntimeError) as error:
        print(f"[jars] not fetched ({error}); tables will run on delta-rs only", file=sys.stderr)
        return 0
    try:
        build_log_store()
    except (FileNotFoundError, RuntimeError) as error:
        print(f"[jars] s3a log store not built ({error}); s3a:// tables: one driver only", file=sys.stderr)
    print(f"[jars] {len(cached_jars())} jars in {jars_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
