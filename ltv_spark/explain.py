"""Why a user's predicted value is what it is: integrated gradients of the model itself, turned
into the three reasons a marketer reads ("no session in 41 days (lowers value)").

Attributions explain the log of the expected value (ltv_spark.ziln.log_expected_value), so a
reason's weight is a relative effect, comparable between a small and a large customer. The
baseline is the average customer: every scaled static feature at 0 (the training mean of its
squashed value) and the session sequence's numbers at 0, but for the user's own mask and session
times (``sequence_baseline``). Integrated gradients (Sundararajan et al. 2017) then give
each static feature, and the sequence as one whole, a share of log value(user) - log
value(baseline); the shares add up to that difference (the midpoint rule's error aside).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ltv_spark.ziln import log_expected_value

STEPS = 8  # points on the path from the baseline to the user (midpoint rule)
REASONS = 3
MIN_EFFECT = 1e-3  # a reason moves log value by at least this much (0.1% of the value)
SESSIONS = "session_history"  # the attribution of the whole session sequence


def integrated_gradients(
    model: nn.Module,
    sequence: torch.Tensor,  # (B, N * F)
    mask: torch.Tensor,  # (B, N)
    static: torch.Tensor,  # (B, S), scaled
    steps: int = STEPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attributions of log expected value: (B, S) per static feature, (B,) for the sequence."""
    batch = static.shape[0]
    start = sequence_baseline(model, sequence)  # (B, N*F)
    alphas = ((torch.arange(steps, dtype=static.dtype) + 0.5) / steps).repeat_interleave(batch)  # (K*B,)
    alphas = alphas.unsqueeze(1)  # (K*B, 1)
    static_path = (alphas * static.repeat(steps, 1)).requires_grad_()  # (K*B, S)
    sequence_path = (start.repeat(steps, 1) + alphas * (sequence - start).repeat(steps, 1)).requires_grad_()
    with torch.enable_grad():
        outputs, _ = model(sequence_path, mask.repeat(steps, 1), static_path)
        total = log_expected_value(outputs).sum()
        static_grad, sequence_grad = torch.autograd.grad(
            total, [static_path, sequence_path], allow_unused=True
        )
    if sequence_grad is None:  # a static-only model ignores the sessions
        sequence_grad = torch.zeros_like(sequence_path)
    static_attribution = static * static_grad.view(steps, batch, -1).mean(dim=0)  # (B, S)
    moved = sequence - start
    sequence_attribution = (moved * sequence_grad.view(steps, batch, -1).mean(dim=0)).sum(dim=1)  # (B,)
    return static_attribution.detach(), sequence_attribution.detach()


def sequence_baseline(model: nn.Module, sequence: torch.Tensor) -> torch.Tensor:
    """The average customer's sessions: every number 0 but each session's time before the cutoff,
    which stays the user's own (the time encoding oscillates in it, so a path through it would
    need hundreds of steps; how recent the user is, the static features say)."""
    config = model.config
    keep = torch.zeros(config.session_features, dtype=sequence.dtype)
    keep[config.time_feature] = 1.0
    return sequence * keep.repeat(config.sequence_length)  # (B, N*F)


def top_reasons(
    columns: Sequence[str],
    values: np.ndarray,  # (B, S) raw feature values, in ``columns`` order
    static_attribution: np.ndarray,  # (B, S)
    sequence_attribution: np.ndarray,  # (B,)
    top: int = REASONS,
) -> list[list[str]]:
    """Per user: the ``top`` largest attributions (by size) in words, each saying whether it raises
    or lowers the value against the average customer; fewer where fewer move the value by at least
    MIN_EFFECT (a user close to the average has little to explain)."""
    names = [*columns, SESSIONS]
    attributions = np.column_stack([static_attribution, sequence_attribution])  # (B, S + 1)
    order = np.argsort(-np.abs(attributions), axis=1, kind="stable")[:, :top]
    reasons = []
    for row, chosen in enumerate(order):
        reasons.append(
            [
                f"{phrase(names[j], values[row, j] if j < len(columns) else None)} "
                f"({'raises' if attributions[row, j] > 0 else 'lowers'} value)"
                for j in chosen
                if abs(attributions[row, j]) >= MIN_EFFECT
            ]
        )
    return reasons


def phrase(feature: str, value: float | None) -> str:
    """A feature's value as a marketer reads it."""
    if feature in PHRASES:
        return PHRASES[feature](float(value))
    if feature == SESSIONS:
        return "the pattern of recent sessions"
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
