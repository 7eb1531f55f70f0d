"""Population stability index (PSI): how far a column's distribution today has moved from a
reference (the data a model was trained on).

    PSI = sum over bins of (a - e) * ln(a / e)

with e the reference's share of rows in a bin and a today's. Bins are the reference's deciles
(approximate quantiles; repeated edges are merged, so a mostly-zero feature gets fewer bins) and
one bin of its own for missing values. Only counts per (column, bin) reach the driver, never rows.
The usual reading: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a shift to look at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

BINS = 10
MISSING = -1  # the bin of null and NaN values
SHARE_FLOOR = 1e-4  # an empty bin's share, so that ln(a / e) stays finite
RELATIVE_ERROR = 1e-3  # of the reference quantiles (approxQuantile)


@dataclass(frozen=True)
class Bins:
    """One column's reference: its bin edges and the share of reference rows in each bin."""

    edges: list[float]  # ascending; bin i holds values above i edges (MISSING: null / NaN)
    shares: dict[int, float]


def reference_bins(frame: DataFrame, columns: Sequence[str], bins: int = BINS) -> dict[str, Bins]:
    """Per column of ``frame``: decile edges and the reference's share in each bin."""
    quantiles = [i / bins for i in range(1, bins)]
    numeric = frame.select(*[F.col(c).cast("double").alias(c) for c in columns])
    found = numeric.approxQuantile(list(columns), quantiles, RELATIVE_ERROR)
    edges = {column: sorted(set(values)) for column, values in zip(columns, found, strict=True)}
    shares = bin_shares(frame, edges)
    return {column: Bins(edges[column], shares[column]) for column in columns}


def bin_shares(frame: DataFrame, edges: dict[str, list[float]]) -> dict[str, dict[int, float]]:
    """Per column: the share of ``frame``'s rows in each bin of its edges (one Spark job)."""
    pairs = [
        F.struct(F.lit(column).alias("column"), bin_of(F.col(column).cast("double"), cuts).alias("bin"))
        for column, cuts in edges.items()
    ]
    long = frame.select(F.explode(F.array(*pairs)).alias("p")).select("p.column", "p.bin")
    counts = long.groupBy("column", "bin").agg(F.count(F.lit(1)).alias("rows")).collect()
    totals: dict[str, int] = {}
    for row in counts:
        totals[row["column"]] = totals.get(row["column"], 0) + row["rows"]
    shares: dict[str, dict[int, float]] = {column: {} for column in edges}
    for row in counts:
        shares[row["column"]][row["bin"]] = row["rows"] / totals[row["column"]]
    return shares


def bin_of(value: Column, edges: Sequence[float]) -> Column:
    """The bin of ``value``: how many edges lie below it; MISSING for null or NaN."""
    above = sum((value > F.lit(edge)).cast("int") for edge in edges) if edges else F.lit(0)
    return F.when(value.isNull() | F.isnan(value), F.lit(MISSING)).otherwise(above)


def psi(expected: dict[int, float], actual: dict[int, float]) -> float:
    """The PSI of ``actual`` shares against ``expected`` shares, bin by bin (a bin missing from one
    side has the floor share there)."""
    total = 0.0
    for bin_ in expected.keys() | actual.keys():
        e = max(expected.get(bin_, 0.0), SHARE_FLOOR)
        a = max(actual.get(bin_, 0.0), SHARE_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def stability(reference: dict[str, Bins], current: DataFrame) -> dict[str, float]:
    """Per column of ``reference``: the PSI of ``current`` against it."""
    shares = bin_shares(current, {column: bins.edges for column, bins in reference.items()})
    return {column: psi(bins.shares, shares[column]) for column, bins in reference.items()}
