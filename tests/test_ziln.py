"""describe the ZILN head: loss and predictions equal closed forms computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from ltv_spark.ziln import (
    churn_probability,
    expected_value,
    head_outputs,
    p_buy,
    split_head,
    ziln_loss,
)


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
    assert split_head(out)[3].item() == 0.0  # one component: weight 1


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


def mixture(logit: float, components: list[tuple[float, float, float]]) -> torch.Tensor:
    """Raw outputs of a K-component head from (weight, mu, sigma) per component."""
    mus = [mu for _, mu, _ in components]
    sigmas = [softplus_inverse(sigma) for _, _, sigma in components]
    logits = [math.log(weight) for weight, _, _ in components]
    return torch.tensor([[logit, *mus, *sigmas, *logits]], dtype=torch.float64)


def it_predicts_p_times_the_weighted_lognormal_means_of_a_mixture():
    out = mixture(0.0, [(0.25, 1.0, 0.5), (0.75, 3.0, 1.0)])
    mean = 0.25 * math.exp(1.0 + 0.125) + 0.75 * math.exp(3.0 + 0.5)
    assert expected_value(out).item() == pytest.approx(0.5 * mean)
    assert head_outputs(2) == out.shape[-1] == 7
    assert head_outputs(1) == 3


def it_charges_a_buyer_the_nll_of_the_mixture_density():
    out, value = mixture(1.0, [(0.4, 2.0, 0.5), (0.6, 4.0, 0.8)]), 20.0
    log_v = math.log(value)

    def density(mu: float, sigma: float) -> float:  # lognormal pdf at value
        return math.exp(-((log_v - mu) ** 2) / (2 * sigma**2)) / (value * sigma * math.sqrt(2 * math.pi))

    bce = -math.log(1 / (1 + math.exp(-1.0)))
    nll = -math.log(0.4 * density(2.0, 0.5) + 0.6 * density(4.0, 0.8))
    assert ziln_loss(out, torch.tensor([value], dtype=torch.float64)).item() == pytest.approx(bce + nll)


def it_equals_the_one_component_head_when_the_components_agree():
    one = outputs(0.7, 2.5, 0.9)
    two = mixture(0.7, [(0.3, 2.5, 0.9), (0.7, 2.5, 0.9)])
    value = torch.tensor([14.0], dtype=torch.float64)
    assert ziln_loss(two, value).item() == pytest.approx(ziln_loss(one, value).item())
    assert expected_value(two).item() == pytest.approx(expected_value(one).item())


def it_refuses_an_output_width_no_head_emits():
    with pytest.raises(ValueError, match="3 or 1 \\+ 3K"):
        split_head(torch.zeros(1, 5))
