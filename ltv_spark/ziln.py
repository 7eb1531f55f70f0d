"""The zero-inflated lognormal (ZILN) head of Wang, Liu & Miao (2019), "A Deep Probabilistic Model
for Customer Lifetime Value Prediction" (google/lifetime_value), with an optional mixture of K
lognormal components for the spend of a buyer (as in the mixture heads of MDME / OptDist).

Layout of the network's outputs per user:
- one component (K = 1, the default): (logit, mu, raw sigma), 3 numbers;
- K >= 2 components: (logit, mu_1..K, raw sigma_1..K, mixture logit_1..K), 1 + 3K numbers.

Loss = BCE(bought) + NLL of the (mixture) lognormal at the value of a buyer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
MIN_SIGMA = 1e-3


def head_outputs(components: int) -> int:
    """Numbers the network emits per user for a head of ``components`` lognormals."""
    if components < 1:
        raise ValueError(f"a ZILN head needs at least one lognormal component, got {components}")
    return 3 if components == 1 else 1 + 3 * components


def components_of(outputs: torch.Tensor) -> int:
    """K, read back from the width of the outputs (see the layout in the module docstring)."""
    width = outputs.shape[-1]
    if width == 3:
        return 1
    if width < 7 or (width - 1) % 3:
        raise ValueError(f"a ZILN head emits 3 or 1 + 3K (K >= 2) numbers per user, got {width}")
    return (width - 1) // 3


def split_head(
    outputs: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, 3 | 1 + 3K) raw outputs -> logit (B,), mu (B, K), sigma (B, K) > 0, log weight (B, K)."""
    k = components_of(outputs)
    logit = outputs[..., 0]
    mu = outputs[..., 1 : 1 + k]
    sigma = F.softplus(outputs[..., 1 + k : 1 + 2 * k]).clamp_min(MIN_SIGMA)
    log_weight = torch.zeros_like(mu) if k == 1 else torch.log_softmax(outputs[..., 1 + 2 * k :], dim=-1)
    return logit, mu, sigma, log_weight


def ziln_loss(outputs: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of BCE(value > 0) + (mixture) lognormal NLL of the positive values.

    The NLL of a buyer is log(value) - logsumexp_k(log w_k - log sigma_k - log sqrt(2 pi)
    - (log(value) - mu_k)^2 / (2 sigma_k^2)); with one component, the ZILN of google/lifetime_value.
    Non-buyers contribute only the classification term.
    """
    logit, mu, sigma, log_weight = split_head(outputs)
    bought = (value > 0).to(outputs.dtype)
    classification = F.binary_cross_entropy_with_logits(logit, bought, reduction="none")
    safe_value = torch.where(value > 0, value, torch.ones_like(value))
    log_value = torch.log(safe_value).unsqueeze(-1)  # (B, 1)
    log_density = -torch.log(sigma) - LOG_SQRT_2PI - (log_value - mu) ** 2 / (2 * sigma**2)  # (B, K)
    nll = log_value.squeeze(-1) - torch.logsumexp(log_weight + log_density, dim=-1)
    return (classification + bought * nll).mean()


def p_buy(outputs: torch.Tensor) -> torch.Tensor:
    """P(at least one purchase in the horizon)."""
    return torch.sigmoid(outputs[..., 0])


def expected_value(outputs: torch.Tensor) -> torch.Tensor:
    """E[value] = p * sum_k w_k exp(mu_k + sigma_k^2 / 2)."""
    logit, mu, sigma, log_weight = split_head(outputs)
    return torch.sigmoid(logit) * torch.exp(log_weight + mu + sigma**2 / 2).sum(dim=-1)


def log_expected_value(outputs: torch.Tensor) -> torch.Tensor:
    """log E[value], computed in log space (what attributions explain: ltv_spark.explain)."""
    logit, mu, sigma, log_weight = split_head(outputs)
    return F.logsigmoid(logit) + torch.logsumexp(log_weight + mu + sigma**2 / 2, dim=-1)


def churn_probability(outputs: torch.Tensor) -> torch.Tensor:
    """1 - P(buy)."""
    return 1.0 - p_buy(outputs)
