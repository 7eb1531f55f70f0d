"""ltv evaluate on a tiny generated world: every model scored on the same users, the metrics table
saved once per run, the report written with every model in it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F

from ltv_spark.baselines.categories import CO_PURCHASE, PAST_CATEGORIES, POPULARITY
from ltv_spark.baselines.naive import last_window_predictions
from ltv_spark.config import load_config
from ltv_spark.evaluation import MetricTables, format_summary
from ltv_spark.pipeline import EVENTS, generate_world, ingest_raw
from ltv_spark.pipeline.evaluation import (
    ALL_CATEGORIES,
    EVALUATION_CATEGORIES,
    EVALUATION_METRICS,
    EVALUATION_SEGMENTS,
    evaluate,
)
from ltv_spark.pipeline.training import train_model
from ltv_spark.report import LEARNING_CURVE_PLOT, PLOTS, write_report
from ltv_spark.segments import SEGMENT_KINDS
from ltv_spark.tracking import use_tracking
from tests.conftest import open_engine
from tests.helpers import tiny_overrides

MODELS = {
    "transformer",
    "mlp_ziln",
    "transformer_gb_stack",
    "gradient_boosting",
    "linear_regression",
    "bg_nbd_gamma_gamma",
    "last_window_value",
    "oracle",
}


def evaluation_overrides(base: Path) -> list[str]:
    return [
        *tiny_overrides(base),
        "features.evaluation_cutoff=2025-08-15",
        "evaluate.seeds=[1, 2]",
        "train.seed=1",  # ltv train's model is the evaluation's transformer of seed 1
        f"evaluate.models_root={base / 'models'}",
        f"evaluate.reports_dir={base / 'reports'}",
    ]


@pytest.fixture()
def tiny(tmp_path):
    return load_config("local", evaluation_overrides(tmp_path))


def it_scores_every_model_on_the_same_users_and_writes_the_report(spark, store, tiny, tmp_path):
    generate_world(spark, store, tiny.world)
    ingest_raw(spark, store, tiny.ingest)
    production = train_model(spark, store, tiny, "local")
    result = evaluate(spark, store, tiny, "generated")
    trained = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert trained == ["v0001", "v0002", "v0003", "v0004"]  # 2 seeds x 2 models, one of them ltv train's
    assert production.artifact_dir.endswith("v0001")
    runs = result.tables.runs
    assert set(runs["model"]) == MODELS | {"ceiling"}
    twice = (
        "transformer",
        "mlp_ziln",
        "transformer_gb_stack",
        "ceiling",
    )  # seeds; the ceiling: particle sets
    assert runs.groupby("model").size().to_dict() == {m: 2 if m in twice else 1 for m in MODELS | {"ceiling"}}
    assert runs["users"].nunique() == 1 and runs["users"].iloc[0] > 50  # the same users for every model
    summary = result.tables.summary().set_index("model")
    assert summary.loc["oracle", "gini_vs_oracle"] == pytest.approx(1.0)
    assert summary.loc["oracle", "normalized_gini"] > 0.3  # the truth ranks far better than chance
    assert summary.loc["transformer", "runs"] == 2 and summary.loc["transformer", "normalized_gini_std"] >= 0
    # the observable ceiling: every user of this tiny world (under the 4,000 sampled), its Monte
    # Carlo error small beside its distance from chance
    assert summary.loc["ceiling", "gini_vs_ceiling"] == pytest.approx(1.0)
    assert summary.loc["ceiling", "normalized_gini"] > 0.3
    assert summary.loc["ceiling", "normalized_gini_std"] < 0.05
    assert any("effective sample size" in note for note in result.notes)
    assert any(note.startswith("transformer_gb_stack: w x transformer") for note in result.notes)

    saved = store.read(EVALUATION_METRICS).filter(F.col("run") == result.run).toPandas()
    assert len(saved) == len(runs) == 13
    page = result.report.read_text()
    assert_segments_saved(store, result, page)
    assert_cross_sell_saved(store, result, page)
    assert all(model in page for model in MODELS)
    assert all(len((result.report.parent / f"{plot}.png").read_bytes()) > 1000 for plot in PLOTS)
    assert page.count("data:image/png;base64,") == len(PLOTS)  # self-contained: plots inlined
    assert_tracked(tiny, result)

    models_before = sorted(p.name for p in (tmp_path / "models").iterdir())
    again = evaluate(spark, store, tiny, "generated")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == models_before  # nothing retrained
    assert store.read(EVALUATION_METRICS).filter(F.col("run") == result.run).count() == 13
    kept = again.tables.runs.set_index(["model", "seed"])["normalized_gini"]
    first = runs.set_index(["model", "seed"])["normalized_gini"]
    pd.testing.assert_series_equal(kept.sort_index(), first.sort_index())

    shop = evaluate(spark, store, tiny, "warehouse")  # the same drops seen as a shop's own data
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == models_before  # same models
    assert shop.run.startswith("warehouse_") and set(shop.tables.runs["model"]) == MODELS - {"oracle"}
    warehouse = shop.tables.runs.set_index(["model", "seed"])["normalized_gini"]
    references = first.drop(["oracle", "ceiling"], level="model")
    pd.testing.assert_series_equal(warehouse.sort_index(), references.sort_index())
    assert store.read(EVALUATION_METRICS).filter(F.col("run") == shop.run).count() == 10
    assert shop.tables.cross_sell is not None and len(shop.tables.cross_sell) == 7  # a shop's categories


def assert_segments_saved(store, result, page: str) -> None:
    """Every model and seed scored per segment: each kind's segments cover every user once."""
    segments = store.read(EVALUATION_SEGMENTS).filter(F.col("run") == result.run).toPandas()
    assert set(segments["segment_kind"]) == set(SEGMENT_KINDS)
    runs = result.tables.runs
    pairs = segments[["model", "seed"]].drop_duplicates()
    assert set(map(tuple, pairs.to_numpy())) == set(map(tuple, runs[["model", "seed"]].to_numpy()))
    per_kind = segments.groupby(["model", "seed", "segment_kind"])["users"].sum()
    assert (per_kind == runs["users"].iloc[0]).all()
    assert "Segment quality" in page and "segments whose predicted / true total" in "\n".join(result.lines())


