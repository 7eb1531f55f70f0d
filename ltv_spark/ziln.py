"""The zero-inflated lognormal (ZILN) head of Wang, Liu & Miao (2019), "A Deep Probabilistic Model
for Customer Lifetime Value Prediction" (google/lifetime_value).

The network emits three numbers per user: a logit for P(buy in horizon), and mu, sigma of the
lognormal spend of a buyer. Loss = BCE(bought) + lognormal NLL(value | bought).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def split_head(outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, 3) raw outputs -> logit (B,), mu (B,), sigma (B,) with sigma > 0 (softplus, floored)."""
    logit, mu, raw_sigma = outputs.unbind(dim=-1)
    sigma = F.softplus(raw_sigma).clamp_min(1e-3)
    return logit, mu, sigma


def ziln_loss(outputs: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of BCE(value > 0) + lognormal NLL of the positive values.

    The NLL of a buyer is log(value) + log(sigma) + log(sqrt(2 pi)) + (log(value) - mu)^2 / (2 sigma^2);
    non-buyers contribute only the classification term (as in google/lifetime_value).
    """
    logit, mu, sigma = split_head(outputs)
    bought = (value > 0).to(outputs.dtype)
    classification = F.binary_cross_entropy_with_logits(logit, bought, reduction="none")
    safe_value = torch.where(value > 0, value, torch.ones_like(value))
    log_value = torch.log(safe_value)
    nll = log_value + torch.log(sigma) + LOG_SQRT_2PI + (log_value - mu) ** 2 / (2 * sigma**2)
    return (classification + bought * nll).mean()


def p_buy(outputs: torch.Tensor) -> torch.Tensor:
    """P(at least one purchase in the horizon)."""
    return torch.sigmoid(outputs[..., 0])


def expected_value(outputs: torch.Tensor) -> torch.Tensor:
    """E[value] = p * exp(mu + sigma^2 / 2)."""
    logit, mu, sigma = split_head(outputs)
    return torch.sigmoid(logit) * torch.exp(mu + sigma**2 / 2)


def churn_probability(outputs: torch.Tensor) -> torch.Tensor:
    """1 - P(buy)."""
    return 1.0 - p_buy(outputs)
