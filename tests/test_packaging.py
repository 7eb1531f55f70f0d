"""The spark-submit / Databricks packaging path: the package as a wheel that works on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import ltv_spark, ltv_spark.cli
from ltv_spark.config import CONF_DIR, load_config
for env in ("local", "cluster", "databricks"):
    load_config(env)
print(ltv_spark.__file__)
print(CONF_DIR)
print(load_config("databricks").tables.catalog)
"""


def it_builds_a_wheel_that_carries_the_configs_and_runs_outside_the_checkout(tmp_path):
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("ltv_spark-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "-q", "--no-deps", "--target", str(site), str(wheel)], check=True)
    # -S: no site module, so the checkout's editable install (.pth) is invisible; the pinned
    # dependencies come from the environment's site-packages, as from a packed environment.
    dependencies = sysconfig.get_paths()["purelib"]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), dependencies])}
    probe = subprocess.run(
        [sys.executable, "-S", "-c", PROBE], cwd=tmp_path, env=environment, capture_output=True, text=True
    )
    assert probe.returncode == 0, probe.stderr
    package, conf, catalog = probe.stdout.split()
    assert Path(package).is_relative_to(site) and Path(conf) == site / "ltv_spark" / "conf"
    assert catalog == "main"


RUNTIMES = ROOT / "tests" / "runtimes"


@pytest.mark.parametrize("runtime", ["databricks-15.4-lts-ml"])
def it_keeps_every_package_a_databricks_ml_runtime_ships(tmp_path, runtime):
    """pip, resolving the wheel with the runtime's versions as constraints, installs exactly those
    versions: as a job library the wheel replaces none of the runtime's packages."""
    shipped = _pins(RUNTIMES / f"{runtime}.txt")
    pip = [sys.executable, "-m", "pip"]
    dist = tmp_path / "dist"
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)], check=True
    )
    (wheel,) = dist.glob("ltv_spark-*.whl")
    report = tmp_path / "report.json"
    resolve = [*pip, "install", "--dry-run", "--ignore-installed", "--prefer-binary", "-q"]
    resolve += ["-c", str(RUNTIMES / f"{runtime}.txt"), "--report", str(report), str(wheel)]
    done = subprocess.run(resolve, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    chosen = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert {name: chosen.get(name) for name in shipped} == shipped
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith("METADATA"))).decode()
    spark_lines = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: pyspark")]
    spark_lines += [line for line in metadata.splitlines() if line.startswith("Requires-Dist: delta-spark")]
    assert len(spark_lines) == 2 and all(
        'extra == "spark"' in line for line in spark_lines
    )  # the runtime's own


def _pins(path: Path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {name.lower(): version for name, version in (line.split("==") for line in lines if line)}
