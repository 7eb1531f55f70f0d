"""describe the LTV Transformer: shapes, masking, and it can overfit a tiny batch."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from ltv_spark.model import (
    EncoderLayer,
    LTVTransformer,
    ModelConfig,
    StaticMLP,
    build_model,
    category_logits,
    category_loss,
    ziln_part,
)
from ltv_spark.ziln import expected_value, p_buy

CONFIG = ModelConfig(
    sequence_length=6, static_features=5, d_model=16, n_heads=2, n_layers=1, d_ff=32, dropout=0.0
)


def batch(size: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    n, f = CONFIG.sequence_length, CONFIG.session_features
    lengths = torch.randint(0, n + 1, (size,), generator=generator)
    mask = (torch.arange(n)[None, :] < lengths[:, None]).float()  # (B, N)
    sequence = torch.randn(size, n, f, generator=generator) * mask[..., None]
    static = torch.randn(size, CONFIG.static_features, generator=generator)
    value = torch.where(static[:, 0] > 0, torch.exp(2 + static[:, 1]), torch.zeros(size))
    return sequence.reshape(size, n * f), mask, static, value


def it_returns_three_outputs_per_user_and_a_loss_only_with_labels():
    torch.manual_seed(0)
    model = LTVTransformer(CONFIG).eval()
    sequence, mask, static, value = batch(8)
    outputs, loss = model(sequence, mask, static)
    assert outputs.shape == (8, 3) and loss is None
    _, loss = model(sequence, mask, static, value)
    assert loss.ndim == 0 and torch.isfinite(loss)


def it_ignores_what_lies_in_padded_slots_and_copes_with_no_session():
    torch.manual_seed(0)
    model = LTVTransformer(CONFIG).eval()
    sequence, mask, static, _ = batch(8)
    mask[0] = 0.0  # a user with no session at all
    noisy = sequence.view(8, CONFIG.sequence_length, -1) + 5.0 * (1 - mask)[..., None]
    out_clean, _ = model(sequence, mask, static)
    out_noisy, _ = model(noisy.reshape(8, -1), mask, static)
    assert torch.isfinite(out_clean).all()
    with_sessions = mask.sum(dim=1) > 0  # users without sessions attend to their (noisy) first slot
    assert with_sessions.sum() >= 5
    assert torch.allclose(out_clean[with_sessions], out_noisy[with_sessions], atol=1e-5)


def it_trains_through_its_encoder_layer_as_through_pytorchs_with_the_same_parameters():
    """EncoderLayer only changes how training attends (for speed): same outputs and gradients as
    nn.TransformerEncoderLayer, with padded sessions; without gradients both take PyTorch's path."""
    torch.manual_seed(0)

    def encoder(layer_class):
        layer = layer_class(16, 2, 32, 0.0, batch_first=True, norm_first=True)
        return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    pytorchs, ours = encoder(nn.TransformerEncoderLayer), encoder(EncoderLayer)
    ours.load_state_dict(pytorchs.state_dict())  # the same parameter names: old models load
    _, mask, _, _ = batch(32)
    padding = mask < 0.5
    padding[:, 0] = False  # as LTVTransformer does for a user with no session
    inputs = torch.randn(32, CONFIG.sequence_length, 16)
    outputs = []
    for model in (pytorchs, ours):
        x = inputs.clone().requires_grad_()
        out = model(x, src_key_padding_mask=padding)
        (out * torch.linspace(-1, 1, 16)).sum().backward()
        outputs.append((out.detach(), x.grad, [p.grad for p in model.parameters()]))
    (out_a, grad_a, params_a), (out_b, grad_b, params_b) = outputs
    assert padding.any() and torch.allclose(out_a, out_b, atol=1e-5)
    assert torch.allclose(grad_a, grad_b, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(params_a, params_b, strict=True))
    with torch.no_grad():
        assert torch.allclose(
            pytorchs.eval()(inputs, src_key_padding_mask=padding),
            ours.eval()(inputs, src_key_padding_mask=padding),
            atol=1e-5,
        )


def it_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = LTVTransformer(CONFIG)
    sequence, mask, static, value = batch(16, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(300):
        _, loss = model(sequence, mask, static, value)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    outputs, loss = model(sequence, mask, static, value)
    assert loss.item() < first - 1.5
    assert ((p_buy(outputs) > 0.5) == (value > 0)).all()
    buyers = value > 0
    relative_error = (expected_value(outputs)[buyers] - value[buyers]).abs() / value[buyers]
    assert relative_error.median() < 0.5


def it_builds_the_static_mlp_baseline_with_the_same_interface():
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(CONFIG, architecture="mlp"))
    assert isinstance(model, StaticMLP)
    sequence, mask, static, value = batch(16, seed=2)
    outputs, loss = model(sequence, mask, static, value)
    assert outputs.shape == (16, 3) and torch.isfinite(loss)
    shuffled, _ = model(torch.randn_like(sequence), torch.zeros_like(mask), static)
    assert torch.equal(outputs, shuffled)  # sessions are not its input
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        _, loss_now = model(sequence, mask, static, value)
        optimizer.zero_grad()
        loss_now.backward()
        optimizer.step()
    assert loss_now.item() < loss.item() - 1.0
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model(dataclasses.replace(CONFIG, architecture="rnn"))


@pytest.mark.parametrize("architecture", ["transformer", "mlp"])
def it_emits_one_plus_three_k_outputs_with_a_mixture_head(architecture: str):
    torch.manual_seed(0)
    config = dataclasses.replace(CONFIG, architecture=architecture, mixture_components=3)
    sequence, mask, static, value = batch(8, seed=3)
    outputs, loss = build_model(config)(sequence, mask, static, value)
    assert outputs.shape == (8, 10) and torch.isfinite(loss)
    assert torch.isfinite(expected_value(outputs)).all() and (expected_value(outputs) > 0).all()


@pytest.mark.parametrize("architecture", ["transformer", "mlp"])
def it_learns_the_next_categories_from_the_category_history_in_a_second_head(architecture: str):
    """Each user's next category is the one they engaged with most: the cross-sell head learns it,
    and the value head's outputs come first and do not depend on the history."""
    torch.manual_seed(0)
    categories = 4
    config = dataclasses.replace(CONFIG, architecture=architecture, categories=categories)
    model = build_model(config)
    sequence, mask, static, value = batch(128, seed=5)
    history = torch.softmax(3 * torch.randn(128, categories, generator=torch.Generator().manual_seed(6)), -1)
    bought = torch.nn.functional.one_hot(history.argmax(dim=1), categories).float()  # (B, C)
    outputs, _ = model(sequence, mask, static, history=history)
    assert outputs.shape == (128, 3 + categories)
    value_only, _ = model(sequence, mask, static, history=torch.zeros_like(history))
    assert torch.equal(ziln_part(outputs, config), ziln_part(value_only, config))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    _, first = model(sequence, mask, static, value, bought, history=history)
    for _ in range(150):
        _, loss = model(sequence, mask, static, value, bought, history=history)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first.item()
    with torch.no_grad():
        logits = category_logits(model(sequence, mask, static, history=history)[0], config)
    assert (logits.argmax(dim=1) == history.argmax(dim=1)).float().mean() > 0.9
    assert category_loss(model(sequence, mask, static, history=history)[0], config, bought) < 0.5
