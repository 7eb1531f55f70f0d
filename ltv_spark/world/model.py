"""The generated world's latent model: catalog, seasonality, users' hidden parameters, and the truth.

Each user browses in sessions and buys in orders. Both rates follow a hidden engagement that is 1
until a decline starts (a memoryless hazard) and then fades exponentially; buying fades ``BUY_LAG``
days after browsing does, so sessions and carts announce a churn before purchases do. Spend per
order, basket size, refunds and category taste vary by user (heavy and one-off buyers); weekly and
year-end seasonality scale every rate.

Everything is a pure function of (seed, user index), so any worker can draw any user, and the
expected future value for a cutoff can be computed exactly from the same parameters.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

N_CATEGORIES = 20
PRODUCTS_PER_CATEGORY = 50
BUY_LAG_DAYS = 21.0
FIRST_ORDER_PROB = 0.5
WEEKDAY_FACTOR = np.array([0.95, 0.9, 0.9, 0.95, 1.05, 1.2, 1.1])  # Monday .. Sunday
PEAK_DAY_OF_YEAR = 335  # early December
PEAK_WIDTH_DAYS = 20.0
PEAK_LIFT = 0.35
TRUTH_SAMPLES = 256  # Monte Carlo draws of the future decline time, for P(buy)
# The users' priors (draw_user), which ltv_spark.world.observable integrates over: Gamma(shape,
# scale), Beta(a, b), uniform(low, high).
SIGNUP_SHARE = 0.85  # signup: a uniform day of the first 85% of the world
SESSION_RATE = (1.5, 0.08 / 1.5)
ORDER_RATE = (0.6, 0.015 / 0.6)
HAZARD = (2.0, (1 / 240) / 2.0)
DECAY_DAYS = (20.0, 60.0)
VIEWS_PER_SESSION = (2.0, 1.0)
CART_PROB = (2.0, 8.0)
EXTRA_ITEMS = (1.0, 0.5)
EXTRA_QUANTITY = (1.0, 0.3)
REFUND_PROB = (1.0, 15.0)
CATEGORY_CONCENTRATION = 0.3


@dataclass(frozen=True)
class Catalog:
    """Products in categories with fixed prices (same for every worker, derived from the seed)."""

    product_category: np.ndarray  # (P,) int
    product_price: np.ndarray  # (P,) float, dollars
    category_mean_price: np.ndarray  # (C,) mean price of the products in each category


@dataclass(frozen=True)
class UserParams:
    """One user's hidden parameters (all rates per day)."""

    user_index: int
    signup_day: int
    session_rate: float  # browsing sessions per day while engaged
    order_rate: float  # orders per day while engaged
    decline_hazard: float  # per day; the decline starts at signup + Exp(hazard)
    decline_day: float  # the sampled start of the decline (may lie beyond the world)
    decay_days: float  # e-folding time of engagement once it declines
    views_per_session: float
    cart_prob: float
    extra_items: float  # items per order = 1 + Poisson(extra_items)
    extra_quantity: float  # quantity per item = 1 + Poisson(extra_quantity)
    refund_prob: float
    category_pref: np.ndarray  # (C,) probabilities

    def expected_order_value(self, catalog: Catalog) -> float:
        """Mean gross value of one order (items x quantity x price of the preferred categories)."""
        mean_price = float(self.category_pref @ catalog.category_mean_price)
        return (1.0 + self.extra_items) * (1.0 + self.extra_quantity) * mean_price


def make_catalog(seed: int) -> Catalog:
    rng = np.random.default_rng([seed, 0xCA7A106])
    level = np.exp(rng.uniform(2.0, 4.5, N_CATEGORIES))
    category = np.repeat(np.arange(N_CATEGORIES), PRODUCTS_PER_CATEGORY)
    price = np.round(level[category] * rng.lognormal(0.0, 0.35, category.size), 2)
    mean_price = np.array([price[category == c].mean() for c in range(N_CATEGORIES)])
    return Catalog(category, price, mean_price)


def season(start: dt.date, day: np.ndarray) -> np.ndarray:
    """Rate multiplier of each day index: weekday pattern times a year-end peak."""
    first_weekday = start.weekday()
    first_doy = start.timetuple().tm_yday
    weekday = WEEKDAY_FACTOR[(first_weekday + day.astype(int)) % 7]
    doy = (first_doy + day) % 365.25
    distance = np.minimum(np.abs(doy - PEAK_DAY_OF_YEAR), 365.25 - np.abs(doy - PEAK_DAY_OF_YEAR))
    return weekday * (1.0 + PEAK_LIFT * np.exp(-((distance / PEAK_WIDTH_DAYS) ** 2)))


def user_rng(seed: int, user_index: int, stream: int) -> np.random.Generator:
    """An independent random stream per (seed, user, purpose): results do not depend on partitioning."""
    return np.random.default_rng([seed, user_index, stream])


