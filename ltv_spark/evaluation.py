"""Scored users of every model -> the small tables of an evaluation: metrics per run, their mean
and spread over seeds, gain curves, deciles and churn curves.

The input is one frame of (model, seed, user_id, predicted, actual, churn_score, churned); the
metrics are computed on Spark (ltv_spark.spark_metrics), and only tables of at most 100 rows per
model and seed come back to the driver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ltv_spark.segments import CALIBRATION_TOLERANCE
from ltv_spark.spark_metrics import (
    METRIC_COLUMNS,
    churn_table,
    decile_table,
    gain_table,
    model_metrics,
    ranked,
)

RUN_KEYS = ["model", "seed"]
ORACLE = "oracle"  # the generator's expected value given each user's hidden state
CEILING = "ceiling"  # the Bayes-optimal prediction from what a model can observe
NEURAL_MODELS = {"transformer": "transformer", "mlp": "mlp_ziln"}  # architecture -> model name
REFERENCES = (ORACLE, CEILING)  # every model's Gini is also shown as a fraction of these
SCORED_COLUMNS = ["model", "seed", "user_id", "predicted", "actual", "churn_score", "churned"]


@dataclass
class MetricTables:
    """Everything a report needs, small enough to hold on the driver."""

    runs: pd.DataFrame  # one row per (model, seed): METRIC_COLUMNS
    gains: pd.DataFrame  # (model, seed, percentile): users, actual, predicted
    deciles: pd.DataFrame  # (model, seed, decile): users, mean_predicted, mean_actual
    churn: pd.DataFrame  # (model, seed, percentile of churn score): users, churned
    churn_from: dict[str, str]  # model -> "probability" or "value"
    # (model, seed, segment_kind, segment): users, normalized_gini, total_ratio, churn_auc, flagged
    segments: pd.DataFrame | None = None
    # next-category propensity (ltv_spark.cross_sell), where the models have a cross-sell head:
    # (model, seed): users, buyers, categories, mean_auc, top_k_hit_rate
    cross_sell: pd.DataFrame | None = None
    categories: pd.DataFrame | None = None  # (model, seed, category): users, buyers, auc

    def cross_sell_summary(self) -> pd.DataFrame | None:
        """Per model: runs, buyers, and mean AUC and top-k hit rate with their spread over seeds."""
        if self.cross_sell is None:
            return None
        grouped = self.cross_sell.groupby("model", sort=False)
        table = grouped.agg(runs=("seed", "size"), users=("users", "first"), buyers=("buyers", "first"))
        for column in ("mean_auc", "top_k_hit_rate"):
            table[column] = grouped[column].mean()
            table[f"{column}_std"] = grouped[column].std(ddof=1).fillna(0.0)
        return table.reset_index()

    def category_auc_table(self) -> pd.DataFrame | None:
        """category x model: the AUC, mean over seeds; with each category's buyers."""
        if self.categories is None:
            return None
        means = self.categories.groupby(["category", "model"], sort=False)["auc"].mean().unstack("model")
        buyers = self.categories.groupby("category")["buyers"].first().rename("buyers")
        order = list(dict.fromkeys(self.categories["model"]))
        return pd.concat([buyers, means[order]], axis=1).sort_values("buyers", ascending=False).reset_index()

    def segment_summary(self) -> pd.DataFrame | None:
        """Per model and segment: users, and each segment metric's mean over the seeds; flagged
        where the mean calibration is off by more than the tolerance (ltv_spark.segments)."""
        if self.segments is None:
            return None
        keys = ["model", "segment_kind", "segment"]
        table = self.segments.groupby(keys, sort=False, as_index=False).agg(
            runs=("seed", "size"),
            users=("users", "first"),
            normalized_gini=("normalized_gini", "mean"),
            total_ratio=("total_ratio", "mean"),
            churn_auc=("churn_auc", "mean"),
        )
        table["flagged"] = (table["total_ratio"] - 1).abs() > CALIBRATION_TOLERANCE
        return table.sort_values(keys, ignore_index=True)

    def summary(self) -> pd.DataFrame:
        """Per model: runs, then each metric's mean and standard deviation over the seeds."""
        grouped = self.runs.groupby("model", sort=False)
        table = grouped.size().rename("runs").to_frame()
        for column in METRIC_COLUMNS[1:]:
            table[column] = grouped[column].mean()
            table[f"{column}_std"] = grouped[column].std(ddof=1).fillna(0.0)
        table.insert(1, "users", grouped["users"].first())
        for reference in REFERENCES:
            if reference in table.index:
                gini = table.loc[reference, "normalized_gini"]
                table[f"gini_vs_{reference}"] = table["normalized_gini"] / gini
        return table.reset_index()


def metric_tables(scored: DataFrame, churn_from: dict[str, str]) -> MetricTables:
    """Compute every table of the evaluation from the scored users (SCORED_COLUMNS)."""
    rows = ranked(scored.select(*SCORED_COLUMNS), RUN_KEYS).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        order = RUN_KEYS
        runs = model_metrics(rows, RUN_KEYS).toPandas().sort_values(order, ignore_index=True)
        gains = gain_table(rows, RUN_KEYS).toPandas().sort_values([*order, "percentile"], ignore_index=True)
        deciles = decile_table(rows, RUN_KEYS).toPandas().sort_values([*order, "decile"], ignore_index=True)
        churn = churn_table(rows, RUN_KEYS).toPandas().sort_values([*order, "percentile"], ignore_index=True)
    finally:
        rows.unpersist()
    return MetricTables(runs, gains, deciles, churn, churn_from)


