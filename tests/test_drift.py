"""describe the population stability index: binned on the reference's deciles, zero for the same
data, the textbook value for known shares, missing values in a bin of their own."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F

from ltv_spark.drift import MISSING, SHARE_FLOOR, bin_of, psi, reference_bins, stability


def it_is_the_textbook_sum_for_known_shares():
    expected, actual = {0: 0.5, 1: 0.5}, {0: 0.25, 1: 0.75}
    by_hand = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi(expected, actual) == pytest.approx(by_hand) == pytest.approx(0.2747, abs=1e-4)
    assert psi(expected, expected) == 0.0
    emptied = psi({0: 1.0}, {1: 1.0})  # every row moved to a bin the reference never had
    assert emptied == pytest.approx(2 * (1 - SHARE_FLOOR) * math.log(1 / SHARE_FLOOR))


def it_bins_by_the_edges_below_a_value_and_keeps_missing_values_apart(spark):
    frame = spark.createDataFrame([(0.5,), (1.0,), (1.5,), (9.0,), (None,), (float("nan"),)], "x double")
    bins = [r["b"] for r in frame.select(bin_of(F.col("x"), [1.0, 2.0]).alias("b")).collect()]
    assert bins == [0, 0, 1, 2, MISSING, MISSING]  # an edge's own value stays below it


def it_is_zero_for_the_reference_itself_and_large_for_a_shifted_copy(spark):
    rows = [(float(i), 0.0 if i % 10 else 5.0) for i in range(1, 201)] + [(None, 0.0)] * 20
    reference_frame = spark.createDataFrame(rows, "spend double, mostly_zero double")
    reference = reference_bins(reference_frame, ["spend", "mostly_zero"])
    assert len(reference["spend"].edges) == 9  # deciles of 200 distinct values
    assert reference["mostly_zero"].edges == [0.0]  # nine equal deciles merge into one edge
    assert reference["spend"].shares[MISSING] == pytest.approx(20 / 220)
    assert sum(reference["spend"].shares.values()) == pytest.approx(1.0)

    same = stability(reference, reference_frame)
    assert same == {"spend": pytest.approx(0.0, abs=1e-12), "mostly_zero": pytest.approx(0.0, abs=1e-12)}
    shifted = reference_frame.select((F.col("spend") + 100).alias("spend"), "mostly_zero")
    moved = stability(reference, shifted)
    assert moved["spend"] > 1.0  # half the rows above every edge: far beyond 0.25
    assert moved["mostly_zero"] == pytest.approx(0.0, abs=1e-12)