def draw_user(seed: int, user_index: int, days: int) -> UserParams:
    rng = user_rng(seed, user_index, 0)
    signup = int(rng.integers(0, int(days * SIGNUP_SHARE)))
    hazard = float(rng.gamma(*HAZARD))
    return UserParams(
        user_index=user_index,
        signup_day=signup,
        session_rate=float(rng.gamma(*SESSION_RATE)),
        order_rate=float(rng.gamma(*ORDER_RATE)),
        decline_hazard=hazard,
        decline_day=signup + float(rng.exponential(1.0 / hazard)),
        decay_days=float(rng.uniform(*DECAY_DAYS)),
        views_per_session=float(rng.gamma(*VIEWS_PER_SESSION)),
        cart_prob=float(rng.beta(*CART_PROB)),
        extra_items=float(rng.gamma(*EXTRA_ITEMS)),
        extra_quantity=float(rng.gamma(*EXTRA_QUANTITY)),
        refund_prob=float(rng.beta(*REFUND_PROB)),
        category_pref=rng.dirichlet(np.full(N_CATEGORIES, CATEGORY_CONCENTRATION)),
    )


def engagement(day: np.ndarray, decline_start: np.ndarray | float, decay_days: float) -> np.ndarray:
    """1 before the decline, then exp(-(day - start) / decay)."""
    since = np.asarray(day, dtype=float) - decline_start
    return np.where(since <= 0, 1.0, np.exp(-np.clip(since, 0, None) / decay_days))


def expected_buy_engagement(
    day: np.ndarray, known_from: float, hazard: float, decay_days: float
) -> np.ndarray:
    """E[buying engagement at ``day``] when the decline is only known not to have started by ``known_from``.

    The decline time is known_from + Exp(hazard) (memoryless), buying lags it by BUY_LAG_DAYS.
    With a = day - lag - known_from: E = exp(-h a) + h (exp(-a/d) - exp(-h a)) / (h - 1/d).
    """
    a = np.clip(np.asarray(day, dtype=float) - BUY_LAG_DAYS - known_from, 0.0, None)
    inverse_decay = 1.0 / decay_days
    survive = np.exp(-hazard * a)
    if abs(hazard - inverse_decay) < 1e-9:
        declined = hazard * a * np.exp(-hazard * a)
    else:
        declined = hazard * (np.exp(-a * inverse_decay) - survive) / (hazard - inverse_decay)
    return survive + declined


def truth_at(user: UserParams, catalog: Catalog, start: dt.date, cutoff_day: int, horizon: int) -> dict:
    """The user's expected net value and P(buy) over [cutoff, cutoff + horizon), given the state at cutoff.

    What is known at the cutoff: the parameters, and the decline time if it already started.
    Refunds are netted at the user's refund rate (a refund straddling the window edge is counted
    with its order).
    """
    window = np.arange(cutoff_day, cutoff_day + horizon)
    active = window >= user.signup_day
    rate = user.order_rate * season(start, window) * active
    known_from = max(cutoff_day, user.signup_day)
    if user.decline_day < cutoff_day:
        buy_engagement = engagement(window, user.decline_day + BUY_LAG_DAYS, user.decay_days)
    else:
        buy_engagement = expected_buy_engagement(window, known_from, user.decline_hazard, user.decay_days)
    first_order = FIRST_ORDER_PROB if cutoff_day <= user.signup_day < cutoff_day + horizon else 0.0
    expected_orders = float(rate @ buy_engagement) + first_order
    net_order_value = user.expected_order_value(catalog) * (1.0 - user.refund_prob)
    return {
        "expected_orders": expected_orders,
        "expected_value": expected_orders * net_order_value,
        "p_buy": _p_buy(user, window, rate, known_from, cutoff_day, first_order),
        "engagement_at_cutoff": float(
            engagement(np.array([cutoff_day]), user.decline_day, user.decay_days)[0]
        )
        if user.decline_day < cutoff_day
        else 1.0,
    }


def _p_buy(
    user: UserParams, window: np.ndarray, rate: np.ndarray, known_from: float, cutoff_day: int, first: float
) -> float:
    """P(at least one order in the window): Monte Carlo over the unknown decline time."""
    if user.decline_day < cutoff_day:
        starts = np.array([user.decline_day])
    else:
        rng = user_rng(0, user.user_index, 99)  # fixed: the truth must not depend on the caller
        starts = known_from + rng.exponential(1.0 / user.decline_hazard, TRUTH_SAMPLES)
    buy = engagement(window[None, :], starts[:, None] + BUY_LAG_DAYS, user.decay_days)
    expected = buy @ rate
    return float(1.0 - np.mean(np.exp(-expected)) * (1.0 - first))
