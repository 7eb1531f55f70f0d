"""describe the reasons behind a prediction: integrated gradients of the model itself, in words,
naming what was changed on a hand-made user; the attributions add up to the change in log value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ltv_spark.explain import (
    average_session,
    integrated_gradients,
    sequence_baseline,
    session_means,
    top_reasons,
)
from ltv_spark.features import FEATURE_COLUMNS
from ltv_spark.model import SESSION_FEATURES, ModelConfig, build_model
from ltv_spark.scaling import FeatureScaling
from ltv_spark.score import LoadedModel
from ltv_spark.sequences import SESSION_VECTOR
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
    average, lapsed, refunder, active = model.reasons(users, [0.0] * SESSION_FEATURES)
    assert model.reasons(users, [0.0] * SESSION_FEATURES, steps=2) == [average, lapsed, refunder, active]
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
    average = torch.randn(config.session_features).tolist()
    static_part, session_part = integrated_gradients(model, sequence, mask, static, average)  # 8 steps
    typical = sequence_baseline(model, sequence, mask, average).view(5, 4, -1)
    sessions = sequence.view(5, 4, -1)
    time = config.time_feature
    assert torch.equal(typical[:, :, time], sessions[:, :, time])  # the user's own session times
    assert typical[0, 0, 0] == average[0] and torch.equal(typical[:, 2:], sessions[:, 2:])  # padding kept
    assert session_part[:, time].abs().max() == 0 and session_part[4].abs().max() == 0  # nothing moved
    with torch.no_grad():
        user = log_expected_value(model(sequence, mask, static)[0])
        baseline = log_expected_value(model(typical.view(5, -1), mask, torch.zeros_like(static))[0])
    total = static_part.sum(dim=1) + session_part.sum(dim=1)
    assert total.numpy() == pytest.approx((user - baseline).numpy(), abs=0.003)
    assert session_part[:4].abs().sum(dim=1).min() > 0 and (user - baseline).abs().max() > 0.03  # not trivial


def it_reads_the_session_numbers_in_groups_against_the_average_session(spark):
    columns = ("orders",)
    average = [0.0] * SESSION_FEATURES
    views = SESSION_VECTOR.index("log_views")
    average[views] = 1.0
    rows = [  # one user, two sessions: 3 and 1 log-views on average 2, above the average session
        np.array(
            [
                [3.0 if f == views else 0.0 for f in range(SESSION_FEATURES)],
                [1.0 if f == views else 0.0 for f in range(SESSION_FEATURES)],
            ]
        ).ravel()
    ]
    means = session_means(np.stack(rows), np.array([[1.0, 1.0]]), SESSION_FEATURES)
    attribution = np.zeros((1, SESSION_FEATURES))
    attribution[0, views] = 0.4
    reasons = top_reasons(columns, np.array([[2.0]]), np.array([[-0.1]]), attribution, means, average)
    assert reasons == [["views per session above average (raises value)", "2 orders in all (lowers value)"]]
    frame = spark.createDataFrame(
        [(rows[0].tolist(), [1.0, 1.0]), ([9.0] * 2 * SESSION_FEATURES, [0.0, 0.0])],
        "sequence array<float>, mask array<float>",
    )
    assert average_session(frame)[views] == pytest.approx(2.0)  # padding never counts
