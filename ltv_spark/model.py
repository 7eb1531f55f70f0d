"""The LTV Transformer: a small encoder over a user's last sessions, joined with static features,
feeding a ZILN head (ltv_spark.ziln). Shapes: B users, N sessions, F numbers per session, S static.

``StaticMLP`` is the seeds' DNN baseline: the same ZILN head on the static features alone, with the
same forward signature, so the one training loop and the one scoring UDF serve both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ltv_spark.sequences import SESSION_VECTOR
from ltv_spark.ziln import head_outputs, ziln_loss

SESSION_FEATURES = len(SESSION_VECTOR)
TIME_FEATURE = SESSION_VECTOR.index("log_days_before_cutoff")


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


class LTVTransformer(nn.Module):
    """forward(sequence, mask, static, value=None) -> (outputs (B, 3 | 1 + 3K), loss or None)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.session_in = nn.Linear(config.session_features, d)
        self.time = TimeEncoding(config)
        layer = nn.TransformerEncoderLayer(
            d, config.n_heads, config.d_ff, config.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.static_in = nn.Sequential(nn.Linear(config.static_features, d), nn.GELU())
        self.head = nn.Sequential(
            nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, head_outputs(config.mixture_components))
        )

    def forward(
        self,
        sequence: torch.Tensor,  # (B, N * F) flat, as stored in gold.user_sequences
        mask: torch.Tensor,  # (B, N), 1 for a real session
        static: torch.Tensor,  # (B, S), scaled
        value: torch.Tensor | None = None,  # (B,), the label
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
        outputs = self.head(joined)  # (B, 3 | 1 + 3K): logit p, then the lognormal(s)
        loss = ziln_loss(outputs, value) if value is not None else None
        return outputs, loss


class StaticMLP(nn.Module):
    """forward(sequence, mask, static, value=None) -> (outputs, loss or None); ignores sessions."""

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

    def forward(
        self,
        sequence: torch.Tensor,  # (B, N * F), unused
        mask: torch.Tensor,  # (B, N), unused
        static: torch.Tensor,  # (B, S), scaled
        value: torch.Tensor | None = None,  # (B,)
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        outputs = self.layers(static)  # (B, 3 | 1 + 3K): logit p, then the lognormal(s)
        loss = ziln_loss(outputs, value) if value is not None else None
        return outputs, loss


ARCHITECTURES: dict[str, type[nn.Module]] = {"transformer": LTVTransformer, "mlp": StaticMLP}


def build_model(config: ModelConfig) -> nn.Module:
    """The model named by ``config.architecture``."""
    if config.architecture not in ARCHITECTURES:
        known = list(ARCHITECTURES)
        raise ValueError(f"unknown architecture {config.architecture!r}: expected one of {known}")
    return ARCHITECTURES[config.architecture](config)
