"""The observable ceiling of the sessions world: each user's expected net value in [T, T + H) given
only that user's events before T, under the generator's own model and priors (ltv_spark.world.model).

No model can do better on average: it is the posterior mean of the oracle's value given what a
model sees. The oracle knows each user's parameters; here they are integrated out:

- rates and spend are conjugate given the engagement curve: the session rate, the order rate and the
  views per session are Gamma-Poisson (integrated in closed form), items and quantities per order
  are Gamma-Poisson, category taste is Dirichlet-multinomial, and none of the spend parameters
  depends on engagement, so their posterior means multiply the expected number of orders;
- the rest, the signup day, the start of the decline, its e-folding time and the cart probability,
  is integrated by importance sampling: particles drawn from a defensive mixture of the prior and a
  proposal that covers the user's history, weighted by the likelihood of every session, order, view
  and cart before T (the hazard of the decline is integrated analytically: the decline's delay after
  signup is then Lomax distributed);
- the refund rate's posterior (refunds show up days after their order: recent orders are censored)
  is computed on a grid.

What is approximated, on purpose: the decay time runs over 16 equal strata of its uniform prior, the
dirt the generator adds (a few rows in a thousand) is not modelled, and the sessions are the
simulator's own (a sessionizer recovers them nearly exactly). The estimate is Monte Carlo: the
effective sample size is returned with it, and two independent particle sets give its error.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from ltv_spark.world.model import (
    BUY_LAG_DAYS,
    CART_PROB,
    CATEGORY_CONCENTRATION,
    DECAY_DAYS,
    EXTRA_ITEMS,
    EXTRA_QUANTITY,
    FIRST_ORDER_PROB,
    HAZARD,
    N_CATEGORIES,
    ORDER_RATE,
    PRODUCTS_PER_CATEGORY,
    REFUND_PROB,
    SESSION_RATE,
    SIGNUP_SHARE,
    VIEWS_PER_SESSION,
    Catalog,
    UserParams,
    season,
    user_rng,
)
from ltv_spark.world.simulate import REFUND_DELAY_MEAN_DAYS, simulated_sessions

DAY_MS = 86_400_000
DECAY_STRATA = 16
CEILING_STREAM = 20  # user_rng streams 20 (the sample), 21, 22 (the particle sets)
ROUNDS = 3  # population Monte Carlo: a broad proposal, then two fitted to the weights before
REFUND_GRID = (np.arange(400) + 0.5) / 400


@dataclass(frozen=True)
class History:
    """A user's events before the cutoff, reduced to what the generator's likelihood reads."""

    cutoff_day: int
    session_day: np.ndarray  # (S,) the day each session started
    is_order: np.ndarray  # (S,) bool
    views: np.ndarray  # (S,) views drawn (1 + Poisson(views_per_session x engagement))
    carts: np.ndarray  # (S,) of those, carted (Bernoulli(cart_prob x engagement))
    orders: int
    items: int  # items over every order (1 + Poisson(extra_items) each)
    quantity: int  # units over every item (1 + Poisson(extra_quantity) each)
    category_draws: np.ndarray  # (C,) products drawn per category: views and items
    order_ms: np.ndarray  # (O,) when each order was placed
    refunded: np.ndarray  # (O,) bool: its refund was logged before the cutoff

    @property
    def sessions(self) -> int:
        return int(self.session_day.size)


@dataclass(frozen=True)
class Ceiling:
    """The posterior mean of the oracle's value, P(buy), and the particles' effective sample size."""

    expected_orders: float
    expected_value: float
    p_buy: float
    effective_sample_size: float


def history_before(events: pd.DataFrame, session_day: np.ndarray, cutoff_day: int) -> History:
    """The simulator's record of a user (ltv_spark.world.simulate.simulated_sessions) before a cutoff."""
    kept = np.flatnonzero(session_day < cutoff_day)
    position = np.full(session_day.size, -1)
    position[kept] = np.arange(kept.size)
    rows = events[position[events["session"].to_numpy()] >= 0]
    session = position[rows["session"].to_numpy()]
    kind = rows["event_type"].to_numpy()
    drawn = ~rows["copy"].to_numpy(bool)
    purchase = kind == "purchase"
    view_draws = (kind == "view") & drawn
    order_of_item = rows["order"].to_numpy()[purchase]
    orders, first = np.unique(order_of_item, return_index=True)
    refunds = events[(events["event_type"] == "refund") & (events["sort_ms"] < cutoff_day * DAY_MS)]
    products = rows["product"].to_numpy()[view_draws | purchase]
    return History(
        cutoff_day=cutoff_day,
        session_day=session_day[kept],
        is_order=np.bincount(session[purchase], minlength=kept.size) > 0,
        views=np.bincount(session[view_draws], minlength=kept.size),
        carts=np.bincount(session[(kind == "cart") & drawn], minlength=kept.size),
        orders=int(orders.size),
        items=int(purchase.sum()),
        quantity=int(rows["quantity"].to_numpy()[purchase].sum()),
        category_draws=np.bincount(products // PRODUCTS_PER_CATEGORY, minlength=N_CATEGORIES),
        order_ms=rows["sort_ms"].to_numpy()[purchase][first],
        refunded=np.isin(orders, refunds["order"].to_numpy()),
    )


def observable_ceiling(
    history: History,
    catalog: Catalog,
    start: dt.date,
    days: int,
    horizon: int,
    particles: int,
    rng: np.random.Generator,
) -> Ceiling:
    """E[net value and P(buy) in [T, T + H) | the history], T = the history's cutoff day."""
    orders, p_no_order, weight = _order_posterior(history, start, days, horizon, particles, rng)
    expected_orders = float(weight @ orders)
    value = expected_orders * _expected_net_order_value(history, catalog)
    ess = float(1.0 / np.sum(weight**2))
    return Ceiling(expected_orders, value, float(1.0 - weight @ p_no_order), ess)


def _expected_net_order_value(history: History, catalog: Catalog) -> float:
    """Posterior mean of items x quantity x price x (1 - refund rate) per order (conjugate but refunds)."""
    items = 1.0 + (EXTRA_ITEMS[0] + history.items - history.orders) / (1 / EXTRA_ITEMS[1] + history.orders)
    quantity = 1.0 + (EXTRA_QUANTITY[0] + history.quantity - history.items) / (
        1 / EXTRA_QUANTITY[1] + history.items
    )
    taste = CATEGORY_CONCENTRATION + history.category_draws
    price = float(taste @ catalog.category_mean_price / taste.sum())
    return items * quantity * price * (1.0 - _mean_refund_rate(history))


def _mean_refund_rate(history: History) -> float:
    """Posterior mean of the refund rate; an order without a refund yet may still get one later."""
    p = REFUND_GRID
    log_posterior = stats.beta.logpdf(p, *REFUND_PROB)
    age_days = (history.cutoff_day * DAY_MS - history.order_ms) / DAY_MS
    logged = _refund_logged_by(age_days)  # P(refund already visible | refunded)
    refunded = history.refunded
    log_posterior = log_posterior + refunded.sum() * np.log(p)
    pending = np.clip(logged[~refunded], 0.0, 1.0)
    log_posterior = log_posterior + np.log1p(-np.outer(p, pending)).sum(axis=1)
    posterior = np.exp(log_posterior - log_posterior.max())
    return float(posterior @ p / posterior.sum())


def _refund_logged_by(age_days: np.ndarray) -> np.ndarray:
    """P(delay < age): the delay is 1 + Poisson(10) whole days plus a uniform part of a day."""
    n = np.arange(0, 80)
    pmf = stats.poisson.pmf(n, REFUND_DELAY_MEAN_DAYS)
    return np.clip(np.asarray(age_days)[:, None] - 1.0 - n[None, :], 0.0, 1.0) @ pmf


def _order_posterior(
    history: History, start: dt.date, days: int, horizon: int, particles: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per particle: expected orders in the window, P(no order in it), and the normalized weight.

    ROUNDS rounds of population Monte Carlo: particles from a broad proposal locate the posterior,
    each later round draws from a proposal fitted to the weights before; the last round is kept.
    """
    exposure = _Exposure(season(start, np.arange(history.cutoff_day + horizon)))
    last_signup = min(int(history.session_day.min()), int(days * SIGNUP_SHARE) - 1)
    broad = _BroadProposal(history, last_signup)

    def weighted(proposal: _Proposal) -> tuple[_Particles, np.ndarray, np.ndarray, np.ndarray]:
        drawn = proposal.draw(particles, rng)
        log_likelihood, orders, no_order = _likelihood(history, drawn, exposure, horizon)
        log_weight = _log_prior(drawn) + log_likelihood - proposal.log_density(drawn)
        weight = np.exp(log_weight - log_weight.max())
        return drawn, weight / weight.sum(), orders, no_order

    drawn, weight, orders, no_order = weighted(broad)
    for _ in range(ROUNDS - 1):
        drawn, weight, orders, no_order = weighted(_FittedProposal(drawn, weight, broad))
    return orders, no_order, weight


@dataclass(frozen=True)
class _Particles:
    """Draws of what is integrated by sampling (the decay runs over fixed strata of its prior)."""

    signup: np.ndarray  # day, as float
    decline: np.ndarray  # the decline's start day
    decay: np.ndarray
    cart: np.ndarray  # cart probability


def _log_prior(drawn: _Particles) -> np.ndarray:
    """Up to a constant: signup and decay are uniform; the delay of the decline after signup is Lomax
    (an exponential delay whose hazard is Gamma distributed); the cart probability is Beta."""
    return _log_delay_prior(drawn.decline - drawn.signup) + _log_beta(drawn.cart, *CART_PROB)


def _log_delay_prior(delay: np.ndarray) -> np.ndarray:
    """Lomax(shape, 1 / scale): an exponential delay whose hazard is Gamma(shape, scale); -inf below 0."""
    shape, scale = HAZARD
    density = np.log(shape * scale) - (shape + 1) * np.log1p(scale * np.maximum(delay, 0.0))
    return np.where(delay >= 0, density, -np.inf)


def _log_beta(x: np.ndarray, a: float, b: float) -> np.ndarray:
    return (a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - special.betaln(a, b)


def _decay_strata(particles: int) -> np.ndarray:
    strata = (np.arange(particles) % DECAY_STRATA + 0.5) / DECAY_STRATA
    return DECAY_DAYS[0] + (DECAY_DAYS[1] - DECAY_DAYS[0]) * strata


class _Proposal:
    def draw(self, particles: int, rng: np.random.Generator) -> _Particles: ...

    def log_density(self, drawn: _Particles) -> np.ndarray: ...


class _BroadProposal(_Proposal):
    """Signup at, shortly before or anywhere before the first session; the decline's delay half from
    its prior, half uniform over the span the history can tell about (to the cutoff plus the buying
    lag); the cart probability half from its prior, half from its posterior as if engagement were 1."""

    RECENT_DAYS = 30.0

    def __init__(self, history: History, last_signup: int):
        self.last_signup = last_signup
        self.cutoff = history.cutoff_day
        days = np.arange(last_signup + 1)
        recent = np.exp(-(last_signup - days) / self.RECENT_DAYS)
        at_first = (days == last_signup).astype(float)
        self.signup_pmf = (at_first + recent / recent.sum() + 1.0 / days.size) / 3
        views, carts = int(history.views.sum()), int(history.carts.sum())
        a, b = CART_PROB
        self.narrow = (a + carts, b + views - carts)

    def draw(self, particles: int, rng: np.random.Generator) -> _Particles:
        signup = rng.choice(self.signup_pmf.size, particles, p=self.signup_pmf).astype(float)
        return self.draw_given(signup, rng)

    def draw_given(self, signup: np.ndarray, rng: np.random.Generator) -> _Particles:
        particles = signup.size
        shape, scale = HAZARD
        lomax = stats.lomax.rvs(shape, scale=1 / scale, size=particles, random_state=rng)
        delay = np.where(rng.random(particles) < 0.5, lomax, rng.random(particles) * self._span(signup))
        cart = np.where(
            rng.random(particles) < 0.5, rng.beta(*CART_PROB, particles), rng.beta(*self.narrow, particles)
        )
        return _Particles(signup, signup + delay, _decay_strata(particles), cart)

    def log_density(self, drawn: _Particles) -> np.ndarray:
        return np.log(self.signup_pmf[drawn.signup.astype(int)]) + np.log(self.density_given(drawn))

    def density_given(self, drawn: _Particles) -> np.ndarray:
        """The density of the decline and the cart probability given the signup (decay: uniform strata)."""
        delay, span = drawn.decline - drawn.signup, self._span(drawn.signup)
        prior = np.exp(_log_delay_prior(delay))
        decline = 0.5 * prior + 0.5 * ((delay >= 0) & (delay <= span)) / span
        cart = 0.5 * np.exp(_log_beta(drawn.cart, *CART_PROB)) + 0.5 * np.exp(
            _log_beta(drawn.cart, *self.narrow)
        )
        return decline * cart

    def _span(self, signup: np.ndarray) -> np.ndarray:
        return self.cutoff + BUY_LAG_DAYS - signup


class _FittedProposal(_Proposal):
    """Fitted to the weighted particles of the round before: the signup from their smoothed histogram;
    the decline and the cart probability from a kernel density around them (each keeps its
    particle's decay stratum); both mixed with the broad proposal, so no region is left out."""

    DEFENSIVE = 0.2
    CENTRES = 300  # the heaviest particles become kernel centres
    SIGNUP_SMOOTHING = np.array([0.1, 0.2, 0.4, 0.2, 0.1])

    def __init__(self, drawn: _Particles, weight: np.ndarray, broad: _BroadProposal):
        self.broad = broad
        histogram = np.bincount(drawn.signup.astype(int), weights=weight, minlength=broad.signup_pmf.size)
        smooth = np.convolve(histogram, self.SIGNUP_SMOOTHING)[2:-2]  # the same days, spread ±2
        self.signup_pmf = self.DEFENSIVE * broad.signup_pmf + (1 - self.DEFENSIVE) * smooth / smooth.sum()
        heaviest = np.argsort(-weight)[: self.CENTRES]
        self.weight = weight[heaviest] / weight[heaviest].sum()
        self.decline, self.decay = drawn.decline[heaviest], drawn.decay[heaviest]
        self.logit = _logit(drawn.cart[heaviest])
        shrink = (1.0 / np.sum(self.weight**2)) ** (-1 / 6)  # Silverman's rule, 2 dimensions
        self.widths = [
            max(_weighted_std(values, self.weight) * shrink, floor)
            for values, floor in ((self.decline, 0.5), (self.logit, 0.01))
        ]

    def draw(self, particles: int, rng: np.random.Generator) -> _Particles:
        signup = rng.choice(self.signup_pmf.size, particles, p=self.signup_pmf).astype(float)
        broad = self.broad.draw_given(signup, rng)
        centre = rng.choice(self.weight.size, particles, p=self.weight)
        noise = rng.standard_normal((2, particles))
        decline = self.decline[centre] + self.widths[0] * noise[0]
        cart = _expit(self.logit[centre] + self.widths[1] * noise[1])
        use_broad = rng.random(particles) < self.DEFENSIVE
        return _Particles(
            signup,
            np.where(use_broad, broad.decline, decline),
            np.where(use_broad, broad.decay, self.decay[centre]),
            np.clip(np.where(use_broad, broad.cart, cart), 1e-9, 1 - 1e-9),
        )

    def log_density(self, drawn: _Particles) -> np.ndarray:
        near = np.zeros(drawn.decline.size)
        logit = _logit(drawn.cart)
        for decay in np.unique(self.decay):  # a kernel centre only proposes its own decay stratum
            rows, centres = drawn.decay == decay, self.decay == decay
            distance = ((drawn.decline[rows, None] - self.decline[None, centres]) / self.widths[0]) ** 2 + (
                (logit[rows, None] - self.logit[None, centres]) / self.widths[1]
            ) ** 2
            near[rows] = np.exp(-0.5 * distance) @ self.weight[centres]
        near /= 2 * np.pi * self.widths[0] * self.widths[1] * drawn.cart * (1 - drawn.cart)
        broad = self.broad.density_given(drawn) / DECAY_STRATA
        rest = self.DEFENSIVE * broad + (1 - self.DEFENSIVE) * near
        return np.log(self.signup_pmf[drawn.signup.astype(int)]) + np.log(rest)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _weighted_std(values: np.ndarray, weight: np.ndarray) -> float:
    mean = weight @ values
    return float(np.sqrt(max(weight @ (values - mean) ** 2, 0.0)))


def _likelihood(
    history: History, drawn: _Particles, exposure: _Exposure, horizon: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per particle: log likelihood of the history, expected orders in the window, P(no order in it)."""
    cutoff = history.cutoff_day
    signup, decline, decay = drawn.signup, drawn.decline, drawn.decay
    browse_days = history.session_day[~history.is_order]
    log_likelihood = _gamma_poisson(exposure, signup, decline, decay, browse_days, cutoff, SESSION_RATE)[0]
    buy_start = decline + BUY_LAG_DAYS
    order_days = history.session_day[history.is_order]
    log_orders, rate_shape, rate_rate, first_order = _orders_likelihood(
        exposure, signup, buy_start, decay, order_days, cutoff
    )
    engagement = _engagement(history.session_day[None, :], decline[:, None], drawn.decay[:, None])  # (M, S)
    log_likelihood = (
        log_likelihood
        + log_orders
        + _views_likelihood(engagement, history.views - 1)
        + _carts_likelihood(engagement, history.views, history.carts, drawn.cart)
    )
    future = exposure.total(np.full_like(signup, cutoff), buy_start, decay, cutoff + horizon)
    shape = rate_shape - first_order  # E[order rate] = shape / rate, averaged over the first order
    expected_orders = future * shape / rate_rate
    odds = 1 + future / rate_rate
    no_order = (1 - first_order) * odds**-rate_shape + first_order * odds ** -(rate_shape - 1)
    return log_likelihood, expected_orders, no_order


class _Exposure:
    """Sums of lift x engagement over day ranges, from running sums per decay stratum (the faded part
    from the end backwards: its terms shrink, so no precision is lost)."""

    def __init__(self, lift: np.ndarray):
        self.lift = lift
        self.decays = _decay_strata(DECAY_STRATA)  # every value a particle's decay can take
        day = np.arange(lift.size)
        self.flat = np.concatenate([[0.0], np.cumsum(lift)])  # (D + 1,): sum of days < d
        faded = lift[None, :] * np.exp(-day[None, :] / self.decays[:, None])
        from_end = np.cumsum(faded[:, ::-1], axis=1)[:, ::-1]  # sum of days >= d
        self.faded = np.concatenate([from_end, np.zeros((self.decays.size, 1))], axis=1)

    def total(self, first: np.ndarray, decline: np.ndarray, decay: np.ndarray, end: int) -> np.ndarray:
        """Sum over days first <= d < end of lift(d) x engagement(d) (1, then exp(-(d - decline) / decay))."""
        first = first.astype(int)
        split = np.clip(np.floor(decline).astype(int) + 1, first, end)  # days <= decline: engagement 1
        steady = self.flat[split] - self.flat[first]
        stratum = np.searchsorted(self.decays, decay)
        scale = np.exp(np.minimum(decline, end) / decay)  # a decline after the range adds nothing
        faded = scale * (self.faded[stratum, split] - self.faded[stratum, end])
        return steady + faded


def _engagement(day: np.ndarray, decline: np.ndarray, decay: np.ndarray) -> np.ndarray:
    """ltv_spark.world.model.engagement, kept above 0 (its logarithm enters the likelihood)."""
    return np.exp(np.maximum(-np.clip(day - decline, 0.0, None) / decay, -700.0))


def _gamma_poisson(
    exposure: _Exposure,
    signup: np.ndarray,
    decline: np.ndarray,
    decay: np.ndarray,
    session_days: np.ndarray,
    cutoff: int,
    prior: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log marginal likelihood (up to a constant) of daily Poisson counts with a Gamma rate.

    Counts ~ Poisson(rate x lift x engagement) each day from signup to the cutoff; returns it with
    the rate's posterior shape and rate (inverse scale).
    """
    shape, scale = prior
    total = exposure.total(signup, decline, decay, cutoff)
    log_engagement = -np.clip(session_days[None, :] - decline[:, None], 0.0, None) / decay[:, None]
    n = session_days.size
    log_likelihood = log_engagement.sum(axis=1) - (shape + n) * np.log1p(scale * total)
    return log_likelihood, np.full_like(total, shape + n), 1 / scale + total


def _orders_likelihood(
    exposure: _Exposure,
    signup: np.ndarray,
    buy_start: np.ndarray,
    decay: np.ndarray,
    order_days: np.ndarray,
    cutoff: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The order counts' likelihood, with the signup day's extra first order (probability 1/2).

    Returns (log likelihood, the rate's posterior shape and rate without the first order, and the
    posterior probability that one order of the signup day was that first order).
    """
    log_likelihood, shape, rate = _gamma_poisson(
        exposure, signup, buy_start, decay, order_days, cutoff, ORDER_RATE
    )
    on_signup = (order_days[None, :] == signup[:, None]).sum(axis=1)
    # with the first order, one of the signup day's orders is not a Poisson draw: the likelihood
    # ratio is n_s x (1 + scale X) / (lift(s) x scale x (shape + N - 1)) (engagement is 1 at signup)
    _, scale = ORDER_RATE
    ratio = np.where(
        on_signup > 0,
        on_signup * rate * scale / (exposure.lift[signup.astype(int)] * scale * np.maximum(shape - 1, 1e-9)),
        0.0,
    )
    first_order = ratio / (1 + ratio)
    return log_likelihood + np.log(FIRST_ORDER_PROB * (1 + ratio)), shape, rate, first_order


def _views_likelihood(engagement: np.ndarray, extra_views: np.ndarray) -> np.ndarray:
    """Views per session - 1 ~ Poisson(views_per_session x engagement), Gamma prior: log marginal."""
    shape, scale = VIEWS_PER_SESSION
    k = extra_views.sum()
    return (np.log(engagement) * extra_views[None, :]).sum(axis=1) - (shape + k) * np.log1p(
        scale * engagement.sum(axis=1)
    )


def _carts_likelihood(engagement: np.ndarray, views: np.ndarray, carts: np.ndarray, cart: np.ndarray):
    """Each drawn view is carted with probability cart_prob x engagement: log likelihood per particle."""
    p = cart[:, None] * engagement
    return (carts[None, :] * np.log(p) + (views - carts)[None, :] * np.log1p(-p)).sum(axis=1)


def ceiling_rows(
    user: UserParams,
    catalog: Catalog,
    seed: int,
    start: dt.date,
    days: int,
    cutoff_day: int,
    horizon: int,
    particles: int,
    sets: int = 2,
) -> list[dict]:
    """The ceiling of one user from ``sets`` independent particle sets (their spread is the Monte
    Carlo error); no rows for a user without a session before the cutoff (no model scores them)."""
    if user.signup_day >= cutoff_day:
        return []
    events, session_day, _ = simulated_sessions(user, catalog, seed, start, days)
    if events is None or not (session_day < cutoff_day).any():
        return []
    history = history_before(events, session_day, cutoff_day)
    rows = []
    for particle_set in range(1, sets + 1):
        rng = user_rng(seed, user.user_index, CEILING_STREAM + particle_set)
        ceiling = observable_ceiling(history, catalog, start, days, horizon, particles, rng)
        rows.append(
            {
                "particle_set": particle_set,
                "ceiling_value": ceiling.expected_value,
                "ceiling_p_buy": ceiling.p_buy,
                "effective_sample_size": ceiling.effective_sample_size,
            }
        )
    return rows


def in_ceiling_sample(seed: int, user_index: int, share: float) -> bool:
    """Whether the user is in the ceiling's sample: a fixed draw per user, so samples nest."""
    return share >= 1.0 or user_rng(seed, user_index, CEILING_STREAM).random() < share
