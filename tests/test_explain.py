"""describe the reasons behind a prediction: integrated gradients of the model itself, in words,
naming what was changed on a hand-made user; the attributions add up to the change in log value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ltv_spark.explain import integrated_gradients, sequence_baseline
from ltv_spark.features import FEATURE_COLUMNS
from ltv_spark.model import SESSION_FEATURES, ModelConfig, build_model
from ltv_spark.scaling import FeatureScaling
from ltv_spark.score import LoadedModel
from ltv_spark.ziln import log_expected_value

AVERAGE = {column: 0.0 for column in FEATURE_COLUMNS} | {  # the hand-made average customer
    "days_since_last_purchase": 30.0,
    "days_since_last_session": 5.0,
    "orders": 2.0,
    "tenure_days": 200.0,
    "sessions_30d": 4.0,
}
WEIGHTS = {"days_since_last_session": -0.5, "refund_rate": -2.0, "orders_30d": 0.8, "sessions_30d": 0.3}


class LinearZiln(nn.Module):
    """A real torch model with the scorers' forward signature whose log expected value is
    ``WEIGHTS`` . scaled features (P(buy) ~ 1, sigma at its floor); it ignores the sessions."""

    def __init__(self) -> None:
        super().__init__()
        self.config = ModelConfig(sequence_length=2, architecture="mlp")
        self.mu = nn.Linear(len(FEATURE_COLUMNS), 1, bias=False)
        with torch.no_grad():
            self.mu.weight.copy_(torch.tensor([[WEIGHTS.get(c, 0.0) for c in FEATURE_COLUMNS]]))

    def forward(self, sequence, mask, static, value=None):
        constant = torch.ones_like(static[:, :1])
        return torch.cat([20.0 * constant, self.mu(static), -20.0 * constant], dim=1), None  # (B, 3)


def _users(changes: list[dict]) -> pd.DataFrame:
    rows = [AVERAGE | change for change in changes]
    frame = pd.DataFrame(rows, columns=list(FEATURE_COLUMNS))
    frame["sequence"] = [np.zeros(2 * SESSION_FEATURES, dtype=np.float32)] * len(rows)
    frame["mask"] = [np.zeros(2, dtype=np.float32)] * len(rows)
    return frame


def _average_scaling() -> FeatureScaling:
    """Scaling whose mean is the average customer: that customer's scaled features are all 0."""
    values = np.array([AVERAGE[c] for c in FEATURE_COLUMNS])
    squashed = np.sign(values) * np.log1p(np.abs(values))
    return FeatureScaling(tuple(FEATURE_COLUMNS), tuple(squashed), (1.0,) * len(FEATURE_COLUMNS))


def it_names_what_was_changed_on_a_hand_made_user():
    model = LoadedModel(LinearZiln(), _average_scaling())
    users = _users(
        [
            {},
            {"days_since_last_session": 41.0},
            {"refund_rate": 0.4},
            {"orders_30d": 3.0, "sessions_30d": 5.0},
        ]
    )
    average, lapsed, refunder, active = model.reasons(users)
    assert average == []  # nothing differs from the average customer: nothing to explain
    assert lapsed == ["no session in 41 days (lowers value)"]
    assert refunder == ["refund rate 40% (lowers value)"]
    assert active == [  # the larger effect first: 0.8 x log(4/1) against 0.3 x log(6/5)
        "3 orders in the last 30 days (raises value)",
        "5 sessions in the last 30 days (raises value)",
    ]


def it_splits_the_change_in_log_value_between_the_inputs_on_a_transformer():
    torch.manual_seed(3)
    config = ModelConfig(sequence_length=4, d_model=8, n_heads=2, d_ff=16, n_layers=1)
    model = build_model(config).eval()
    static = torch.randn(5, config.static_features)
    sequence = torch.randn(5, config.sequence_length * config.session_features)
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]] * 4 + [[0.0] * 4])  # the last user has no session
    static_part, sequence_part = integrated_gradients(model, sequence, mask, static)  # 8 steps
    average = sequence_baseline(model, sequence)  # zeros but the session times
    assert (average != 0).sum() == 5 * 4 and torch.equal(
        average[:, config.time_feature], sequence[:, 0 + config.time_feature]
    )
    with torch.no_grad():
        user = log_expected_value(model(sequence, mask, static)[0])
        baseline = log_expected_value(model(average, mask, torch.zeros_like(static))[0])
    total = static_part.sum(dim=1) + sequence_part
    assert total.numpy() == pytest.approx((user - baseline).numpy(), abs=0.003)
    assert sequence_part[:4].abs().min() > 0 and (user - baseline).abs().max() > 0.03  # not a trivial case