def assert_cross_sell_saved(store, result, page: str) -> None:
    """Both neural models' cross-sell heads and the three baselines, per category and overall."""
    cross_sell = result.tables.cross_sell
    assert cross_sell.groupby("model").size().to_dict() == {
        "transformer": 2,
        "mlp_ziln": 2,
        POPULARITY: 1,
        PAST_CATEGORIES: 1,
        CO_PURCHASE: 1,
    }
    assert (cross_sell["users"] == result.tables.runs["users"].iloc[0]).all() and (
        cross_sell["buyers"] > 0
    ).all()
    by_model = cross_sell.set_index("model")
    assert by_model.loc[POPULARITY, "mean_auc"] == pytest.approx(0.5)  # one score per category: ties
    assert by_model.loc[PAST_CATEGORIES, "mean_auc"] > 0.6  # the world's category tastes persist
    saved = store.read(EVALUATION_CATEGORIES).filter(F.col("run") == result.run).toPandas()
    overall = saved[saved["category"] == ALL_CATEGORIES]
    assert len(overall) == len(cross_sell) and overall["top_k_hit_rate"].between(0, 1).all()
    per_category = saved[saved["category"] != ALL_CATEGORIES]
    assert len(per_category) == len(result.tables.categories) and per_category["top_k_hit_rate"].isna().all()
    assert "Next category (cross-sell)" in page and "next category (cross-sell)" in "\n".join(result.lines())


