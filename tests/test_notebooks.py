"""The Databricks notebooks: source format, every cell valid Python, and all of them run top to
bottom here, in order, on a tiny world, with widgets answering their declared defaults except for
the values a job would pass (env, sizes, a scratch warehouse)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from ltv_spark.cli import _parser
from ltv_spark.config import load_config
from tests.helpers import tiny_overrides

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.py"))
HEADER = "# Databricks notebook source"
SEPARATOR = "# COMMAND ----------"


def cells(path: Path) -> list[str]:
    text = path.read_text()
    assert text.startswith(HEADER + "\n"), f"{path.name}: first line must be {HEADER!r}"
    return [cell.strip("\n") for cell in text[len(HEADER) :].split(SEPARATOR)]


def python_of(cell: str) -> str:
    """A cell without its MAGIC lines (markdown and magics run on Databricks only)."""
    return "\n".join(line for line in cell.splitlines() if not line.startswith("# MAGIC"))


class Widgets:
    """dbutils.widgets as a notebook sees it: declared defaults, unless a value was set."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)
        self.defaults: dict[str, str] = {}

    def text(self, name: str, default: str, label: str | None = None) -> None:
        self.defaults[name] = default

    def dropdown(self, name: str, default: str, choices: list[str], label: str | None = None) -> None:
        assert default in choices, f"widget {name}: default {default!r} not among {choices}"
        self.defaults[name] = default

    def get(self, name: str) -> str:
        if name not in self.defaults:
            raise KeyError(f"widget {name!r} was read but never declared")
        return self.values.get(name, self.defaults[name])


class DbUtils:
    def __init__(self, values: dict[str, str]) -> None:
        self.widgets = Widgets(values)


def it_has_the_databricks_source_format_and_valid_python_in_every_cell():
    assert [p.name for p in NOTEBOOKS] == [
        "01_generate_and_ingest.py",
        "02_sessions_and_features.py",
        "03_train_and_score.py",
        "04_evaluate.py",
        "05_daily_refresh.py",
        "06_explain_and_act.py",
    ]
    for path in NOTEBOOKS:
        parts = cells(path)
        assert parts[0].startswith("# MAGIC %md"), f"{path.name}: the first cell documents the notebook"
        for index, cell in enumerate(parts):
            ast.parse(python_of(cell), filename=f"{path.name} cell {index}")


@pytest.fixture()
def widget_values(tmp_path) -> dict[str, str]:
    overrides = [*tiny_overrides(tmp_path), "features.evaluation_cutoff=2025-08-15", "world.dirty_rate=0.01"]
    overrides += [
        f"evaluate.models_root={tmp_path / 'evaluation'}",
        f"evaluate.reports_dir={tmp_path / 'reports'}",
    ]
    job_values = {"env": "local", "users": "150", "seeds": "1", "launcher": "local"}
    return {**job_values, "extra_overrides": ",".join(overrides)}


def it_runs_every_notebook_top_to_bottom_in_order(spark, widget_values, tmp_path):
    shown = []
    for path in NOTEBOOKS:
        dbutils = DbUtils(widget_values)
        namespace = {"dbutils": dbutils, "display": lambda frame: shown.append(frame.limit(20).toPandas())}
        for index, cell in enumerate(cells(path)):
            code = compile(python_of(cell), f"{path.name} cell {index}", "exec")
            exec(code, namespace)  # the notebook, cell by cell, in one namespace as on Databricks
    assert len(shown) >= 5 and all(len(frame) > 0 for frame in shown)
    assert (tmp_path / "reports").is_dir() and any((tmp_path / "reports").rglob("index.html"))
    assert any((tmp_path / "warehouse" / "ops" / "refresh_runs").glob("*.parquet"))


def it_declares_the_daily_refresh_and_weekly_retrain_as_valid_ltv_commands():
    bundle = yaml.safe_load((Path(__file__).resolve().parent.parent / "databricks.yml").read_text())
    jobs = bundle["resources"]["jobs"]
    assert "quartz_cron_expression" in jobs["ltv_daily_refresh"]["schedule"]
    assert jobs["ltv_weekly_retrain"]["schedule"]["quartz_cron_expression"].endswith("MON")
    commands = {}
    for job in jobs.values():
        (task,) = job["tasks"]
        assert task["libraries"] == [{"whl": "./dist/*.whl"}] and task["job_cluster_key"]
        wheel_task = task["python_wheel_task"]
        assert (wheel_task["package_name"], wheel_task["entry_point"]) == ("ltv_spark", "ltv")
        parameters = [
            p.replace("${var.catalog}", bundle["variables"]["catalog"]["default"]).replace(
                "{{job.start_time.iso_date}}", "2026-11-24"
            )
            for p in wheel_task["parameters"]
        ]
        args = _parser().parse_args(parameters)
        load_config(args.env, args.set)  # every --set names a real key with a valid value
        commands[args.command] = args
    assert set(commands) == {"refresh", "retrain"}
    assert commands["refresh"].date == "2026-11-24"
