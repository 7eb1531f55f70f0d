"""Small DataFrame helpers shared by the stages."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

MICROS_PER_DAY = 86_400e6


def union_all(frames: Sequence[DataFrame]) -> DataFrame | None:
    """Union by column name; None for no frames (so callers can skip writing nothing)."""
    if not frames:
        return None
    return reduce(DataFrame.unionByName, frames)


def days_between(later: Column, earlier: Column) -> Column:
    """``later - earlier`` in (fractional) days, for two timestamp columns."""
    return (F.unix_micros(later) - F.unix_micros(earlier)) / MICROS_PER_DAY


def distinct_count(column: Column | str) -> Column:
    """``countDistinct`` for an aggregation with several of them: distinct values per group.

    Spark plans each ``countDistinct`` of another column as one more copy of every input row
    (its Expand operator), so five of them read the events six times over; a set per group reads
    them once (measured on the demo world's 1.5 million events: 5.3 s against 3.2 s). Nulls are not
    counted, as in ``countDistinct``.
    """
    return F.size(F.collect_set(column)).cast("long")
