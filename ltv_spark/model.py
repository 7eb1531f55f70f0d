"""The LTV Transformer: a small encoder over a user's last sessions, joined with static features,
feeding a ZILN head (ltv_spark.ziln) and, optionally, a second head: one logit per category, the
probability of buying in it in the horizon (the cross-sell head, multi-task with the value). The
second head reads the shared representation and the user's category history (each category's
share of their past events); the value head never sees that history, so the value a model
predicts needs no more inputs than before. Shapes: B users, N sessions, F numbers per session,
S static, C categories.

``StaticMLP`` is the seeds' DNN baseline: the same ZILN head on the static features alone, with the
same forward signature, so the one training loop and the one scoring UDF serve both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ltv_spark.sequences import SESSION_VECTOR
from ltv_spark.ziln import head_outputs, ziln_loss

SESSION_FEATURES = len(SESSION_VECTOR)
TIME_FEATURE = SESSION_VECTOR.index("log_days_before_cutoff")
OWN_SHARE_START = 4.0  # the cross-sell head starts with a logit 4 higher for a category of the whole history


@dataclass
class ModelConfig:
    """Sizes of the model; saved inside every checkpoint so a model always rebuilds itself."""

    sequence_length: int = 32
    session_features: int = SESSION_FEATURES
    static_features: int = 20
    d_model: int = 32
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 64
    dropout: float = 0.0
    time_feature: int = TIME_FEATURE
    time_frequencies: int = 8
    architecture: str = "transformer"  # or "mlp": static features only (see build_model)
    mixture_components: int = 1  # lognormals of a buyer's spend in the ZILN head (ltv_spark.ziln)
    categories: int = 0  # C: logits of the cross-sell head (0: no second head)
    category_weight: float = 1.0  # of the cross-sell loss (summed over categories) beside the ZILN loss


class TimeEncoding(nn.Module):
    """Sinusoids of each session's (log) time before the cutoff: a position encoding that knows
    that two sessions a day apart are closer than two sessions a year apart."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        frequencies = torch.exp(torch.linspace(0.0, math.log(64.0), config.time_frequencies))
        self.register_buffer("frequencies", frequencies, persistent=False)
        self.project = nn.Linear(2 * config.time_frequencies, config.d_model)

    def forward(self, time: torch.Tensor) -> torch.Tensor:
        angles = time.unsqueeze(-1) * self.frequencies  # (B, N, K)
        return self.project(torch.cat([angles.sin(), angles.cos()], dim=-1))  # (B, N, d_model)


class CategoryHead(nn.Module):
    """(hidden (B, H), history (B, C)) -> category logits (B, C): an MLP over both, plus each
    category's own share of the history times a learnt weight per category (a direct path: the
    category a user engages with most is the likeliest next one, which the MLP need not relearn)."""

    def __init__(self, hidden: int, config: ModelConfig) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(hidden + config.categories, config.d_model),
            nn.GELU(),
            nn.Linear(config.d_model, config.categories),
        )
        self.own_share = nn.Parameter(torch.full((config.categories,), OWN_SHARE_START))  # (C,)

    def forward(self, hidden: torch.Tensor, history: torch.Tensor | None) -> torch.Tensor:
        if history is None:  # no history given: as a user without any category event
            history = hidden.new_zeros(hidden.shape[0], self.layers[-1].out_features)
        return self.layers(torch.cat([hidden, history], dim=-1)) + self.own_share * history  # (B, C)


def _category_head(hidden: int, config: ModelConfig) -> CategoryHead | None:
    return CategoryHead(hidden, config) if config.categories else None


def _all_outputs(
    value_outputs: torch.Tensor, head: CategoryHead | None, hidden: torch.Tensor, history: torch.Tensor | None
) -> torch.Tensor:
    """The value head's outputs, then the category logits where the model has that head."""
    return value_outputs if head is None else torch.cat([value_outputs, head(hidden, history)], dim=-1)


class EncoderLayer(nn.TransformerEncoderLayer):
    """``nn.TransformerEncoderLayer`` (the same parameters and results) with a leaner attention for
    training.

    PyTorch's MultiheadAttention takes q, k and v out of the packed projection by selecting from a
    copy of it; the backward of each select fills a zero tensor three times the projection's size.
    Here one view splits them and ``scaled_dot_product_attention`` runs on the batch-first tensors
    directly: the training loop runs 1.3x faster (``bench_training``). Without gradients (scoring)
    PyTorch's fused fast path runs as before; other masks go through the parent's path.
    """

    def _sa_block(
        self,
        x: torch.Tensor,  # (B, N, d)
        attn_mask: torch.Tensor | None,
        key_padding_mask: torch.Tensor | None,  # (B, N): True or -inf where there is no session
        is_causal: bool = False,
    ) -> torch.Tensor:
        attention = self.self_attn
        if (
            attn_mask is not None
            or is_causal
            or not attention.batch_first
            or not attention._qkv_same_embed_dim
        ):
            return super()._sa_block(x, attn_mask, key_padding_mask, is_causal)
        batch, length, width = x.shape
        heads = attention.num_heads
        packed = F.linear(x, attention.in_proj_weight, attention.in_proj_bias)  # (B, N, 3d)
        q, k, v = packed.view(batch, length, 3, heads, width // heads).permute(
            2, 0, 3, 1, 4
        )  # (B, H, N, d/H)
        mask = None
        if key_padding_mask is not None:
            if key_padding_mask.dtype == torch.bool:
                key_padding_mask = torch.zeros_like(key_padding_mask, dtype=x.dtype).masked_fill(
                    key_padding_mask, float("-inf")
                )
            mask = key_padding_mask.view(batch, 1, 1, length)  # added to every head's scores
        dropout = attention.dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout
        )  # (B, H, N, d/H)
        attended = attended.transpose(1, 2).reshape(batch, length, width)  # (B, N, d)
        return self.dropout1(attention.out_proj(attended))


