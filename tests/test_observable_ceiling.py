"""The sessions world's observable ceiling (ltv_spark.world.observable), checked against what the
generator computes another way: its exposure sums against a day-by-day loop, its refund delays
against draws, the history it reads against the rendered drops, and the ceiling itself against the
oracle, which knows every user's parameters: the posterior mean given the history must be
calibrated against the oracle's value, on average and among the users it ranks highest."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from ltv_spark.world import observable
from ltv_spark.world.model import BUY_LAG_DAYS, draw_user, engagement, make_catalog, season, truth_at
from ltv_spark.world.simulate import simulate_user, simulated_sessions

SEED, DAYS, START = 7, 540, dt.date(2025, 6, 1)
CUTOFF_DAY, HORIZON = 449, 90  # the demo's evaluation cutoff (2026-08-24) and horizon


def histories(users: range) -> list[tuple[int, observable.History]]:
    catalog = make_catalog(SEED)
    found = []
    for index in users:
        user = draw_user(SEED, index, DAYS)
        events, session_day, _ = simulated_sessions(user, catalog, SEED, START, DAYS)
        if events is not None and (session_day < CUTOFF_DAY).any():
            found.append((index, observable.history_before(events, session_day, CUTOFF_DAY)))
    return found


def it_sums_lift_times_engagement_as_a_day_by_day_loop_does():
    lift = season(START, np.arange(CUTOFF_DAY + HORIZON))
    decay = observable._decay_strata(observable.DECAY_STRATA)[[0, 6, 15, 0]]  # 21.25, 36.25, 58.75 days
    exposure = observable._Exposure(lift)
    signup = np.array([0.0, 100.0, 300.0, 440.0])
    decline = np.array([50.5, 2000.0, 310.25, 439.0])
    got = exposure.total(signup, decline + BUY_LAG_DAYS, decay, CUTOFF_DAY + HORIZON)
    for i in range(signup.size):
        day = np.arange(int(signup[i]), CUTOFF_DAY + HORIZON)
        expected = lift[day] @ engagement(day, decline[i] + BUY_LAG_DAYS, decay[i])
        assert got[i] == pytest.approx(expected, rel=1e-9)


def it_knows_how_likely_a_refund_is_to_show_up_by_an_age():
    rng = np.random.default_rng(0)
    delay_days = 1 + rng.poisson(10, 200_000) + rng.random(200_000)  # as ltv_spark.world.simulate
    ages = np.array([0.5, 5.0, 11.3, 14.0, 30.0])
    expected = [(delay_days < age).mean() for age in ages]
    assert observable._refund_logged_by(ages) == pytest.approx(expected, abs=0.005)


def it_reads_the_orders_before_the_cutoff_that_the_drops_show():
    catalog = make_catalog(SEED)
    cutoff_ms = CUTOFF_DAY * observable.DAY_MS
    for index, history in histories(range(60)):
        drops = simulate_user(draw_user(SEED, index, DAYS), catalog, SEED, START, DAYS)
        purchases = drops[(drops["event_type"] == "purchase") & (drops["sort_ms"] < cutoff_ms)]
        assert history.orders == purchases["order_id"].nunique()
        assert history.items == len(purchases)
        assert history.quantity == purchases["quantity"].astype(int).sum()
        refunds = drops[(drops["event_type"] == "refund") & (drops["sort_ms"] < cutoff_ms)]
        assert history.refunded.sum() == refunds["order_id"].nunique()
        assert history.views.min() >= 1 and (history.carts <= history.views).all()


def it_is_calibrated_against_the_oracle_on_average_and_at_the_top():
    catalog = make_catalog(SEED)
    oracle, ceiling, ess = [], [], []
    for index, history in histories(range(500)):
        rng = np.random.default_rng([SEED, index, 21])
        found = observable.observable_ceiling(history, catalog, START, DAYS, HORIZON, 400, rng)
        truth = truth_at(draw_user(SEED, index, DAYS), catalog, START, CUTOFF_DAY, HORIZON)
        oracle.append(truth["expected_value"])
        ceiling.append(found.expected_value)
        ess.append(found.effective_sample_size)
    oracle, ceiling = np.array(oracle), np.array(ceiling)
    top = ceiling >= np.quantile(ceiling, 0.8)
    for chosen in (np.ones_like(top), top):
        gap = oracle[chosen] - ceiling[chosen]  # E[oracle | history] = ceiling: mean 0 given any choice
        assert abs(gap.mean()) < 3 * gap.std() / np.sqrt(gap.size)
    assert np.corrcoef(oracle, ceiling)[0, 1] > 0.6
    assert np.median(ess) > 50  # of 400 particles
