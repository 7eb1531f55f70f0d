"""The spark-submit / Databricks packaging path: the package as a wheel that works on its own."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

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
