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
