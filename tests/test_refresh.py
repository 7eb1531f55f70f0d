"""ltv refresh: a day end to end, a re-run that changes nothing, one refresh at a time, and
spark-submit jobs/refresh.py killed during scoring re-running to the uninterrupted end state."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F

from ltv_spark.config import load_config
from ltv_spark.features import FEATURE_COLUMNS
from ltv_spark.lease import Lease, Locked
from ltv_spark.pipeline import generate_world
from ltv_spark.pipeline.drift import DRIFT, DRIFT_REFERENCE, measure_drift
from ltv_spark.pipeline.refresh import REFRESH_RUNS, TRACKED_TABLES, refresh, retrain
from ltv_spark.pipeline.scoring import PREDICTIONS, resolve_model
from ltv_spark.pipeline.streaming import STREAM_EVENTS, start_stream
from ltv_spark.registry import CHALLENGER, CHAMPION, alias_version, promote
from ltv_spark.tables import DeltaRsStore
from tests.helpers import tiny_overrides, users_in_drops

ROOT = Path(__file__).resolve().parent.parent
MONDAY = dt.date(2025, 8, 25)  # the tiny world runs 2025-06-01 .. 2025-08-29


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    """A generated world, refreshed once on a Monday (the first refresh trains and registers the
    first champion)."""
    base = tmp_path_factory.mktemp("refresh")
    config = load_config("local", tiny_overrides(base))
    store = DeltaRsStore(spark, str(base / "warehouse"))
    generate_world(spark, store, config.world)
    first = refresh(spark, store, config, MONDAY)
    return base, config, store, first


def it_runs_every_stage_of_a_day_and_logs_the_run(world):
    _, _, store, first = world
    assert first.status == "succeeded"
    assert [s.name for s in first.stages] == ["ingest", "sessions", "retrain", "score", "drift"]
    assert first.stages[2].detail == "ltv_transformer/1 promoted to champion (no champion before)"
    assert first.model == "ltv_transformer/1"
    assert {"bronze.events", "silver.sessions", PREDICTIONS} <= set(first.versions_written)
    ingested = store.read("bronze.events").agg(F.max("event_date")).first()[0]
    assert ingested == MONDAY - dt.timedelta(days=1)  # only the drops of the days before the date
    predictions = store.read(PREDICTIONS).filter(F.col("as_of") == F.lit(MONDAY))
    assert (
        predictions.count()
        == store.read("gold.user_features").filter(F.col("cutoff") == F.lit(MONDAY)).count()
    )
    assert {r["model_version"] for r in predictions.select("model_version").distinct().collect()} == {
        "ltv_transformer/1"  # the registry version that scored
    }
    reasons = [list(r["reasons"]) for r in predictions.select("reasons").collect()]
    assert all(1 <= len(r) <= 3 for r in reasons)  # explained inside the registered model's scoring
    assert all(re.search(r"\((raises|lowers) value\)$", r) for user in reasons for r in user)
    tops = [r["top_categories"] for r in predictions.select("top_categories").collect()]
    assert all(len(top) == 3 for top in tops)  # the registered model's cross-sell head
    assert all(top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"] for top in tops)


def it_measures_drift_against_the_training_cutoffs_and_alerts_over_the_threshold(spark, world):
    _, config, store, first = world
    drift = first.stages[4]
    columns = [*FEATURE_COLUMNS, "expected_ltv"]
    on_monday = store.read(DRIFT).filter(F.col("refresh_date") == F.lit(MONDAY))
    saved = {r["column"]: r for r in on_monday.collect()}
    assert drift.rows == len(saved) == len(columns) and set(saved) == set(columns)
    assert all(r["psi"] >= 0 and r["flagged"] == (r["psi"] > 0.25) for r in saved.values())
    assert {r["model_version"] for r in saved.values()} == {"ltv_transformer/1"}
    worst = max(saved.values(), key=lambda r: r["psi"])
    flagged = sorted(c for c, r in saved.items() if r["flagged"])
    if flagged:
        assert drift.detail.startswith(f"ALERT: PSI over 0.25 in {len(flagged)} of {len(columns)} columns")
    else:
        assert drift.detail == f"largest PSI {worst['psi']:.3f} ({worst['column']}); none over 0.25"
    run = store.read(REFRESH_RUNS).filter(F.col("status") == "succeeded").first()
    assert {"name": "drift", "rows": len(columns), "detail": drift.detail} == {
        k: v for k, v in json.loads(run["stages"])[4].items() if k != "seconds"
    }

    model = resolve_model(config, "champion")
    strict = dataclasses.replace(config, refresh=dataclasses.replace(config.refresh, drift_threshold=-1.0))
    reference_rows = store.read(DRIFT_REFERENCE).count()
    alert = measure_drift(spark, store, strict, MONDAY, model)
    assert alert.detail().startswith(f"ALERT: PSI over -1.0 in {len(columns)} of {len(columns)} columns")
    again = store.read(DRIFT).filter(F.col("refresh_date") == F.lit(MONDAY)).collect()
    assert len(again) == len(columns) and all(r["flagged"] for r in again)  # the date's rows replaced
    assert {r["column"]: r["psi"] for r in again} == {c: r["psi"] for c, r in saved.items()}
    assert store.read(DRIFT_REFERENCE).count() == reference_rows == len(columns)  # computed once per model
    measure_drift(spark, store, config, MONDAY, model)  # leave the date's rows as the refresh wrote them


def it_changes_nothing_when_the_same_day_runs_again(spark, world):
    _, config, store, _ = world
    before = {name: store.version(name) for name in TRACKED_TABLES}
    again = refresh(spark, store, config, MONDAY)
    assert again.status == "unchanged" and again.versions_written == {}
    assert {name: store.version(name) for name in TRACKED_TABLES} == before
    runs = store.read(REFRESH_RUNS).filter(F.col("refresh_date") == F.lit(MONDAY))
    assert sorted(r["status"] for r in runs.collect()) == ["succeeded", "unchanged"]


def it_stops_a_second_refresh_while_one_holds_the_lease(spark, world):
    _, config, store, _ = world
    refused = "another job holds the 'refresh' lease .*: pid .*a refresh in progress"
    with Lease(spark, store, "refresh", "a refresh in progress"), pytest.raises(Locked, match=refused):
        refresh(spark, store, config, MONDAY)
    assert Lease(spark, store, "refresh").current().released


def _submit(base: Path, day: dt.date, log: Path) -> subprocess.Popen:
    overrides = [arg for o in tiny_overrides(base) for arg in ("--set", o)]
    command = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master",
        "local[2]",
        str(ROOT / "jobs" / "refresh.py"),
        "--env",
        "local",
        *overrides,
        "--set",
        "refresh.retrain_weekday=null",
        "--date",
        day.isoformat(),
    ]
    environment = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    handle = log.open("w")
    return subprocess.Popen(
        command, stdout=handle, stderr=subprocess.STDOUT, env=environment, cwd=ROOT, start_new_session=True
    )


def _predictions(store: DeltaRsStore, day: dt.date) -> list[tuple]:
    rows = store.read(PREDICTIONS).filter(F.col("as_of") == F.lit(day)).drop("scored_at").collect()
    return sorted(tuple(r) for r in rows)


def it_reruns_a_spark_submit_killed_during_scoring_to_the_uninterrupted_end_state(spark, world, tmp_path):
    base, config, store, _ = world
    tuesday = MONDAY + dt.timedelta(days=1)
    copy = tmp_path / "uninterrupted"
    shutil.copytree(base / "warehouse", copy / "warehouse")
    uninterrupted = DeltaRsStore(spark, str(copy / "warehouse"))
    copy_config = load_config("local", [*tiny_overrides(base), f"tables.root={copy / 'warehouse'}"])
    assert refresh(spark, uninterrupted, copy_config, tuesday).status == "succeeded"

    killed = _submit(base, tuesday, tmp_path / "killed.log")
    deadline = time.monotonic() + 300
    while f"[refresh {tuesday}: score] started" not in (tmp_path / "killed.log").read_text():
        assert killed.poll() is None and time.monotonic() < deadline, (tmp_path / "killed.log").read_text()
        time.sleep(0.1)
    os.killpg(killed.pid, signal.SIGKILL)
    assert killed.wait(60) == -signal.SIGKILL

    for attempt in ("rerun", "again"):
        finished = _submit(base, tuesday, tmp_path / f"{attempt}.log")
        assert finished.wait(300) == 0, (tmp_path / f"{attempt}.log").read_text()
    assert "unchanged" in (tmp_path / "again.log").read_text()
    assert _predictions(store, tuesday) == _predictions(uninterrupted, tuesday)
    statuses = store.read(REFRESH_RUNS).filter(F.col("refresh_date") == F.lit(tuesday))
    assert sorted(r["status"] for r in statuses.collect()) == ["succeeded", "unchanged"]


def it_rescores_exactly_the_users_with_new_events_as_files_land(spark, world, tmp_path):
    base, _, store, _ = world
    landing, batches = tmp_path / "landing", []
    config = load_config(
        "local",
        [*tiny_overrides(base), f"ingest.raw_dir={landing}", f"stream.checkpoint={tmp_path / 'checkpoint'}"],
    )

    def land_and_catch_up(day: str) -> None:
        shutil.copytree(base / "raw" / day, landing / day)
        start_stream(spark, store, config, available_now=True, on_batch=batches.append).awaitTermination()

    def scored_at(as_of: str) -> dict[str, object]:
        rows = store.read(PREDICTIONS).filter(F.col("as_of") == F.lit(as_of)).select("user_id", "scored_at")
        return {row["user_id"]: row["scored_at"] for row in rows.collect()}

    land_and_catch_up("2025-08-27")
    first = scored_at("2025-08-28")
    assert set(first) == users_in_drops(landing / "2025-08-27") and len(first) > 5
    assert sum(b.events for b in batches) == sum(1 for p in landing.rglob("*.csv") for _ in p.open()) - 1

    land_and_catch_up("2025-08-28")
    assert set(scored_at("2025-08-29")) == users_in_drops(landing / "2025-08-28")
    assert scored_at("2025-08-28") == first  # the first file's users were not scored again

    versions = {name: store.version(name) for name in (PREDICTIONS, STREAM_EVENTS)}
    processed = len(batches)
    start_stream(spark, store, config, available_now=True, on_batch=batches.append).awaitTermination()
    assert len(batches) == processed  # a restart repeats no micro-batch
    assert {name: store.version(name) for name in (PREDICTIONS, STREAM_EVENTS)} == versions
    assert store.read(STREAM_EVENTS).count() == sum(b.events for b in batches)


def it_registers_a_retrain_as_challenger_and_promotes_it_only_if_not_worse_then_rolls_back(spark, world):
    base, config, store, _ = world
    other_seed = load_config("local", [*tiny_overrides(base), "train.seed=11"])
    before = alias_version(config.tracking, CHAMPION)
    verdict = retrain(spark, store, other_seed, MONDAY)
    name = r"ltv_transformer/(\d+)"
    pattern = rf"validation Gini {name} (-?[\d.]+) vs {name} (-?[\d.]+): {name} (promoted|kept)"
    found = re.fullmatch(pattern, verdict)
    assert found, verdict
    candidate, candidate_gini, compared, champion_gini, chosen, _ = found.groups()
    assert compared == before and candidate == alias_version(config.tracking, CHALLENGER) != before
    expected = candidate if float(candidate_gini) >= float(champion_gini) else before
    assert chosen == expected == alias_version(config.tracking, CHAMPION)
    tags = MlflowClient().get_model_version("ltv_transformer", candidate).tags
    assert f"{float(tags['validation_gini']):.4f}" == candidate_gini
    assert f"{float(tags['champion_validation_gini']):.4f}" == champion_gini
    assert tags["compared_with"] == before

    promote(config.tracking, before)  # the rollback: champion back to the version before the retrain
    assert alias_version(config.tracking, CHAMPION) == before
    assert alias_version(config.tracking, CHALLENGER) == candidate
