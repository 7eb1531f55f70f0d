"""describe the ZILN head: loss and predictions equal closed forms computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from ltv_spark.ziln import churn_probability, expected_value, p_buy, split_head, ziln_loss


def softplus_inverse(x: float) -> float:
    return math.log(math.expm1(x))


def outputs(logit: float, mu: float, sigma: float) -> torch.Tensor:
    return torch.tensor([[logit, mu, softplus_inverse(sigma)]], dtype=torch.float64)


def it_predicts_p_times_the_lognormal_mean():
    out = outputs(logit=0.0, mu=1.0, sigma=0.5)
    assert p_buy(out).item() == pytest.approx(0.5)
    assert churn_probability(out).item() == pytest.approx(0.5)
    assert expected_value(out).item() == pytest.approx(0.5 * math.exp(1.0 + 0.125))
    assert split_head(out)[2].item() == pytest.approx(0.5)


def it_charges_a_buyer_bce_plus_the_lognormal_nll():
    out, value = outputs(logit=2.0, mu=3.0, sigma=0.8), 30.0
    bce = -math.log(1 / (1 + math.exp(-2.0)))
    log_v = math.log(value)
    nll = log_v + math.log(0.8) + 0.5 * math.log(2 * math.pi) + (log_v - 3.0) ** 2 / (2 * 0.8**2)
    assert ziln_loss(out, torch.tensor([value], dtype=torch.float64)).item() == pytest.approx(bce + nll)


def it_charges_a_non_buyer_only_the_classification_term():
    out = outputs(logit=-1.0, mu=50.0, sigma=0.1)  # a silly mu must not matter for a non-buyer
    expected = -math.log(1 - 1 / (1 + math.exp(1.0)))
    assert ziln_loss(out, torch.tensor([0.0], dtype=torch.float64)).item() == pytest.approx(expected)


def it_averages_over_the_batch_and_has_finite_gradients():
    out = torch.cat([outputs(0.3, 1.0, 1.0), outputs(-0.3, 2.0, 0.5)]).requires_grad_(True)
    values = torch.tensor([0.0, 12.0], dtype=torch.float64)
    loss = ziln_loss(out, values)
    parts = [ziln_loss(out[i : i + 1], values[i : i + 1]) for i in range(2)]
    assert loss.item() == pytest.approx((parts[0].item() + parts[1].item()) / 2)
    loss.backward()
    assert torch.isfinite(out.grad).all()
