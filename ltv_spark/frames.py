"""Small DataFrame helpers shared by the stages."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

from pyspark.sql import DataFrame


def union_all(frames: Sequence[DataFrame]) -> DataFrame | None:
    """Union by column name; None for no frames (so callers can skip writing nothing)."""
    if not frames:
        return None
    return reduce(DataFrame.unionByName, frames)
