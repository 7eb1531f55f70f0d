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

from ltv_spark.cross_sell import TOP_K
from ltv_spark.evaluation import REFERENCES, MetricTables, gain_curve, roc_curve, segment_values
from ltv_spark.segments import CALIBRATION_TOLERANCE
from ltv_spark.storage import Location

PLOTS = ("gain_curves", "deciles", "churn_roc", "segments")
LEARNING_CURVE_PLOT = "learning_curve"  # with the points of ltv learning-curve


def write_report(
    folder: Path | str | Location,
    title: str,
    notes: list[str],
    tables: MetricTables,
    learning_curve: pd.DataFrame | None = None,
) -> Location:
    """Write the report of one evaluation run into ``folder``; returns the location of index.html.

    ``learning_curve``: the run's points of ltv learning-curve (ltv_spark.pipeline.learning_curve),
    plotted with the oracle and ceiling of this evaluation where given."""
    folder = Location.of(folder)
    folder.mkdir()
    summary = tables.summary()
    segments = segment_table(tables)
    (folder / "metrics.csv").write_text(summary.to_csv(index=False))
    (folder / "metrics_per_run.csv").write_text(tables.runs.to_csv(index=False))
    (folder / "segments.csv").write_text(segments.to_csv(index=False))
    (folder / "deciles.csv").write_text(decile_errors(tables.deciles).to_csv(index=False))
    quality = tables.segment_summary()
    if quality is not None:
        (folder / "segment_quality.csv").write_text(quality.to_csv(index=False))
    if tables.cross_sell is not None:
        (folder / "cross_sell.csv").write_text(tables.cross_sell.to_csv(index=False))
        (folder / "cross_sell_categories.csv").write_text(tables.categories.to_csv(index=False))
    figures = {
        "gain_curves": plot_gains(tables),
        "deciles": plot_deciles(tables),
        "churn_roc": plot_roc(tables),
        "segments": plot_segments(segments),
    }
    if learning_curve is not None:
        references = summary.set_index("model")["normalized_gini"]
        figures[LEARNING_CURVE_PLOT] = plot_learning_curve(
            learning_curve, {m: references[m] for m in REFERENCES if m in references}
        )
    images = {}
    for name, figure in figures.items():
        png = figure_png(figure)
        (folder / f"{name}.png").write_bytes(png)
        images[name] = base64.b64encode(png).decode()
    page = folder / "index.html"
    page.write_text(_page(title, notes, summary, tables, segments, images, quality))
    return page


def figure_png(figure: plt.Figure) -> bytes:
    """The figure as PNG bytes; the figure is closed (a long driver draws many)."""
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return png.getvalue()


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


def decile_errors(deciles: pd.DataFrame) -> pd.DataFrame:
    """Every model, seed and decile with its relative error |mean predicted - mean actual| /
    mean actual (empty where the mean actual is 0): the terms the decile MAPE averages, so a
    seed's MAPE can be traced to the deciles that make it."""
    actual = deciles["mean_actual"].where(deciles["mean_actual"] != 0)
    error = (deciles["mean_predicted"] - deciles["mean_actual"]).abs() / actual.abs()
    return deciles.assign(relative_error=error)


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


def plot_learning_curve(points: pd.DataFrame, references: dict[str, float]) -> plt.Figure:
    """Normalized Gini against training examples (log scale), per model: the mean over seeds with
    its standard deviation as a band; the oracle and ceiling as horizontal lines where known."""
    figure, axis = plt.subplots(figsize=(7, 5))
    for model, group in points.groupby("model", sort=False):
        per_size = group.groupby("examples", as_index=False)["normalized_gini"].agg(["mean", "std"])
        x, mean = per_size["examples"].to_numpy(float), per_size["mean"].to_numpy(float)
        spread = per_size["std"].fillna(0.0).to_numpy(float)
        (line,) = axis.plot(x, mean, marker="o", label=model)
        axis.fill_between(x, mean - spread, mean + spread, color=line.get_color(), alpha=0.2)
    for name, gini in references.items():
        axis.axhline(gini, linestyle="--", color="grey" if name == "oracle" else "black", linewidth=1)
        axis.annotate(
            f"{name} {gini:.3f}", (0.01, gini), xycoords=("axes fraction", "data"), fontsize=8, va="bottom"
        )
    axis.set_xscale("log", base=2)
    sizes = points.groupby("examples")["size"].first()
    axis.set_xticks(sizes.index, [f"{n:,}\n{size:g}x" for n, size in sizes.items()], fontsize=8)
    axis.minorticks_off()
    axis.set(
        xlabel="training examples (user x cutoff), and x today's set",
        ylabel="normalized Gini on the evaluation cutoff",
    )
    axis.set_title("Learning curves: below 1x a share of the users, above 1x denser cutoffs")
    axis.legend(loc="lower right", fontsize=8)
    axis.grid(alpha=0.3)
    return figure


def _page(
    title: str,
    notes: list[str],
    summary: pd.DataFrame,
    tables: MetricTables,
    segments: pd.DataFrame,
    images: dict[str, str],
    quality: pd.DataFrame | None,
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
{_quality_section(quality, table)}
{_cross_sell_section(tables, table)}
<h2>Plots</h2>{figures}
<h2>Every run</h2>{table(tables.runs)}
</body></html>
"""


def _quality_section(quality: pd.DataFrame | None, table) -> str:
    """Segment quality, one model per table (mean over seeds); flagged rows are marked."""
    if quality is None:
        return ""
    parts = [
        "<h2>Segment quality</h2><p>Per segment: normalized Gini, predicted / true total (flagged where off "
        f"by more than {CALIBRATION_TOLERANCE:.0%}) and churn AUC, mean over seeds "
        "(every seed: segment_quality.csv and gold.evaluation_segments).</p>"
    ]
    for model, group in quality.groupby("model", sort=False):
        shown = group.drop(columns=["model"]).assign(flagged=group["flagged"].map({True: "OFF", False: ""}))
        parts.append(f"<h3>{html.escape(str(model))}</h3>{table(shown)}")
    return "".join(parts)


def _cross_sell_section(tables: MetricTables, table) -> str:
    """Next-category propensity: every model's mean AUC and top-k hit rate, and the AUC per category."""
    summary = tables.cross_sell_summary()
    if summary is None:
        return ""
    return (
        f"<h2>Next category (cross-sell)</h2><p>P(buys in a category in the horizon): AUC per category "
        f"(mean over the categories), and the share of the users who bought whose top {TOP_K} categories "
        "hold one they bought; mean and spread over seeds (every seed: cross_sell.csv, "
        f"cross_sell_categories.csv and gold.evaluation_categories).</p>{table(summary)}"
        f"<h3>AUC per category (mean over seeds)</h3>{table(tables.category_auc_table())}"
    )