def actuals(examples: DataFrame) -> DataFrame:
    """Labelled examples -> user_id, actual (net value in the horizon), churned (bought nothing)."""
    return examples.select(
        "user_id", F.col("net_value").cast("double").alias("actual"), (F.col("bought") == 0).alias("churned")
    )


def gain_curve(gains: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(share of users, share of true value) taken from the top prediction down, from (0, 0)."""
    top_first = gains.sort_values("percentile", ascending=False)
    users = np.concatenate([[0.0], np.cumsum(top_first["users"].to_numpy(float))])
    value = np.concatenate([[0.0], np.cumsum(top_first["actual"].to_numpy(float))])
    return users / users[-1], value / value[-1] if value[-1] else value


def roc_curve(churn: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) of the churn score, highest scores first."""
    top_first = churn.sort_values("percentile", ascending=False)
    churned = top_first["churned"].to_numpy(float)
    stayed = top_first["users"].to_numpy(float) - churned
    tpr = np.concatenate([[0.0], np.cumsum(churned)]) / max(churned.sum(), 1.0)
    fpr = np.concatenate([[0.0], np.cumsum(stayed)]) / max(stayed.sum(), 1.0)
    return fpr, tpr


def segment_values(gains: pd.DataFrame) -> dict[str, float]:
    """Users and true value of the top 1% and top 10% by prediction, and the share of all value."""
    total = gains["actual"].sum()
    values = {}
    for name, first_percentile in (("top_1pct", 99), ("top_10pct", 90)):
        top = gains[gains["percentile"] >= first_percentile]
        values[f"{name}_users"] = int(top["users"].sum())
        values[f"{name}_value"] = float(top["actual"].sum())
        values[f"{name}_share"] = float(top["actual"].sum() / total) if total else float("nan")
    return values


def format_summary(summary: pd.DataFrame) -> list[str]:
    """The metrics table as text lines: mean ± spread where a model ran with several seeds."""
    names = ["normalized_gini", "spearman", "decile_mape", "churn_auc", "top_decile_share", "total_ratio"]
    headers = ["gini", "spearman", "decile MAPE", "churn AUC", "top-10% share", "pred/true"]
    fractions = [r for r in REFERENCES if f"gini_vs_{r}" in summary.columns]
    width = max(len(str(m)) for m in summary["model"]) + 2
    head = f"{'model':<{width}}{'runs':>5}{'users':>8}" + "".join(f"{h:>17}" for h in headers)
    lines = [head + "".join(f"{'gini/' + r:>14}" for r in fractions)]
    for row in summary.itertuples(index=False):
        cells = []
        for name in names:
            mean, spread = getattr(row, name), getattr(row, f"{name}_std")
            text = "n/a" if pd.isna(mean) else f"{mean:.4f}" + (f" ±{spread:.4f}" if row.runs > 1 else "")
            cells.append(f"{text:>17}")
        line = f"{row.model:<{width}}{row.runs:>5}{row.users:>8,}" + "".join(cells)
        line += "".join(f"{getattr(row, 'gini_vs_' + r):>14.3f}" for r in fractions)
        lines.append(line)
    return lines


def format_cross_sell(summary: pd.DataFrame | None, top: int) -> list[str]:
    """The cross-sell table as text lines: per model, mean AUC and top-k hit rate (± over seeds)."""
    if summary is None:
        return []
    lines = [
        f"next category (cross-sell): {int(summary['buyers'].iloc[0]):,} buyers in the horizon",
        f"  {'model':<24}{'runs':>5}{'mean AUC':>18}{f'top-{top} hit rate':>20}",
    ]
    for row in summary.itertuples(index=False):
        cells = [
            f"{getattr(row, name):.4f}" + (f" ±{getattr(row, name + '_std'):.4f}" if row.runs > 1 else "")
            for name in ("mean_auc", "top_k_hit_rate")
        ]
        lines.append(f"  {row.model:<24}{row.runs:>5}{cells[0]:>18}{cells[1]:>20}")
    return lines


def format_flagged_segments(segments: pd.DataFrame | None, shown: int = 3) -> list[str]:
    """One line per model: how many of its segments are flagged, the worst ``shown`` of them with
    their predicted / true total."""
    if segments is None:
        return []
    lines = [f"segments whose predicted / true total is off by more than {CALIBRATION_TOLERANCE:.0%}:"]
    for model, group in segments.groupby("model", sort=False):
        flagged = group[group["flagged"]]
        worst = flagged.assign(off=(flagged["total_ratio"] - 1).abs()).nlargest(shown, "off")
        named = ", ".join(f"{r.segment_kind}={r.segment} {r.total_ratio:.2f}" for r in worst.itertuples())
        worst_text = f" (worst: {named})" if named else ""
        lines.append(f"  {model:<24} {len(flagged)} of {len(group)}{worst_text}")
    return lines
