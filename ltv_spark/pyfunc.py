"""The MLflow pyfunc of a trained ltv_spark model, logged as code ("models from code").

MLflow runs this file to build the model when it loads it: nothing in the model is unpickled.
``load_context`` reads the model folder that travels as the pyfunc's artifact (weights loaded with
``weights_only=True``, the config, scaling and calibration as JSON); the ltv_spark package travels
beside it (``code_paths``), so a process without a checkout loads it too. ``predict`` takes the
static feature columns, ``sequence`` and ``mask`` and returns expected_ltv (calibrated), p_buy and
churn_probability, one row per input row.
"""

from __future__ import annotations

import mlflow
import pandas as pd

from ltv_spark.artifacts import MODEL_ARTIFACT
from ltv_spark.calibration import DecileCalibration
from ltv_spark.score import LoadedModel


class LtvModel(mlflow.pyfunc.PythonModel):
    """A trained Transformer (or MLP) with its scaling and decile calibration."""

    def load_context(self, context) -> None:
        folder = context.artifacts[MODEL_ARTIFACT]
        self.model = LoadedModel.load(folder)
        self.calibration = DecileCalibration.read(folder)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.model.predict(model_input, self.calibration)


mlflow.models.set_model(LtvModel())
