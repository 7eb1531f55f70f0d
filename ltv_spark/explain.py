"""Why a user's predicted value is what it is: integrated gradients of the model itself, turned
into the three reasons a marketer reads ("no session in 41 days (lowers value)").

Attributions explain the log of the expected value (ltv_spark.ziln.log_expected_value), so a
reason's weight is a relative effect, comparable between a small and a large customer. The
baseline is the average customer: every scaled static feature at 0 (the training mean of its
squashed value), and each of the user's sessions replaced by the average session of the users
scored (``average_session``) at the same time before the cutoff (``sequence_baseline``).
Integrated gradients (Sundararajan et al. 2017) give each static feature, and each number of the
session vectors summed over the sessions, a share of log value(user) - log value(baseline); the
shares add up to that difference (the midpoint rule's error aside). The session numbers are then
read in groups (``SESSION_GROUPS``: "views per session above average").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from torch import nn

from ltv_spark.model import ziln_part
from ltv_spark.sequences import SESSION_VECTOR
from ltv_spark.ziln import log_expected_value

STEPS = 8  # points on the path from the baseline to the user (midpoint rule)
REASONS = 3
MIN_EFFECT = 1e-3  # a reason moves log value by at least this much (0.1% of the value)
SESSION_GROUPS = {  # what the session vectors say, in words -> its numbers (SESSION_VECTOR)
    "time spent per session": ("log_duration_min",),
    "views per session": ("log_views",),
    "carts per session": ("log_carts",),
    "purchases per session": ("purchases",),
    "spend per session": ("log_revenue",),
    "refunds per session": ("log_refunded",),
    "days between sessions": ("log_gap_days",),
    "the weekdays of their sessions": ("weekday_sin", "weekday_cos"),
    "categories per session": ("categories",),
}  # log_days_before_cutoff is the user's own in the baseline: nothing to attribute
UNORDERED_GROUPS = {"the weekdays of their sessions"}  # no "above / below average"


def average_session(rows: DataFrame, width: int = len(SESSION_VECTOR)) -> list[float]:
    """The mean of each session number over every real session of ``rows`` (sequence, mask):
    one aggregation, ``width`` numbers reach the driver."""
    slots = F.sequence(F.lit(0), F.size("mask") - 1)

    def per_user(offset: int):
        return F.aggregate(
            slots,
            F.lit(0.0).cast("double"),
            lambda total, s: total
            + F.element_at("sequence", s * width + offset + 1) * F.element_at("mask", s + 1),
        )

    sums = rows.select(
        *[per_user(f).alias(f"f{f}") for f in range(width)],
        F.aggregate(F.col("mask"), F.lit(0.0).cast("double"), lambda total, m: total + m).alias("sessions"),
    )
    totals = sums.agg(*[F.sum(c).alias(c) for c in sums.columns]).first()
    sessions = totals["sessions"] or 0.0
    return [float(totals[f"f{f}"] or 0.0) / sessions if sessions else 0.0 for f in range(width)]


def sequence_baseline(
    model: nn.Module, sequence: torch.Tensor, mask: torch.Tensor, average: Sequence[float]
) -> torch.Tensor:
    """The average customer's sessions at the user's own session times: each real session's
    numbers replaced by ``average``, but its time before the cutoff (the time encoding oscillates in
    it, so a path through it would need hundreds of steps; how recent the user is, the static
    features say); padding stays padding."""
    config = model.config
    batch = sequence.shape[0]
    sessions = sequence.view(batch, config.sequence_length, config.session_features)  # (B, N, F)
    typical = torch.tensor(average, dtype=sequence.dtype).expand_as(sessions).clone()  # (B, N, F)
    typical[..., config.time_feature] = sessions[..., config.time_feature]
    real = mask.unsqueeze(-1) > 0.5  # (B, N, 1)
    return torch.where(real, typical, sessions).reshape(batch, -1)  # (B, N*F)


def integrated_gradients(
    model: nn.Module,
    sequence: torch.Tensor,  # (B, N * F)
    mask: torch.Tensor,  # (B, N)
    static: torch.Tensor,  # (B, S), scaled
    average: Sequence[float],  # (F,) the average session
    steps: int = STEPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attributions of log expected value: (B, S) per static feature, (B, F) per session number
    (summed over the sessions)."""
    batch = static.shape[0]
    start = sequence_baseline(model, sequence, mask, average)  # (B, N*F)
    alphas = ((torch.arange(steps, dtype=static.dtype) + 0.5) / steps).repeat_interleave(batch)  # (K*B,)
    alphas = alphas.unsqueeze(1)  # (K*B, 1)
    static_path = (alphas * static.repeat(steps, 1)).requires_grad_()  # (K*B, S)
    sequence_path = (start.repeat(steps, 1) + alphas * (sequence - start).repeat(steps, 1)).requires_grad_()
    with torch.enable_grad():
        outputs, _ = model(sequence_path, mask.repeat(steps, 1), static_path)
        total = log_expected_value(ziln_part(outputs, model.config)).sum()
        static_grad, sequence_grad = torch.autograd.grad(
            total, [static_path, sequence_path], allow_unused=True
        )
    if sequence_grad is None:  # a static-only model ignores the sessions
        sequence_grad = torch.zeros_like(sequence_path)
    static_attribution = static * static_grad.view(steps, batch, -1).mean(dim=0)  # (B, S)
    per_number = (sequence - start) * sequence_grad.view(steps, batch, -1).mean(dim=0)  # (B, N*F)
    session_attribution = per_number.view(batch, model.config.sequence_length, -1).sum(dim=1)  # (B, F)
    return static_attribution.detach(), session_attribution.detach()


