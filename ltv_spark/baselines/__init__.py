"""The models the Transformer is measured against, all with one interface (ltv_spark.baselines.base)."""

from ltv_spark.baselines.base import Baseline, predict_on_spark
from ltv_spark.baselines.btyd import BtydBaseline, rfm_summary
from ltv_spark.baselines.static import GradientBoostingBaseline, LinearBaseline

__all__ = [
    "Baseline",
    "BtydBaseline",
    "GradientBoostingBaseline",
    "LinearBaseline",
    "predict_on_spark",
    "rfm_summary",
]
