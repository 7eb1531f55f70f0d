"""The purchases-only world: BG/NBD purchases and Gamma-Gamma spend with known parameters, where
the best possible prediction from a customer's own history is in closed form (the ceiling).

A customer is born at a uniform time in the first 85% of the world and buys then. Repeat purchases
follow a Poisson process of rate lambda ~ Gamma(r, alpha) per week; after each repeat purchase
the customer drops out for good with probability p ~ Beta(a, b) (Fader, Hardie & Lee 2005, "Counting
your customers the easy way"). Each purchase is worth z ~ Gamma(p_spend, nu) dollars with nu ~
Gamma(q, gamma) per customer, independent of the purchases (Fader, Hardie & Lee 2005, "RFM and
CLV", after Colombo & Jiang 1999).

Two predictions of the value in [cutoff, cutoff + horizon) come with the world:

- the oracle knows lambda, p, nu and whether the customer is still alive (no model can);
- the ceiling knows only the parameters of the population and the customer's purchases before
  the cutoff: the BG/NBD conditional expectation (eq. 10 of the paper) times the Gamma-Gamma
  posterior mean spend over all of the customer's purchases. It is the Bayes-optimal prediction
  of the observable history, so a model that matches it has learned all there is to learn.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import hyp2f1

from ltv_spark.config import BtydWorldConfig
from ltv_spark.world.model import user_rng

WEEK_DAYS = 7.0
BIRTH_SHARE = 0.85  # customers are born in the first 85% of the world, as in the session world
BTYD_TRUTH_SCHEMA = (
    "user_id string, cutoff date, horizon_days int, signup_date date, purchase_rate double, "
    "dropout_prob double, spend_rate double, alive_at_cutoff boolean, repeat_purchases int, "
    "recency_weeks double, age_weeks double, mean_spend double, expected_orders double, "
    "expected_value double, p_buy double, ceiling_orders double, ceiling_value double, "
    "ceiling_p_buy double"
)


@dataclass(frozen=True)
class BtydCustomer:
    """One customer's hidden parameters and whole purchase history (days since the world's start)."""

    user_index: int
    purchase_rate: float  # lambda, purchases per week while alive
    dropout_prob: float  # p, after each repeat purchase
    spend_rate: float  # nu: each purchase is worth Gamma(p_spend, nu)
    purchase_days: np.ndarray  # (n,) float, the first at birth, all inside the world
    spends: np.ndarray  # (n,) dollars
    dropout_day: float  # when the customer dropped out (inf: never, inside the world)

    @property
    def birth_day(self) -> float:
        return float(self.purchase_days[0])


def draw_customer(seed: int, user_index: int, days: int, params: BtydWorldConfig) -> BtydCustomer:
    """Customer ``user_index`` of the world ``seed`` (a pure function, like the session world's users)."""
    rng = user_rng(seed, user_index, 10)
    rate = float(rng.gamma(params.r, 1.0 / params.alpha))
    dropout = float(rng.beta(params.a, params.b))
    spend_rate = float(rng.gamma(params.q, 1.0 / params.gamma))
    birth = float(rng.uniform(0.0, days * BIRTH_SHARE))
    times, dropout_day = [birth], float("inf")
    now = birth
    while True:
        now += rng.exponential(WEEK_DAYS / rate)
        if now >= days:
            break
        times.append(now)
        if rng.random() < dropout:
            dropout_day = now
            break
    spends = np.round(rng.gamma(params.p, 1.0 / spend_rate, len(times)), 2).clip(0.01)
    return BtydCustomer(user_index, rate, dropout, spend_rate, np.array(times), spends, dropout_day)


def purchase_rows(customer: BtydCustomer) -> pd.DataFrame:
    """The customer's purchases in the frame ``simulate._finish`` renders: one item per order."""
    n = len(customer.purchase_days)
    return pd.DataFrame(
        {
            "sort_ms": (customer.purchase_days * 86_400_000).astype(np.int64),
            "event_type": "purchase",
            "product": 0,
            "price": customer.spends,
            "quantity": 1,
            "order": np.arange(n),
        }
    )


def expected_repeat_purchases(
    params: BtydWorldConfig, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, t: float
) -> np.ndarray:
    """E[purchases in (age, age + t] | x repeat purchases, the last at t_x, observed until age]:
    eq. 10 of Fader, Hardie & Lee (2005); every time in weeks since the first purchase."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, age = (np.asarray(v, dtype=float) for v in (x, t_x, age))
    ratio = (alpha + age) / (alpha + age + t)
    numerator = (
        (a + b + x - 1)
        / (a - 1)
        * (1 - ratio ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + age + t)))
    )
    return numerator / _dead_odds_plus_one(params, x, t_x, age)


def probability_alive(params: BtydWorldConfig, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    """P(still alive at ``age`` | x, t_x, age): eq. 11 of the paper."""
    return 1.0 / _dead_odds_plus_one(params, *(np.asarray(v, dtype=float) for v in (x, t_x, age)))


def probability_of_purchase(
    params: BtydWorldConfig, x: np.ndarray, t_x: np.ndarray, age: np.ndarray, t: float
) -> np.ndarray:
    """P(at least one purchase in (age, age + t] | history): alive, and the Gamma(r + x, alpha + age)
    posterior rate gives a first purchase within t."""
    x, age = np.asarray(x, dtype=float), np.asarray(age, dtype=float)
    none_if_alive = ((params.alpha + age) / (params.alpha + age + t)) ** (params.r + x)
    return probability_alive(params, x, t_x, age) * (1.0 - none_if_alive)


def expected_spend(params: BtydWorldConfig, n: np.ndarray, mean_spend: np.ndarray) -> np.ndarray:
    """E[value of the next purchase | n purchases of mean ``mean_spend``]: nu's posterior is
    Gamma(q + n p, gamma + n mean), so E[p / nu] = p (gamma + n mean) / (q + n p - 1)."""
    n, mean_spend = np.asarray(n, dtype=float), np.asarray(mean_spend, dtype=float)
    return params.p * (params.gamma + n * mean_spend) / (params.q + n * params.p - 1.0)


def _dead_odds_plus_one(
    params: BtydWorldConfig, x: np.ndarray, t_x: np.ndarray, age: np.ndarray
) -> np.ndarray:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    odds = np.where(x > 0, a / (b + np.maximum(x, 1) - 1) * ((alpha + age) / (alpha + t_x)) ** (r + x), 0.0)
    return 1.0 + odds


def truth_row(
    customer: BtydCustomer, params: BtydWorldConfig, start: dt.date, cutoff_day: int, horizon_days: int
) -> dict:
    """Oracle and ceiling for a customer born before the cutoff (BTYD_TRUTH_SCHEMA without ids)."""
    seen = customer.purchase_days < cutoff_day
    purchases, spends = customer.purchase_days[seen], customer.spends[seen]
    x = len(purchases) - 1
    t_x = (purchases[-1] - purchases[0]) / WEEK_DAYS
    age = (cutoff_day - purchases[0]) / WEEK_DAYS
    t = horizon_days / WEEK_DAYS
    alive = customer.dropout_day >= cutoff_day
    lam, p = customer.purchase_rate, customer.dropout_prob
    oracle_orders = (1.0 - np.exp(-lam * p * t)) / p if alive else 0.0
    ceiling_orders = float(expected_repeat_purchases(params, x, t_x, age, t))
    spend = float(expected_spend(params, x + 1, spends.mean()))
    return {
        "signup_date": start + dt.timedelta(days=int(customer.birth_day)),
        "purchase_rate": lam,
        "dropout_prob": p,
        "spend_rate": customer.spend_rate,
        "alive_at_cutoff": bool(alive),
        "repeat_purchases": x,
        "recency_weeks": t_x,
        "age_weeks": age,
        "mean_spend": float(spends.mean()),
        "expected_orders": oracle_orders,
        "expected_value": oracle_orders * params.p / customer.spend_rate,
        "p_buy": float(1.0 - np.exp(-lam * t)) if alive else 0.0,
        "ceiling_orders": ceiling_orders,
        "ceiling_value": ceiling_orders * spend,
        "ceiling_p_buy": float(probability_of_purchase(params, x, t_x, age, t)),
    }
