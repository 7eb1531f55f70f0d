"""describe scoring: an Arrow UDF that loads the model once per worker, and a MERGE per (user, date)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest
import torch
from pyspark.sql import functions as F

from ltv_spark.artifacts import save_torch, write_json
from ltv_spark.calibration import DecileCalibration
from ltv_spark.explain import average_session
from ltv_spark.features import CATEGORY_HISTORY, FEATURE_COLUMNS
from ltv_spark.model import ModelConfig, build_model
from ltv_spark.pipeline import EVENTS
from ltv_spark.pipeline.scoring import PREDICTIONS, score_as_of
from ltv_spark.scaling import FeatureScaling
from ltv_spark.score import (
    LoadedModel,
    ModelInputs,
    add_deciles_and_segments,
    category_predictions,
    score_users,
    with_sequences,
)
from ltv_spark.sequences import SESSION_VECTOR
from tests.helpers import bronze_from_world

LENGTH = 4
WIDTH = len(SESSION_VECTOR)
MODEL = ModelConfig(
    sequence_length=LENGTH,
    static_features=len(FEATURE_COLUMNS),
    d_model=8,
    n_heads=2,
    n_layers=1,
    d_ff=16,
    dropout=0.0,
)


def write_model(folder, config: ModelConfig = MODEL) -> str:
    """A model folder as ltv train leaves it (random weights: scoring does not care how good it is)."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    save_torch(
        folder,
        "model.pt",
        {"model": build_model(config).state_dict(), "config": dataclasses.asdict(config)},
    )
    scaling = FeatureScaling(FEATURE_COLUMNS, (0.5,) * len(FEATURE_COLUMNS), (2.0,) * len(FEATURE_COLUMNS))
    write_json(folder, "scaling.json", scaling.to_dict())
    write_json(folder, "data_versions.json", {"gold.user_features": 0})
    (folder / "COMPLETE").write_text("ok\n")
    return str(folder)


def user_rows(spark, users: int = 50, with_sequence: bool = True):
    rng = np.random.default_rng(0)
    cutoff = dt.date(2025, 8, 1)
    features = spark.createDataFrame(
        [(f"u{i:03d}", cutoff, *rng.gamma(1.0, 3.0, len(FEATURE_COLUMNS)).tolist()) for i in range(users)],
        "user_id string, cutoff date, " + ", ".join(f"{c} double" for c in FEATURE_COLUMNS),
    )
    sequences = spark.createDataFrame(
        [
            (
                f"u{i:03d}",
                cutoff,
                rng.normal(size=LENGTH * WIDTH).tolist(),
                [1.0] * (1 + i % LENGTH) + [0.0] * (LENGTH - 1 - i % LENGTH),
            )
            for i in range(users if with_sequence else 0)
        ],
        "user_id string, cutoff date, sequence array<float>, mask array<float>",
    )
    return with_sequences(features, sequences, LENGTH, WIDTH)


def it_scores_exactly_like_the_model_called_directly(spark, tmp_path):
    folder = write_model(tmp_path / "model")
    rows = user_rows(spark).repartition(3)
    udf_scores = (
        score_users(rows, folder, batch_size=7).toPandas().sort_values("user_id").reset_index(drop=True)
    )
    direct = LoadedModel.load(folder).score(rows.toPandas()).sort_values("user_id").reset_index(drop=True)
    assert len(udf_scores) == 50
    for column in ("expected_ltv", "p_buy", "churn_probability"):
        np.testing.assert_allclose(udf_scores[column], direct[column], rtol=1e-6)


def it_reads_the_same_inputs_from_a_slice_of_an_arrow_batch_as_from_the_pandas_rows(spark):
    frame = user_rows(spark, users=12).orderBy("user_id").toPandas()
    frame.loc[4, "orders"] = None  # a null feature: NaN on both paths
    batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    from_arrow = ModelInputs.of(batch.slice(3, 5), FEATURE_COLUMNS, MODEL)  # an offset into the buffers
    from_pandas = ModelInputs.of(frame.iloc[3:8], FEATURE_COLUMNS, MODEL)
    assert from_arrow.sequence.shape == (5, LENGTH * WIDTH) and from_arrow.mask.shape == (5, LENGTH)
    assert np.isnan(from_arrow.static[1, FEATURE_COLUMNS.index("orders")])
    for name in ("static", "sequence", "mask"):
        np.testing.assert_array_equal(getattr(from_arrow, name), getattr(from_pandas, name))
        assert getattr(from_arrow, name).dtype == getattr(from_pandas, name).dtype


