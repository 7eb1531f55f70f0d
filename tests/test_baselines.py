"""Baselines: BG/NBD + Gamma-Gamma against the published CDNOW estimates; every baseline fits and
predicts on tiny data, the same on Spark as in one process."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ltv_spark.baselines import (
    BtydBaseline,
    GradientBoostingBaseline,
    LinearBaseline,
    predict_on_spark,
    rfm_summary,
)
from ltv_spark.cdnow import cdnow_path
from ltv_spark.metrics import spearman
from ltv_spark.pipeline import CDNOW_EVENTS, ingest_cdnow

# Fader, Hardie & Lee (2005), the 2,357-customer sample, 39-week calibration (1997-01-01..09-30).
PUBLISHED_BG_NBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}
CALIBRATION_END = dt.date(1997, 10, 1)  # the first day after calibration: the cutoff


@pytest.fixture(scope="module")
def cdnow_sample_summary(spark, tmp_path_factory) -> pd.DataFrame:
    from ltv_spark.tables import DeltaRsStore

    store = DeltaRsStore(spark, str(tmp_path_factory.mktemp("cdnow") / "warehouse"))
    ingest_cdnow(spark, store, str(cdnow_path("CDNOW_sample.txt")))
    return rfm_summary(store.read(CDNOW_EVENTS), CALIBRATION_END, time_unit_days=7).toPandas()


def by_user(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("user_id", ignore_index=True)


def it_builds_the_rfm_summary_the_paper_used(cdnow_sample_summary):
    reference = pd.read_csv(cdnow_path("cdnow_customers_summary_with_transactions.csv"))
    summary = cdnow_sample_summary
    assert len(summary) == len(reference) == 2357
    for ours, theirs in [("frequency", "x"), ("recency", "t_x"), ("T", "T"), ("monetary_value", "zbar")]:
        # the reference rounds to two decimals
        assert summary[ours].sort_values().to_numpy() == pytest.approx(
            reference[theirs].sort_values().to_numpy(), abs=0.006
        ), ours


def it_matches_the_published_bg_nbd_and_gamma_gamma_estimates(cdnow_sample_summary):
    fitted = BtydBaseline.fit(cdnow_sample_summary, horizon=39.0).parameters()
    for name, published in PUBLISHED_BG_NBD.items():
        assert abs(fitted[name] - published) <= 0.015, (name, fitted[name])
    for name, published in PUBLISHED_GAMMA_GAMMA.items():
        assert abs(fitted[name] - published) <= 0.1, (name, fitted[name])


def it_predicts_value_and_churn_for_buyers_and_zero_for_users_without_a_purchase(spark, cdnow_sample_summary):
    model = BtydBaseline.fit(cdnow_sample_summary, horizon=39.0)
    rows = pd.concat(
        [cdnow_sample_summary.head(200), pd.DataFrame({"user_id": ["never-bought"]})], ignore_index=True
    )
    local = model.predict(rows)
    assert np.isfinite(local["predicted"]).all() and (local["predicted"] >= 0).all()
    assert local["churn_score"].between(0, 1).all()
    never = local[local.user_id == "never-bought"].iloc[0]
    assert (never["predicted"], never["churn_score"]) == (0.0, 1.0)
    # more repeat purchases at the same recency and age: more expected value, less churn
    probe = pd.DataFrame(
        {"user_id": ["a", "b"], "frequency": [1.0, 6.0], "recency": [30.0, 30.0], "T": [38.0, 38.0]}
    ).assign(monetary_value=20.0, mean_value=20.0)
    a, b = model.predict(probe).itertuples(index=False)
    assert b.predicted > a.predicted and b.churn_score < a.churn_score
    on_spark = predict_on_spark(spark.createDataFrame(rows), model).toPandas()
    pd.testing.assert_frame_equal(by_user(on_spark), by_user(local))


def _tiny_examples(seed: int, users: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    orders = rng.poisson(2.0, users).astype(float)
    recency = rng.uniform(0, 200, users)
    value = np.where(rng.random(users) < np.exp(-recency / 60), orders * rng.uniform(20, 40, users), 0.0)
    return pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(users)],
            "orders": orders,
            "days_since_last_purchase": recency,
            "net_value": value,
            "bought": (value > 0).astype(int),
        }
    )


def it_fits_and_predicts_the_static_baselines_on_tiny_data(spark):
    features = ["orders", "days_since_last_purchase"]
    train, test = _tiny_examples(1), _tiny_examples(2)
    for model in (GradientBoostingBaseline.fit(train, features, seed=3), LinearBaseline.fit(train, features)):
        local = model.predict(test)
        assert list(local.columns) == ["user_id", "predicted", "churn_score"]
        assert spearman(test["net_value"], local["predicted"]) > 0.4, model.name
        assert spearman(test["bought"] == 0, local["churn_score"]) > 0.3, model.name
        on_spark = predict_on_spark(spark.createDataFrame(test).repartition(3), model).toPandas()
        pd.testing.assert_frame_equal(
            on_spark.sort_values("user_id", ignore_index=True),
            local.sort_values("user_id", ignore_index=True),
        )