def assert_tracked(config, result) -> None:
    """One MLflow run for the evaluation: a nested run per neural training (its epochs) and per model
    compared (its metrics; each seed's at step = seed), the report as artifacts."""
    client = MlflowClient()
    experiment = use_tracking(config.tracking)
    (parent,) = client.search_runs([experiment], "tags.mlflow.runName = 'evaluate generated'")
    assert parent.data.tags["run"] == result.run and parent.data.params["evaluate.seeds"] == "[1, 2]"
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_name = {child.info.run_name: child for child in children}
    fits = {f"{a} seed {s} split 0" for a in ("transformer", "mlp") for s in (1, 2)}
    assert set(by_name) == MODELS | {"ceiling"} | fits
    epochs = client.get_metric_history(by_name["transformer seed 2 split 0"].info.run_id, "train_loss")
    assert [m.step for m in epochs] == [0]  # train.epochs=1
    transformer = by_name["transformer"]
    summary = result.tables.summary().set_index("model").loc["transformer"]
    assert transformer.data.metrics["normalized_gini"] == pytest.approx(summary["normalized_gini"])
    per_seed = client.get_metric_history(transformer.info.run_id, "per_seed/normalized_gini")
    seeds = result.tables.runs.query("model == 'transformer'")
    assert {m.step: m.value for m in per_seed} == pytest.approx(
        dict(zip(seeds["seed"], seeds["normalized_gini"], strict=True))
    )
    assert "report/index.html" in {f.path for f in client.list_artifacts(parent.info.run_id, "report")}


def two_model_tables() -> MetricTables:
    """Hand-made metric tables: a transformer over two seeds and the oracle."""
    runs = pd.DataFrame(
        {
            "model": ["transformer", "transformer", "oracle"],
            "seed": [1, 2, 0],
            "users": [10, 10, 10],
            "normalized_gini": [0.6, 0.8, 0.8],
            "spearman": [0.5, 0.5, 0.6],
            "decile_mape": [0.2, 0.4, 0.1],
            "churn_auc": [0.7, 0.7, 0.8],
            "top_decile_share": [0.5, 0.5, 0.6],
            "top_1pct_share": [0.1, 0.1, 0.2],
            "total_ratio": [1.0, 1.2, 1.0],
        }
    )
    gains = pd.DataFrame(
        {
            "model": ["transformer"] * 4 + ["oracle"] * 2,
            "seed": [1, 1, 2, 2, 0, 0],
            "percentile": [0, 99, 0, 99, 0, 99],
            "users": [9, 1, 9, 1, 9, 1],
            "actual": [5.0, 5.0, 8.0, 2.0, 2.0, 8.0],
            "predicted": [1.0, 9.0, 1.0, 9.0, 1.0, 9.0],
        }
    )
    deciles = pd.DataFrame(
        {"model": ["transformer", "oracle"], "seed": [1, 0], "decile": [0, 0], "users": [10, 10]}
    ).assign(mean_predicted=1.0, mean_actual=1.0)
    churn = gains[["model", "seed", "percentile", "users"]].assign(churned=[4, 1, 4, 1, 5, 0])
    churn_from = {"transformer": "probability", "oracle": "probability"}
    return MetricTables(runs, gains, deciles, churn, churn_from)


def it_reports_every_model_against_the_closed_form_ceiling_on_the_purchases_only_world(spark, tmp_path):
    purchases_only = ["world.model=btyd", "world.users=600", "evaluate.seeds=[1]"]
    config = load_config("local", [*evaluation_overrides(tmp_path), *purchases_only])
    store = open_engine(spark, "delta-rs", config.tables.root)
    generate_world(spark, store, config.world)
    ingest_raw(spark, store, config.ingest)
    summary = evaluate(spark, store, config, "generated").tables.summary().set_index("model")
    assert set(summary.index) == MODELS | {"ceiling"}
    assert summary.loc["ceiling", "gini_vs_ceiling"] == pytest.approx(1.0)
    assert summary["gini_vs_ceiling"].notna().all() and summary["gini_vs_oracle"].notna().all()
    assert summary.loc["oracle", "normalized_gini"] > summary.loc["last_window_value", "normalized_gini"]
    assert {row["event_type"] for row in store.read(EVENTS).select("event_type").distinct().collect()} == {
        "purchase"
    }


