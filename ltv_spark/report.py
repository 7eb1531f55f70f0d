"""An evaluation's report: ``index.html`` (self-contained: plots inlined) plus each plot as a PNG,
and the tables as CSV, in one folder per run: a local folder or an ``s3a://`` URI (ltv_spark.storage)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster driver

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ltv_spark.evaluation import REFERENCES, MetricTables, gain_curve, roc_curve, segment_values
from ltv_spark.storage import Location

PLOTS = ("gain_curves", "deciles", "churn_roc", "segments")


def write_report(
    folder: Path | str | Location, title: str, notes: list[str], tables: MetricTables
) -> Location:
    """Write the report of one evaluation run into ``folder``; returns the location of index.html."""
    folder = Location.of(folder)
    folder.mkdir()
    summary = tables.summary()
    segments = segment_table(tables)
    (folder / "metrics.csv").write_text(summary.to_csv(index=False))
    (folder / "metrics_per_run.csv").write_text(tables.runs.to_csv(index=False))
    (folder / "segments.csv").write_text(segments.to_csv(index=False))
    figures = {
        "gain_curves": plot_gains(tables),
        "deciles": plot_deciles(tables),
        "churn_roc": plot_roc(tables),
        "segments": plot_segments(segments),
    }
    images = {}
    for name, figure in figures.items():
        png = io.BytesIO()
        figure.savefig(png, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        (folder / f"{name}.png").write_bytes(png.getvalue())
        images[name] = base64.b64encode(png.getvalue()).decode()
    page = folder / "index.html"
    page.write_text(_page(title, notes, summary, tables, segments, images))
    return page


def seed_means(frame: pd.DataFrame, key: str) -> dict[str, pd.DataFrame]:
    """Per model, the table averaged over its seeds (one curve per model on a plot)."""
    numeric = [c for c in frame.columns if c not in ("model", "seed", key)]
    return {
        model: group.groupby(key, as_index=False)[numeric].mean()
        for model, group in frame.groupby("model", sort=False)
    }


def segment_table(tables: MetricTables) -> pd.DataFrame:
    rows = [
        {"model": model, **segment_values(g)} for model, g in seed_means(tables.gains, "percentile").items()
    ]
    return pd.DataFrame(rows)


def plot_gains(tables: MetricTables) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(7, 5.5))
    for model, gains in seed_means(tables.gains, "percentile").items():
        users, value = gain_curve(gains)
        axis.plot(users, value, label=model, linestyle="--" if model in REFERENCES else "-")
    axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8, label="random")
    axis.set(xlabel="share of users, by predicted value (highest first)", ylabel="share of true value")
    axis.set_title("Gain (Lorenz) curves")
    axis.legend(loc="lower right", fontsize=8)
    axis.grid(alpha=0.3)
    return figure


def plot_deciles(tables: MetricTables) -> plt.Figure:
    per_model = seed_means(tables.deciles, "decile")
    columns = min(3, len(per_model))
    rows = int(np.ceil(len(per_model) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axis, (model, deciles) in zip(axes.flat, per_model.items(), strict=False):
        x = deciles["decile"].to_numpy() + 1
        axis.bar(x - 0.2, deciles["mean_actual"], width=0.4, label="actual")
        axis.bar(x + 0.2, deciles["mean_predicted"], width=0.4, label="predicted")
        axis.set_title(model, fontsize=9)
        axis.set_xticks(x)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(per_model) :]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7)
    figure.suptitle("Mean value per decile of prediction (1 = lowest)")
    figure.tight_layout()
    return figure


def plot_roc(tables: MetricTables) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(6, 5.5))
    for model, churn in seed_means(tables.churn, "percentile").items():
        fpr, tpr = roc_curve(churn)
        source = tables.churn_from.get(model, "probability")
        label = model if source == "probability" else f"{model} (ranked by value)"
        axis.plot(fpr, tpr, label=label, linestyle="--" if model in REFERENCES else "-")
    axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title="Churn ROC (no purchase)")
    axis.legend(loc="lower right", fontsize=8)
    axis.grid(alpha=0.3)
    return figure


def plot_segments(segments: pd.DataFrame) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(7, 4))
    x = np.arange(len(segments))
    axis.bar(x - 0.2, segments["top_1pct_share"], width=0.4, label="top 1% by prediction")
    axis.bar(x + 0.2, segments["top_10pct_share"], width=0.4, label="top 10% by prediction")
    axis.set_xticks(x, segments["model"], rotation=20, ha="right", fontsize=8)
    axis.set(ylabel="share of all true value", title="Value captured by the top segments")
    axis.legend(fontsize=8)
    return figure


def _page(
    title: str,
    notes: list[str],
    summary: pd.DataFrame,
    tables: MetricTables,
    segments: pd.DataFrame,
    images: dict[str, str],
) -> str:
    def table(frame: pd.DataFrame) -> str:
        return frame.to_html(index=False, float_format=lambda v: f"{v:,.4f}", border=0, classes="t")

    figures = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}.png</figcaption>'
        "</figure>"
        for name, data in images.items()
    )
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1300px}}
table.t{{border-collapse:collapse;font-size:13px}} .t td,.t th{{padding:3px 8px;text-align:right}}
.t tr:nth-child(even){{background:#f3f3f3}} figure{{display:inline-block;margin:1em}}
img{{max-width:620px}}</style></head>
<body><h1>{html.escape(title)}</h1><ul>{items}</ul>
<h2>Metrics (mean and standard deviation over seeds)</h2>{table(summary)}
<h2>Top segments</h2>{table(segments)}
<h2>Plots</h2>{figures}
<h2>Every run</h2>{table(tables.runs)}
</body></html>
"""