class LTVTransformer(nn.Module):
    """forward(sequence, mask, static, value=None, categories=None, history=None) ->
    (outputs (B, 3 | 1 + 3K, + C), loss or None)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.session_in = nn.Linear(config.session_features, d)
        self.time = TimeEncoding(config)
        layer = EncoderLayer(
            d, config.n_heads, config.d_ff, config.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.static_in = nn.Sequential(nn.Linear(config.static_features, d), nn.GELU())
        self.head = nn.Sequential(
            nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, head_outputs(config.mixture_components))
        )
        self.category_head = _category_head(2 * d, config)

    def forward(
        self,
        sequence: torch.Tensor,  # (B, N * F) flat, as stored in gold.user_sequences
        mask: torch.Tensor,  # (B, N), 1 for a real session
        static: torch.Tensor,  # (B, S), scaled
        value: torch.Tensor | None = None,  # (B,), the label
        categories: torch.Tensor | None = None,  # (B, C), 1 where the user bought in the category
        history: torch.Tensor | None = None,  # (B, C), each category's share of the user's past events
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch = sequence.shape[0]
        sessions = sequence.view(
            batch, self.config.sequence_length, self.config.session_features
        )  # (B, N, F)
        hidden = self.session_in(sessions) + self.time(sessions[..., self.config.time_feature])  # (B, N, d)
        padding = mask < 0.5  # (B, N), True where there is no session
        no_session = padding.all(dim=1, keepdim=True)  # a user with no session attends to one zero slot
        first_slot = torch.zeros_like(padding)
        first_slot[:, 0] = True
        padding = padding & ~(no_session & first_slot)
        hidden = self.encoder(hidden, src_key_padding_mask=padding)  # (B, N, d)
        keep = (~padding).unsqueeze(-1).to(hidden.dtype)  # (B, N, 1)
        pooled = (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)  # (B, d)
        joined = torch.cat([pooled, self.static_in(static)], dim=-1)  # (B, 2d)
        value_outputs = self.head(joined)  # (B, 3 | 1 + 3K): logit p, then the lognormal(s)
        outputs = _all_outputs(value_outputs, self.category_head, joined, history)  # (B, ... + C)
        loss = model_loss(outputs, self.config, value, categories) if value is not None else None
        return outputs, loss


class StaticMLP(nn.Module):
    """forward(sequence, mask, static, value=None, categories=None, history=None) -> (outputs, loss
    or None); ignores sessions."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.layers = nn.Sequential(
            nn.Linear(config.static_features, config.d_ff),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.d_ff, d),
            nn.GELU(),
            nn.Linear(d, head_outputs(config.mixture_components)),
        )
        self.category_head = _category_head(d, config)

    def forward(
        self,
        sequence: torch.Tensor,  # (B, N * F), unused
        mask: torch.Tensor,  # (B, N), unused
        static: torch.Tensor,  # (B, S), scaled
        value: torch.Tensor | None = None,  # (B,)
        categories: torch.Tensor | None = None,  # (B, C)
        history: torch.Tensor | None = None,  # (B, C)
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        hidden = self.layers[:-1](static)  # (B, d)
        outputs = _all_outputs(
            self.layers[-1](hidden), self.category_head, hidden, history
        )  # as LTVTransformer's
        loss = model_loss(outputs, self.config, value, categories) if value is not None else None
        return outputs, loss


ARCHITECTURES: dict[str, type[nn.Module]] = {"transformer": LTVTransformer, "mlp": StaticMLP}


def build_model(config: ModelConfig) -> nn.Module:
    """The model named by ``config.architecture``."""
    if config.architecture not in ARCHITECTURES:
        known = list(ARCHITECTURES)
        raise ValueError(f"unknown architecture {config.architecture!r}: expected one of {known}")
    return ARCHITECTURES[config.architecture](config)


def ziln_part(outputs: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """(B, 3 | 1 + 3K, + C) -> the ZILN head's outputs (B, 3 | 1 + 3K), what ltv_spark.ziln reads."""
    return outputs[..., : head_outputs(config.mixture_components)]


def category_logits(outputs: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """(B, 3 | 1 + 3K, + C) -> the cross-sell head's logits (B, C); (B, 0) without the head."""
    return outputs[..., head_outputs(config.mixture_components) :]


def category_loss(outputs: torch.Tensor, config: ModelConfig, categories: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of each category's logit, summed over categories, mean over users."""
    logits = category_logits(outputs, config)
    return F.binary_cross_entropy_with_logits(logits, categories, reduction="sum") / max(len(logits), 1)


def model_loss(
    outputs: torch.Tensor, config: ModelConfig, value: torch.Tensor, categories: torch.Tensor | None
) -> torch.Tensor:
    """The ZILN loss, plus ``category_weight`` x the cross-sell loss where the model has that head
    and ``categories`` are given."""
    loss = ziln_loss(ziln_part(outputs, config), value)
    if config.categories and categories is not None:
        loss = loss + config.category_weight * category_loss(outputs, config, categories)
    return loss