def it_predicts_each_users_last_window_as_the_naive_baseline(spark):
    rows = [
        ("a", "purchase", dt.datetime(2025, 3, 1), 10.0, 2.0),
        ("a", "refund", dt.datetime(2025, 3, 5), 10.0, 1.0),
        ("a", "purchase", dt.datetime(2024, 12, 1), 99.0, 1.0),  # before the window
        ("b", "view", dt.datetime(2025, 3, 9), 5.0, 0.0),
        ("c", "purchase", dt.datetime(2025, 4, 1), 7.0, 1.0),  # at the cutoff: the future
    ]
    schema = "user_id string, event_type string, event_time timestamp, price double, quantity double"
    events = spark.createDataFrame(rows, schema).withColumn("order_id", F.lit("o1"))
    users = spark.createDataFrame([("a",), ("b",)], "user_id string")
    predicted = last_window_predictions(events, users, dt.date(2025, 4, 1), 60).orderBy("user_id").collect()
    # a: 20 bought - 10 refunded inside [2025-01-31, 2025-04-01)
    assert [(r["user_id"], r["predicted"], r["churn_score"]) for r in predicted] == [
        ("a", 10.0, -10.0),
        ("b", 0.0, 0.0),
    ]


def it_prints_mean_and_spread_and_the_fraction_of_the_oracle(tmp_path):
    tables = two_model_tables()
    lines = format_summary(tables.summary())
    transformer = next(line for line in lines if line.startswith("transformer"))
    assert "0.7000 ±0.1414" in transformer  # mean and sample standard deviation of the two seeds
    assert transformer.rstrip().endswith("0.875")  # 0.7 / 0.8 of the oracle
    page = write_report(tmp_path / "run", "title", ["a note"], tables)
    segments = pd.read_csv(tmp_path / "run" / "segments.csv").set_index("model")
    # top 1% = percentile 99: the transformer's seeds hold 5/10 and 2/10 of the value -> mean 0.35
    assert segments.loc["transformer", "top_1pct_share"] == pytest.approx(0.35)
    assert segments.loc["oracle", "top_1pct_share"] == pytest.approx(0.8)
    assert "a note" in page.read_text()


def it_writes_each_deciles_relative_error_beside_the_report(tmp_path):
    tables = two_model_tables()
    tables.deciles = tables.deciles.assign(mean_predicted=[1.5, 1.0], mean_actual=[1.0, 0.0])
    write_report(tmp_path / "run", "title", [], tables)
    deciles = pd.read_csv(tmp_path / "run" / "deciles.csv").set_index("model")
    assert deciles.loc["transformer", "relative_error"] == pytest.approx(0.5)
    assert pd.isna(deciles.loc["oracle", "relative_error"])  # mean actual 0: no relative error


def it_adds_the_learning_curve_to_the_report_when_there_is_one(tmp_path):
    points = pd.DataFrame(
        {
            "model": ["mlp_ziln"] * 4,
            "seed": [1, 2, 1, 2],
            "size": [0.5, 0.5, 1.0, 1.0],
            "examples": [100, 100, 200, 200],
            "normalized_gini": [0.5, 0.6, 0.7, 0.7],
        }
    )
    page = write_report(tmp_path / "run", "title", [], two_model_tables(), learning_curve=points)
    assert len((tmp_path / "run" / f"{LEARNING_CURVE_PLOT}.png").read_bytes()) > 1000
    assert page.read_text().count("data:image/png;base64,") == len(PLOTS) + 1
