"""Stage progress as JSON lines: what a log collector parses."""

from __future__ import annotations

import json
import logging

import pytest

from ltv_spark.progress import configure_logging, stage


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
