"""describe the purchases-only world: its closed-form ceiling against the published BG/NBD figure
and against numerical integration over the posterior; on 20,000 generated customers the fitted
BG/NBD ranks them within 0.01 Gini of that ceiling."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from scipy import stats
from scipy.integrate import trapezoid

from ltv_spark.baselines import BtydBaseline, rfm_summary
from ltv_spark.config import BtydWorldConfig, WorldConfig
from ltv_spark.labels import user_labels
from ltv_spark.metrics import normalized_gini, total_ratio
from ltv_spark.world import events_frame, truth_frame
from ltv_spark.world.btyd import (
    draw_customer,
    expected_repeat_purchases,
    expected_spend,
    probability_of_purchase,
)

PARAMS = BtydWorldConfig()  # the published CDNOW estimates (tests/test_baselines.py)
WORLD = WorldConfig(model="btyd", users=20_000, dirty_rate=0.0, users_per_partition=5_000)
CUTOFF, HORIZON = dt.date(2026, 5, 1), 180  # the world's truth cutoff: three in four customers born


def it_reproduces_the_published_expected_purchases_of_a_cdnow_customer():
    # Fader, Hardie & Lee (2005), section 5: x = 2, t_x = 30.43, T = 38.86 weeks -> 1.226 in 39 weeks
    assert expected_repeat_purchases(PARAMS, 2, 30.43, 38.86, 39.0) == pytest.approx(1.226, abs=5e-4)


def _posterior_by_quadrature(x: int, t_x: float, age: float, t: float) -> tuple[float, float]:
    """E[purchases in t] and P(buy in t) by integrating the BG/NBD likelihood over (lambda, p)
    (trapezoids on log lambda and on p, finer near p = 0 where Beta(a < 1) is steep)."""
    log_lam = np.linspace(np.log(1e-20), np.log(20.0), 2500)
    p_grid = np.concatenate(
        [np.geomspace(1e-9, 0.01, 600, endpoint=False), np.linspace(0.01, 1 - 1e-9, 2000)]
    )
    lam, p = np.exp(log_lam)[:, None], p_grid[None, :]
    prior = (
        stats.gamma.pdf(lam, PARAMS.r, scale=1 / PARAMS.alpha) * lam * stats.beta.pdf(p, PARAMS.a, PARAMS.b)
    )
    alive = (1 - p) ** x * lam**x * np.exp(-lam * age)
    dead = p * (1 - p) ** (x - 1) * lam**x * np.exp(-lam * t_x) if x > 0 else 0.0

    def integral(values: np.ndarray) -> float:
        return float(trapezoid(trapezoid(values, p_grid, axis=1), log_lam))

    evidence = integral(prior * (alive + dead))
    purchases = integral(prior * alive * (1 - np.exp(-lam * p * t)) / p) / evidence
    buys = integral(prior * alive * (1 - np.exp(-lam * t))) / evidence
    return purchases, buys


@pytest.mark.parametrize("x, t_x, age", [(0, 0.0, 30.0), (2, 30.43, 38.86), (6, 50.0, 52.0), (3, 5.0, 60.0)])
def it_agrees_with_numerical_integration_over_the_posterior(x, t_x, age):
    purchases, buys = _posterior_by_quadrature(x, t_x, age, 52.0)
    assert expected_repeat_purchases(PARAMS, x, t_x, age, 52.0) == pytest.approx(purchases, rel=2e-3)
    assert probability_of_purchase(PARAMS, x, t_x, age, 52.0) == pytest.approx(buys, rel=2e-3)


def it_takes_the_posterior_mean_spend_over_every_purchase():
    # nu | spends ~ Gamma(q + n p, gamma + sum): E[p / nu] by integrating over that posterior
    n, mean = 4, 52.0
    shape, rate = PARAMS.q + n * PARAMS.p, PARAMS.gamma + n * mean
    nu = np.linspace(1e-4, 3.0, 200_000)
    density = stats.gamma.pdf(nu, shape, scale=1 / rate)
    by_integration = (density * PARAMS.p / nu).sum() / density.sum()
    assert expected_spend(PARAMS, n, mean) == pytest.approx(by_integration, rel=1e-4)
    assert expected_spend(PARAMS, 0, 0.0) == pytest.approx(PARAMS.p * PARAMS.gamma / (PARAMS.q - 1))


def it_draws_each_customer_the_same_way_wherever_it_runs():
    first, again = draw_customer(7, 42, 540, PARAMS), draw_customer(7, 42, 540, PARAMS)
    assert np.array_equal(first.purchase_days, again.purchase_days)
    assert np.array_equal(first.spends, again.spends)
    assert np.all(np.diff(first.purchase_days) > 0) and first.purchase_days[-1] < 540


@pytest.fixture(scope="module")
def customers(spark) -> pd.DataFrame:
    """20,000 customers: the fitted BG/NBD's prediction, the oracle, the ceiling and the truth."""
    events = events_frame(spark, WORLD).select(
        "user_id",
        "event_type",
        F.to_timestamp("event_time").alias("event_time"),
        F.col("price").cast("double").alias("price"),
        F.col("quantity").cast("double").alias("quantity"),
        "order_id",
        "category",  # the labels carry the categories bought (the cross-sell label)
    )
    events = events.localCheckpoint()
    summary = rfm_summary(events, CUTOFF, 7).toPandas()
    model = BtydBaseline.fit(summary, horizon=HORIZON / 7)
    fitted = model.predict(summary)[["user_id", "predicted"]]
    actual = user_labels(events, CUTOFF, HORIZON).select("user_id", "net_value").toPandas()
    truth = truth_frame(spark, WORLD, CUTOFF, HORIZON).select("user_id", "expected_value", "ceiling_value")
    return actual.merge(fitted, on="user_id").merge(truth.toPandas(), on="user_id")


def it_ranks_customers_within_a_hundredth_of_the_ceiling_with_a_fitted_bg_nbd(customers):
    actual = customers["net_value"].to_numpy()
    ginis = {
        name: normalized_gini(actual, customers[column].to_numpy())
        for name, column in (
            ("fitted", "predicted"),
            ("ceiling", "ceiling_value"),
            ("oracle", "expected_value"),
        )
    }
    print(f"\n{len(customers):,} customers, normalized Gini:", ginis)
    assert len(customers) > 12_000
    assert abs(ginis["fitted"] - ginis["ceiling"]) < 0.01
    assert ginis["oracle"] > ginis["ceiling"]  # the hidden state tells more than the history


def it_expects_in_total_what_the_customers_then_spend(customers):
    # the ceiling is a conditional expectation: summed over 12,000+ customers it meets the truth
    actual = customers["net_value"].to_numpy()
    ratios = {
        column: total_ratio(actual, customers[column].to_numpy())
        for column in ("ceiling_value", "expected_value")
    }
    print("\ntotal predicted / total true:", ratios)
    assert all(0.95 < ratio < 1.05 for ratio in ratios.values()), ratios
