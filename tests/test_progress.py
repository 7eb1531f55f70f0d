"""Stage progress as JSON lines: what a log collector parses."""

from __future__ import annotations

import json
import logging

import pytest

from ltv_spark.progress import StageClock, configure_logging, stage


def it_logs_each_stage_as_one_json_object_per_line(capsys):
    configure_logging(logging.INFO, "json")
    try:
        with stage("score as of 2026-11-20") as timer:
            timer.rows = 42
        with pytest.raises(ValueError), stage("ingest"):
            raise ValueError("bad file")
    finally:
        configure_logging(logging.INFO, "text")
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    events = [(r["stage"], r["event"]) for r in records]
    assert events == [
        ("score as of 2026-11-20", "started"),
        ("score as of 2026-11-20", "done"),
        ("ingest", "started"),
        ("ingest", "failed"),
    ]
    assert records[1]["rows"] == 42 and records[1]["seconds"] >= 0 and records[3]["level"] == "ERROR"


def it_tables_each_step_in_order_with_its_share_and_the_total():
    clock = StageClock()
    for name in ("generate", "train", "generate"):
        with clock.step(name) as timer:
            timer.rows = 1
    assert list(clock.seconds) == ["generate", "train"]  # in the order first run; repeats add up
    assert all(seconds >= 0 for seconds in clock.seconds.values())
    clock.seconds = {"generate": 30.0, "train": 90.0}  # known figures for the table's arithmetic
    assert clock.lines() == [
        "  generate     30.0 s   25.0%",
        "  train        90.0 s   75.0%",
        "  total       120.0 s",
    ]


def it_keeps_no_time_for_a_step_that_failed():
    clock = StageClock()
    with pytest.raises(RuntimeError), clock.step("ingest"):
        raise RuntimeError("bad drop")
    assert clock.seconds == {}