def top_reasons(
    columns: Sequence[str],
    values: np.ndarray,  # (B, S) raw feature values, in ``columns`` order
    static_attribution: np.ndarray,  # (B, S)
    session_attribution: np.ndarray,  # (B, F)
    session_means: np.ndarray,  # (B, F) each user's mean session (NaN without sessions)
    average: Sequence[float],  # (F,)
    top: int = REASONS,
) -> list[list[str]]:
    """Per user: the ``top`` largest attributions (by size) in words, each saying whether it raises
    or lowers the value against the average customer; fewer where fewer move the value by at least
    MIN_EFFECT (a user close to the average has little to explain)."""
    groups = [[SESSION_VECTOR.index(n) for n in numbers] for numbers in SESSION_GROUPS.values()]
    grouped = np.column_stack([session_attribution[:, g].sum(axis=1) for g in groups])  # (B, G)
    higher = np.column_stack([session_means[:, g[0]] > average[g[0]] for g in groups])  # (B, G)
    attributions = np.column_stack([static_attribution, grouped])  # (B, S + G)
    order = np.argsort(-np.abs(attributions), axis=1, kind="stable")[:, :top]
    reasons = []
    for row, chosen in enumerate(order):
        words = []
        for j in chosen:
            if abs(attributions[row, j]) < MIN_EFFECT:
                continue
            if j < len(columns):
                what = phrase(columns[j], values[row, j])
            else:
                what = session_phrase(
                    list(SESSION_GROUPS)[j - len(columns)], bool(higher[row, j - len(columns)])
                )
            words.append(f"{what} ({'raises' if attributions[row, j] > 0 else 'lowers'} value)")
        reasons.append(words)
    return reasons


def session_means(sequence: np.ndarray, mask: np.ndarray, width: int) -> np.ndarray:
    """(B, F): each user's mean session vector over their real sessions (NaN without any)."""
    sessions = sequence.reshape(len(sequence), -1, width)  # (B, N, F)
    count = mask.sum(axis=1, keepdims=True)  # (B, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sessions * mask[..., None]).sum(axis=1) / count


def session_phrase(group: str, higher: bool) -> str:
    """A group of session numbers as a marketer reads it: "views per session above average"."""
    if group in UNORDERED_GROUPS:
        return group
    return f"{group} {'above' if higher else 'below'} average"


def phrase(feature: str, value: float) -> str:
    """A feature's value as a marketer reads it."""
    if feature in PHRASES:
        return PHRASES[feature](float(value))
    return f"{feature.replace('_', ' ')} {value:g}"


def _count(value: float, noun: str, plural: str = "") -> str:
    n = round(value)
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def _days_since(noun: str) -> Callable[[float], str]:
    return lambda v: f"no {noun} in {_count(v, 'day')}" if v >= 14 else f"last {noun} {_count(v, 'day')} ago"


def _in_last(days: int, noun: str) -> Callable[[float], str]:
    return lambda v: f"{_count(v, noun)} in the last {days} days"


PHRASES: dict[str, Callable[[float], str]] = {
    "days_since_last_purchase": _days_since("order"),
    "days_since_last_session": _days_since("session"),
    "orders": lambda v: f"{_count(v, 'order')} in all",
    "repeat_orders": lambda v: _count(v, "repeat order"),
    "monetary": lambda v: f"net spend {v:,.0f} to date",
    "avg_order_value": lambda v: f"average order {v:,.0f}",
    "tenure_days": lambda v: f"customer for {_count(v, 'day')}",
    "refund_rate": lambda v: f"refund rate {v:.0%}",
    **{f"sessions_{d}d": _in_last(d, "session") for d in (7, 30, 90)},
    **{f"orders_{d}d": _in_last(d, "order") for d in (7, 30, 90)},
    "cart_abandonment": lambda v: f"{v:.0%} of carts abandoned",
    "view_to_purchase": lambda v: f"{v:.2f} purchases per view",
    "category_diversity": lambda v: f"{_count(v, 'category', 'categories')} browsed",
    "sessions_total": lambda v: f"{_count(v, 'session')} in all",
    "session_trend": lambda v: f"sessions {'up' if v >= 1 else 'down'} {abs(v - 1):.0%} on the months before",
    "has_purchased": lambda v: "has bought before" if v > 0 else "has never bought",
}
