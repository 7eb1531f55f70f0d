"""ltv learning-curve: which examples each size trains on, and the curve of every model on a tiny
generated world, saved once per run and plotted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from ltv_spark.config import load_config
from ltv_spark.dataset import plan_cutoffs
from ltv_spark.pipeline import generate_world, ingest_raw
from ltv_spark.pipeline.gold import LEARNING_CURVE
from ltv_spark.pipeline.learning_curve import CURVE_MODELS, learning_curve, training_sizes
from tests.conftest import open_engine
from tests.test_evaluation import evaluation_overrides


def it_shares_users_below_one_and_adds_cutoffs_over_the_same_span_above():
    monthly = ["features.train_cutoffs=6", "features.cutoff_step_days=30"]  # the default is weekly
    features = load_config("local", monthly).features
    today = plan_cutoffs(features).train
    eighth, one, twice, four = training_sizes(features, [4, 1, 0.125, 2])  # returned ascending
    assert (eighth.cutoffs, eighth.users_share) == (today, 0.125)
    assert (one.cutoffs, one.users_share) == (today, 1.0)
    assert (len(twice.cutoffs), len(four.cutoffs)) == (12, 24)
    assert twice.users_share == four.users_share == 1.0
    for denser, step in ((twice, 15), (four, 7)):
        assert denser.cutoffs[-1] == today[-1]  # the last label window still ends at validation
        assert {(b - a).days for a, b in zip(denser.cutoffs, denser.cutoffs[1:], strict=False)} == {step}
    assert (eighth.epochs(10), one.epochs(10), four.epochs(10)) == (80, 10, 10)  # steps of 1x at least
    with pytest.raises(ValueError, match="curve_sizes"):
        training_sizes(features, [0])


def it_keeps_a_fixed_nested_share_of_the_users(spark):
    frame = spark.createDataFrame(pd.DataFrame({"user_id": [f"u{i}" for i in range(4000)]}))
    features = load_config("local").features
    quarter, half = training_sizes(features, [0.25, 0.5])
    in_quarter = {r.user_id for r in quarter.users(frame).collect()}
    in_half = {r.user_id for r in half.users(frame).collect()}
    assert 800 < len(in_quarter) < 1200 and 1800 < len(in_half) < 2200
    assert in_quarter < in_half  # a larger share adds users, it does not redraw them


def it_trains_every_model_at_every_size_and_saves_the_curve(spark, tmp_path):
    store = open_engine(spark, "spark-delta", str(tmp_path / "warehouse"))  # one engine: the jobs' own
    curve_settings = ["evaluate.curve_sizes=[0.5, 1, 2]", "evaluate.seeds=[1]"]
    config = load_config("local", [*evaluation_overrides(tmp_path), *curve_settings])
    generate_world(spark, store, config.world)
    ingest_raw(spark, store, config.ingest)
    result = learning_curve(spark, store, config)

    points = result.points
    assert set(points["model"]) == set(CURVE_MODELS)
    assert len(points) == 3 * len(CURVE_MODELS)  # one seed: one run per model and size
    per_size = points.groupby("size").agg(examples=("examples", "first"), cutoffs=("cutoffs", "first"))
    assert per_size["cutoffs"].to_dict() == {0.5: 2, 1.0: 2, 2.0: 4}
    examples = per_size["examples"].to_numpy()
    assert examples[0] < examples[1] < examples[2]
    assert 0.3 < examples[0] / examples[1] < 0.7  # about half the users
    assert np.isfinite(points["normalized_gini"]).all() and points["normalized_gini"].abs().le(1).all()
    assert points["normalized_gini"].max() > 0.2  # the models learn something on the tiny world

    saved = store.read(LEARNING_CURVE).filter(F.col("run") == result.run)
    assert saved.count() == len(points)
    assert len(result.report.read_bytes()) > 1000
    assert any(line.startswith("transformer") for line in result.lines())
