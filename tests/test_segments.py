"""describe segment quality: every evaluated user in one segment of each kind, every model scored
per segment, the miscalibrated segments flagged."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from ltv_spark.evaluation import MetricTables, format_flagged_segments
from ltv_spark.segments import SEGMENT_KEYS, segment_metrics, user_segments

CUTOFF = dt.date(2025, 7, 1)
FEATURES = [  # user_id, cutoff, tenure_days, monetary, orders, sessions_90d
    ("new", CUTOFF, 10.0, 0.0, 0, 2),
    ("mid", CUTOFF, 100.0, 10.0, 1, 1),
    ("old", CUTOFF, 400.0, 50.0, 3, 0),
]
EVENTS = [  # user_id, event_time, event_type, category
    ("new", dt.datetime(2025, 6, 25, 9), "view", "shoes"),
    ("mid", dt.datetime(2025, 7, 2, 9), "purchase", "toys"),  # after the cutoff: not seen
    ("old", dt.datetime(2025, 1, 5, 9), "purchase", "books"),
    ("old", dt.datetime(2025, 1, 5, 9), "view", "shoes"),
    ("old", dt.datetime(2025, 2, 5, 9), "view", "shoes"),
    ("old", dt.datetime(2025, 3, 5, 9), "view", "shoes"),
]


def it_puts_each_user_in_one_segment_of_each_kind(spark):
    features = spark.createDataFrame(
        FEATURES,
        "user_id string, cutoff date, tenure_days double, monetary double, orders long, sessions_90d long",
    )
    events = spark.createDataFrame(
        EVENTS, "user_id string, event_time timestamp, event_type string, category string"
    )
    rows = user_segments(features, events).collect()
    got = {(r["user_id"], r["segment_kind"]): r["segment"] for r in rows}
    assert len(rows) == 3 * 5
    assert {k: v for (u, k), v in got.items() if u == "new"} == {
        "tenure": "<30d",
        "cohort": "2025-Q2",  # first event 2025-06-21
        "main_category": "shoes",  # viewed only
        "past_value_decile": "no purchase",
        "sessions_90d": "with sessions",
    }
    assert {k: v for (u, k), v in got.items() if u == "old"} == {
        "tenure": ">=365d",
        "cohort": "2024-Q2",  # 2024-05-27
        "main_category": "books",  # bought once beats viewed three times
        "past_value_decile": "value d2",  # the higher of the two past buyers
        "sessions_90d": "without sessions",
    }
    assert got[("mid", "tenure")] == "90-180d" and got[("mid", "cohort")] == "2025-Q1"
    assert got[("mid", "main_category")] == "none"  # its only event is after the cutoff
    assert got[("mid", "past_value_decile")] == "value d1"


SCORED = [  # model, seed, user_id, predicted, actual, churn_score, churned
    ("m", 1, "a", 1.0, 1.0, 0.1, False),
    ("m", 1, "b", 0.0, 0.0, 0.9, True),
    ("m", 1, "c", 4.0, 2.0, 0.2, False),
    ("m", 1, "d", 2.0, 1.0, 0.3, False),
]
SEGMENTS = [("a", "tenure", "x"), ("b", "tenure", "x"), ("c", "tenure", "y"), ("d", "tenure", "y")]


def it_scores_every_segment_and_flags_the_miscalibrated_ones(spark):
    scored = spark.createDataFrame(
        SCORED,
        "model string, seed int, user_id string, predicted double, actual double, churn_score double, "
        "churned boolean",
    )
    segments = spark.createDataFrame(SEGMENTS, "user_id string, segment_kind string, segment string")
    got = {r["segment"]: r.asDict() for r in segment_metrics(scored, segments, ["model", "seed"]).collect()}
    assert got["x"]["users"] == 2 and got["x"]["normalized_gini"] == pytest.approx(1.0)
    assert got["x"]["total_ratio"] == pytest.approx(1.0) and got["x"]["churn_auc"] == pytest.approx(1.0)
    assert got["x"]["flagged"] is False
    assert got["y"]["total_ratio"] == pytest.approx(2.0) and got["y"]["flagged"] is True
    assert got["y"]["churn_auc"] is None  # nobody churned there: undefined, not 0.5


def it_averages_the_seeds_and_names_the_worst_flagged_segments():
    per_seed = pd.DataFrame(
        {
            "model": ["m"] * 4,
            "seed": [1, 2, 1, 2],
            "segment_kind": ["tenure"] * 4,
            "segment": ["x", "x", "y", "y"],
            "users": [10, 10, 5, 5],
            "normalized_gini": [0.6, 0.8, 0.5, 0.5],
            "total_ratio": [1.05, 1.2, 0.7, 0.9],  # x: mean 1.125 (off), y: mean 0.8 (off, worse)
            "churn_auc": [0.7, 0.7, 0.6, 0.6],
            "flagged": [False, True, True, False],
        }
    )
    empty = pd.DataFrame()
    tables = MetricTables(empty, empty, empty, empty, {}, segments=per_seed)
    summary = tables.segment_summary().set_index(SEGMENT_KEYS)
    assert summary.loc[("tenure", "x"), "normalized_gini"] == pytest.approx(0.7)
    assert summary["flagged"].tolist() == [True, True]  # judged on the mean over seeds
    lines = format_flagged_segments(tables.segment_summary(), shown=1)
    assert lines[1].split() == ["m", "2", "of", "2", "(worst:", "tenure=y", "0.80)"]