def it_names_the_list_column_whose_rows_have_the_wrong_length(spark):
    frame = user_rows(spark, users=3).toPandas()
    frame.at[1, "mask"] = frame.at[1, "mask"][:-1]  # one session short
    batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    with pytest.raises(ValueError, match=f"column mask: expected {LENGTH} numbers in every row"):
        ModelInputs.of(batch, FEATURE_COLUMNS, MODEL)


def it_explains_each_score_on_the_executors_as_the_model_does_directly(spark, tmp_path):
    folder = write_model(tmp_path / "model")
    rows = user_rows(spark).repartition(3)
    assert "reasons" not in score_users(rows, folder, batch_size=16).columns  # only when asked
    scored = score_users(rows, folder, batch_size=16, explain=True).collect()
    explained = {r["user_id"]: list(r["reasons"]) for r in scored}
    local, average = rows.toPandas(), average_session(rows)
    model = LoadedModel.load(folder)
    assert explained == dict(zip(local["user_id"], model.reasons(local, average), strict=True))
    fewer_steps = score_users(rows, folder, batch_size=16, explain=True, explain_steps=2).collect()
    assert {r["user_id"]: list(r["reasons"]) for r in fewer_steps} == dict(
        zip(local["user_id"], model.reasons(local, average, steps=2), strict=True)
    )
    assert all(len(reasons) == 3 for reasons in explained.values())  # random weights: everything matters
    assert all(re.search(r"\((raises|lowers) value\)$", r) for reasons in explained.values() for r in reasons)


def it_names_each_users_most_likely_next_categories_from_the_cross_sell_head(spark, tmp_path):
    names = ["books", "games", "shoes", "toys"]
    folder = write_model(tmp_path / "model", dataclasses.replace(MODEL, categories=len(names)))
    write_json(folder, "categories.json", names)
    history = F.array(F.struct(F.lit("toys").alias("category"), F.lit(1.0).cast("float").alias("share")))
    rows = user_rows(spark).withColumn(CATEGORY_HISTORY, history).repartition(3)
    scored = {
        r["user_id"]: r["top_categories"] for r in score_users(rows, folder, 16, explain=True).collect()
    }
    local = rows.toPandas()
    model = LoadedModel.load(folder)
    assert model.categories == tuple(names)
    direct = dict(zip(local["user_id"], model.top_categories(local), strict=True))
    assert {u: [(c["category"], c["probability"]) for c in top] for u, top in scored.items()} == {
        u: [(c["category"], pytest.approx(c["probability"])) for c in top] for u, top in direct.items()
    }
    for top in scored.values():
        probabilities = [c["probability"] for c in top]
        assert len(top) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert {c["category"] for c in top} <= set(names) and all(0 < p < 1 for p in probabilities)
    long = category_predictions(rows, folder, batch_size=16).toPandas()
    assert len(long) == 50 * len(names)
    first = long[long["user_id"] == local["user_id"].iloc[0]].set_index("category")["probability"]
    expected = model.category_probabilities(local.iloc[:1])[0]
    np.testing.assert_allclose(first[names].to_numpy(), expected, rtol=1e-6)
    plain = write_model(tmp_path / "plain")  # no cross-sell head: no categories
    assert all(r["top_categories"] == [] for r in score_users(rows, plain, 16, explain=True).collect())


def it_scores_expected_ltv_through_the_folders_calibration_and_leaves_p_buy_alone(spark, tmp_path):
    folder = write_model(tmp_path / "model")
    rows = user_rows(spark)
    raw = score_users(rows, folder, batch_size=16).toPandas().sort_values("user_id")
    calibration = DecileCalibration(predicted=(0.5, 2.0), actual=(3.0, 4.0), users=2)  # knots by hand
    calibration.write(folder)  # the workers that already hold the model must apply it too
    calibrated = score_users(rows, folder, batch_size=16).toPandas().sort_values("user_id")
    expected = calibration.apply(raw["expected_ltv"].to_numpy())
    np.testing.assert_allclose(calibrated["expected_ltv"], expected, rtol=1e-12)
    assert not np.allclose(expected, raw["expected_ltv"])
    np.testing.assert_allclose(calibrated["p_buy"], raw["p_buy"])
    uncalibrated = score_users(rows, folder, batch_size=16, calibrated=False).toPandas()
    np.testing.assert_allclose(uncalibrated.sort_values("user_id")["expected_ltv"], raw["expected_ltv"])


def it_gives_users_without_sessions_a_defined_prediction(spark, tmp_path):
    folder = write_model(tmp_path / "model")
    scores = score_users(user_rows(spark, 5, with_sequence=False), folder, batch_size=4).collect()
    assert len(scores) == 5
    assert all(np.isfinite(r["expected_ltv"]) and 0 <= r["p_buy"] <= 1 for r in scores)


def it_cuts_deciles_and_segments_without_collecting_scores(spark):
    scores = spark.createDataFrame(
        [(f"u{i}", float(i), 0.9 if i % 2 else 0.1) for i in range(1000)],
        "user_id string, expected_ltv double, churn_probability double",
    )
    labelled = {r["user_id"]: r for r in add_deciles_and_segments(scores).collect()}
    assert labelled["u999"]["value_decile"] == 1 and labelled["u0"]["value_decile"] == 10
    counts = [sum(r["value_decile"] == d for r in labelled.values()) for d in range(1, 11)]
    assert all(abs(c - 100) <= 2 for c in counts)
    assert labelled["u995"]["segment"] == "top_1pct"
    assert {labelled["u950"]["segment"], labelled["u951"]["segment"]} == {"top_10pct", "at_risk_high_value"}
    assert labelled["u10"]["segment"] == "rest"


def it_merges_one_row_per_user_and_date_and_rescoring_changes_no_row(
    spark, store, config, tmp_path, world_bronze
):
    store.append(world_bronze, EVENTS, partition_by=["event_date"])
    model_config = dataclasses.replace(MODEL, sequence_length=config.features.sequence_length)
    folder = write_model(tmp_path / "models" / "v0001", model_config)
    as_of = dt.date(2025, 8, 1)
    first = score_as_of(spark, store, config, as_of, folder)
    before = store.read(PREDICTIONS).drop("scored_at").orderBy("user_id").collect()
    second = score_as_of(spark, store, config, as_of, folder)
    after = store.read(PREDICTIONS).drop("scored_at").orderBy("user_id").collect()
    active = (
        world_bronze.filter(F.col("event_time") < F.lit(dt.datetime(2025, 8, 1))).select("user_id").distinct()
    )
    assert first.table_rows == second.table_rows == first.users == active.count()
    assert before == after
    assert {r["model_version"] for r in after} == {"v0001"}
    assert all(1 <= len(r["reasons"]) <= 3 for r in after)  # stored beside each prediction


def it_loads_the_model_once_per_python_worker_on_a_two_executor_cluster(tmp_path):
    """local-cluster starts two executor JVMs, each with its own Python worker: count the loads."""
    folder = write_model(tmp_path / "model")
    log = tmp_path / "loads.log"
    script = textwrap.dedent(
        f"""
        import os, sys
        from pyspark.sql import SparkSession
        from tests.test_scoring import user_rows
        from ltv_spark.score import score_users
        spark = (SparkSession.builder.master("local-cluster[2,1,1024]")
                 .config("spark.executorEnv.LTV_MODEL_LOAD_LOG", {str(log)!r})
                 .config("spark.executorEnv.PYTHONPATH", os.getcwd())
                 .config("spark.ui.enabled", "false").getOrCreate())
        rows = user_rows(spark, 200).repartition(8)
        scored = score_users(rows, {folder!r}, batch_size=16).count()
        print("SCORED", scored)
        spark.stop()
        """
    )
    env = {**__import__("os").environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(tmp_path.cwd())}
    env["SPARK_WORKER_DIR"] = str(tmp_path / "work")  # the executors' logs, not under pyspark/
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )
    assert "SCORED 200" in child.stdout, child.stderr[-3000:]
    pids = log.read_text().split()
    assert len(pids) == len(set(pids))  # no worker loaded the model twice over 8 partitions
    assert len(set(pids)) >= 2  # two executors, two Python workers


@pytest.fixture()
def world_bronze(spark):
    return bronze_from_world(spark, users=80, days=90)
