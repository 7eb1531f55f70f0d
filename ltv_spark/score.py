"""Score users with a saved model inside Spark: a mapInArrow iterator that loads the model once
per Python worker (a model folder, or a registered MLflow model), then value deciles and segments
without collecting scores to the driver.

The UDF reads Arrow batches, not pandas frames: a list column (sequence, mask) reaches the model as
one flat buffer reshaped, where a pandas frame holds one numpy object per row to be stacked again.
That made the job's time beside the model about a third shorter (``benchmarks/bench_scoring.py``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from ltv_spark.allocator import reuse_freed_memory
from ltv_spark.artifacts import load_torch, read_categories, read_json
from ltv_spark.calibration import DecileCalibration
from ltv_spark.explain import (
    REASONS,
    STEPS,
    average_session,
    integrated_gradients,
    session_means,
    top_reasons,
)
from ltv_spark.features import CATEGORY_HISTORY
from ltv_spark.model import ModelConfig, build_model, category_logits, ziln_part
from ltv_spark.scaling import FeatureScaling
from ltv_spark.storage import Location
from ltv_spark.ziln import churn_probability, expected_value, p_buy

PREDICTION_COLUMNS = ("expected_ltv", "p_buy", "churn_probability")  # what a model returns per row
SCORE_SCHEMA = pa.schema([("user_id", pa.string()), *((name, pa.float64()) for name in PREDICTION_COLUMNS)])
TOP_CATEGORIES_TYPE = pa.list_(pa.struct([("category", pa.string()), ("probability", pa.float64())]))
EXPLAINED_SCHEMA = SCORE_SCHEMA.append(pa.field("reasons", pa.list_(pa.string()))).append(
    pa.field("top_categories", TOP_CATEGORIES_TYPE)
)
CATEGORY_SCHEMA = "user_id string, category string, probability double"
TOP_CATEGORIES = 3  # categories per user in gold.predictions.top_categories
REGISTERED_PREFIX = "models:/"
LOAD_LOG_ENV = "LTV_MODEL_LOAD_LOG"  # when set, each model load appends "<pid>\n" to that file

Rows = pd.DataFrame | pa.RecordBatch  # model input rows: a pandas frame (pyfunc) or an Arrow batch (UDF)
Predict = Callable[[Rows], pd.DataFrame]  # model input rows -> PREDICTION_COLUMNS, same order
_LOADED: dict[str, LoadedModel] = {}  # per Python worker process: artifact folder -> model


@dataclass(frozen=True)
class ModelInputs:
    """One batch of rows as the model reads them: plain arrays, unscaled, no per-row objects."""

    static: np.ndarray  # (B, S) float64: the static features in the scaling's column order
    sequence: np.ndarray  # (B, N * F) float32: N sessions of F features, oldest first
    mask: np.ndarray  # (B, N) float32: 1 where a session is real, 0 for padding

    @classmethod
    def of(cls, rows: Rows, columns: Sequence[str], config: ModelConfig) -> ModelInputs:
        """``rows``' arrays, from a pandas frame or an Arrow batch."""
        width, length = config.sequence_length * config.session_features, config.sequence_length
        if isinstance(rows, pa.RecordBatch):
            static = np.column_stack([_doubles(rows, name) for name in columns]).reshape(rows.num_rows, -1)
            return cls(static, _flat_lists(rows, "sequence", width), _flat_lists(rows, "mask", length))
        static = rows[list(columns)].to_numpy(dtype=float)
        return cls(static, _stack(rows["sequence"], width), _stack(rows["mask"], length))


@dataclass
class LoadedModel:
    """A model ready to score: weights in eval mode, its scaling and its feature order."""

    model: torch.nn.Module  # an LTVTransformer or a StaticMLP
    scaling: FeatureScaling
    categories: tuple[str, ...] = ()  # the cross-sell head's categories; () without that head

    @classmethod
    def load(cls, artifact_dir: str) -> LoadedModel:
        """The model saved in ``artifact_dir``; this process's malloc then keeps freed memory for
        the next batch (ltv_spark.allocator)."""
        reuse_freed_memory()
        state = load_torch(artifact_dir, "model.pt")
        if state is None:
            raise FileNotFoundError(f"{artifact_dir} holds no model.pt: train a model first (ltv train)")
        model = build_model(ModelConfig(**state["config"]))
        model.load_state_dict(state["model"])
        model.eval()
        log = os.environ.get(LOAD_LOG_ENV)
        if log:
            with open(log, "a") as handle:
                handle.write(f"{os.getpid()}\n")
        scaling = FeatureScaling.from_dict(read_json(artifact_dir, "scaling.json"))
        return cls(model, scaling, tuple(read_categories(artifact_dir)))

    def predict(self, rows: Rows, calibration: DecileCalibration | None = None) -> pd.DataFrame:
        """static feature columns, sequence, mask -> PREDICTION_COLUMNS; expected_ltv through
        ``calibration`` when given. What the model's MLflow pyfunc returns (ltv_spark.pyfunc)."""
        calibration = calibration or DecileCalibration()
        with torch.no_grad():
            outputs = ziln_part(self.model(*self.inputs(rows))[0], self.model.config)
        return pd.DataFrame(
            {
                "expected_ltv": calibration.apply(expected_value(outputs).double().numpy()),
                "p_buy": p_buy(outputs).double().numpy(),
                "churn_probability": churn_probability(outputs).double().numpy(),
            }
        )

    def inputs(self, rows: Rows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The model's inputs for ``rows``: sequence (B, N * F), mask (B, N), scaled static (B, S)."""
        return self.tensors(self.arrays(rows))

    def arrays(self, rows: Rows) -> ModelInputs:
        """``rows``' arrays in this model's feature order and sequence shape, unscaled."""
        return ModelInputs.of(rows, self.scaling.columns, self.model.config)

    def tensors(self, arrays: ModelInputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``arrays`` as the model's inputs, the static features scaled."""
        static = self.scaling.transform(arrays.static)
        return torch.from_numpy(arrays.sequence), torch.from_numpy(arrays.mask), torch.from_numpy(static)

    def reasons(
        self, frame: pd.DataFrame, average: Sequence[float], top: int = REASONS, steps: int = STEPS
    ) -> list[list[str]]:
        """Per row of ``frame``: the ``top`` reasons behind its predicted value against the average
        customer, ``average`` the average session, from ``steps`` integrated-gradient steps
        (ltv_spark.explain)."""
        arrays = self.arrays(frame)
        sequence, mask, static = self.tensors(arrays)
        static_part, session_part = integrated_gradients(self.model, sequence, mask, static, average, steps)
        values = arrays.static
        means = session_means(sequence.numpy(), mask.numpy(), self.model.config.session_features)
        return top_reasons(
            self.scaling.columns, values, static_part.numpy(), session_part.numpy(), means, average, top
        )

    def category_probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, C): each row's probability of buying in each of ``categories`` in the horizon."""
        with torch.no_grad():
            outputs, _ = self.model(*self.inputs(frame), history=self.history(frame))
        return torch.sigmoid(category_logits(outputs, self.model.config)).double().numpy()

    def history(self, frame: pd.DataFrame) -> torch.Tensor:
        """(rows, C): each row's category_history (ltv_spark.features) at the head's categories."""
        rows = frame[CATEGORY_HISTORY] if CATEGORY_HISTORY in frame else [None] * len(frame)
        maps = [
            {pair["category"]: pair["share"] for pair in (row if row is not None else [])} for row in rows
        ]
        shares = [[shares.get(name, 0.0) for name in self.categories] for shares in maps]
        return torch.tensor(shares, dtype=torch.float32).reshape(len(frame), len(self.categories))

    def top_categories(self, frame: pd.DataFrame, top: int = TOP_CATEGORIES) -> list[list[dict]]:
        """Per row: its ``top`` most likely categories, most likely first, as {category, probability};
        [] for a model without a cross-sell head."""
        if not self.categories:
            return [[] for _ in range(len(frame))]
        probabilities = self.category_probabilities(frame)
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top]
        return [
            [{"category": self.categories[j], "probability": float(row[j])} for j in best]
            for row, best in zip(probabilities, order, strict=True)
        ]

    def score(self, frame: pd.DataFrame, calibration: DecileCalibration | None = None) -> pd.DataFrame:
        """user_id, static feature columns, sequence, mask -> SCORE_SCHEMA columns."""
        return with_user_ids(frame, self.predict(frame, calibration))


def with_user_ids(frame: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """``predictions`` of ``frame``'s rows, in order, behind their user_id."""
    return pd.DataFrame(
        {"user_id": frame["user_id"].to_numpy(), **{c: predictions[c].to_numpy() for c in PREDICTION_COLUMNS}}
    )


def model_batches(batch: Rows, batch_size: int) -> Iterator[Rows]:
    """``batch``'s rows in slices of at most ``batch_size``: what the model is called on (an Arrow
    batch's slices share its buffers)."""
    for start in range(0, len(batch), batch_size):
        if isinstance(batch, pa.RecordBatch):
            yield batch.slice(start, batch_size)
        else:
            yield batch.iloc[start : start + batch_size]


def loaded_model(artifact_dir: str) -> LoadedModel:
    """The worker's copy of the model, loaded on first use."""
    key = Location.of(artifact_dir).uri
    if key not in _LOADED:
        _LOADED[key] = LoadedModel.load(key)
    return _LOADED[key]


def score_users(
    rows: DataFrame,
    model: str,
    batch_size: int,
    calibrated: bool = True,
    explain: bool = False,
    explain_steps: int = STEPS,
) -> DataFrame:
    """rows (user_id, features, sequence, mask) -> user_id, expected_ltv, p_buy, churn_probability
    (and, with ``explain``, ``reasons``: the top reasons of each value, ltv_spark.explain; and
    ``top_categories``: the cross-sell head's most likely categories, [] without that head).

    ``model`` is a model folder or a registered version (``models:/<name>/<version>``, see
    ltv_spark.registry). A folder's expected_ltv is calibrated with its calibration.json
    (ltv_spark.calibration), read here on the driver and shipped with the function;
    ``calibrated=False`` gives the raw ZILN mean (what the calibration is fitted on). A registered
    model is the MLflow pyfunc, loaded once per Python worker, its calibration inside it.
    Explaining costs one aggregation over ``rows`` (the average session) and ``explain_steps``
    forward and backward passes more per batch.
    """
    predictor = (
        _registered_predictor(model, calibrated)
        if is_registered(model)
        else _folder_predictor(model, calibrated)
    )
    explainer = _explainer(model) if explain else None
    average = average_session(rows) if explain else []  # the baseline's session: one aggregation
    schema = EXPLAINED_SCHEMA if explain else SCORE_SCHEMA

    def score_part(part: pa.RecordBatch, predict: Predict, explained: LoadedModel | None) -> pa.RecordBatch:
        predictions = predict(part)
        columns = {"user_id": part.column("user_id")}
        columns.update({name: predictions[name].to_numpy() for name in PREDICTION_COLUMNS})
        if explained is not None:  # reasons and categories read a pandas frame: per-row work anyway
            frame = part.to_pandas()
            columns["reasons"] = explained.reasons(frame, average, steps=explain_steps)
            columns["top_categories"] = explained.top_categories(frame)
        return pa.RecordBatch.from_pydict(columns, schema=schema)

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        predict = predictor()
        explained = explainer() if explainer else None
        for batch in batches:
            for part in model_batches(batch, batch_size):
                yield score_part(part, predict, explained)

    return rows.mapInArrow(score, from_arrow_schema(schema))


def category_predictions(rows: DataFrame, artifact_dir: str, batch_size: int) -> DataFrame:
    """rows -> user_id, category, probability: one row per user and category of the model's
    cross-sell head (none without that head); what the cross-sell evaluation ranks."""

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = loaded_model(artifact_dir)
        names = np.array(model.categories, dtype=object)
        for batch in batches:
            for part in model_batches(batch, batch_size):
                if not len(names):
                    continue
                probabilities = model.category_probabilities(part)  # (rows, C)
                yield pd.DataFrame(
                    {
                        "user_id": np.repeat(part["user_id"].to_numpy(), len(names)),
                        "category": np.tile(names, len(part)),
                        "probability": probabilities.reshape(-1),
                    }
                )

    return rows.mapInPandas(predict, CATEGORY_SCHEMA)


def is_registered(model: str) -> bool:
    """Whether ``model`` names a registered MLflow model rather than a folder."""
    return model.startswith(REGISTERED_PREFIX)


def _folder_predictor(artifact_dir: str, calibrated: bool) -> Callable[[], Predict]:
    calibration = DecileCalibration.read(artifact_dir) if calibrated else DecileCalibration()
    return lambda: functools.partial(loaded_model(artifact_dir).predict, calibration=calibration)


def _explainer(model: str) -> Callable[[], LoadedModel]:
    if not is_registered(model):
        return lambda: loaded_model(model)
    from ltv_spark.registry import worker_model  # MLflow is imported where a registered model is used

    return worker_model(model)


def _registered_predictor(uri: str, calibrated: bool) -> Callable[[], Predict]:
    if not calibrated:
        raise ValueError(f"{uri}: a registered model scores as it was logged, calibration included")
    from ltv_spark.registry import worker_loader  # MLflow is imported where a registered model is used

    return worker_loader(uri)


def model_predictions(rows: DataFrame, model: str, batch_size: int) -> DataFrame:
    """rows -> user_id, predicted (the calibrated expected LTV), churn_score (churn probability):
    a neural model's scores in the shape every model is compared in (ltv evaluate)."""
    scored = score_users(rows, model, batch_size)
    return scored.select(
        "user_id", F.col("expected_ltv").alias("predicted"), F.col("churn_probability").alias("churn_score")
    )


def with_sequences(features: DataFrame, sequences: DataFrame, sequence_length: int, width: int) -> DataFrame:
    """Features left-joined with sequences; a user without a session gets an all-padding sequence."""
    zeros = F.array_repeat(F.lit(0.0).cast("float"), sequence_length * width)
    no_mask = F.array_repeat(F.lit(0.0).cast("float"), sequence_length)
    joined = features.join(
        sequences.select("user_id", "cutoff", "sequence", "mask"), ["user_id", "cutoff"], "left"
    )
    return joined.withColumn("sequence", F.coalesce("sequence", zeros)).withColumn(
        "mask", F.coalesce("mask", no_mask)
    )


def add_deciles_and_segments(scores: DataFrame, reference: DataFrame | None = None) -> DataFrame:
    """value_decile (1 = highest expected LTV) from approximate quantiles (nine numbers reach the
    driver, never the scores), and a segment: top_1pct, top_10pct, at_risk_high_value, rest.

    The cut points come from ``reference`` when given (a micro-batch of re-scored users is placed
    among the whole population's last scores), else from ``scores`` themselves.
    """
    population = reference if reference is not None else scores
    cuts = population.approxQuantile("expected_ltv", [i / 10 for i in range(1, 10)] + [0.99], 1e-4)
    deciles, top_1pct = cuts[:9], cuts[9]
    decile = _decile_column(deciles)
    segment = (
        F.when(F.col("expected_ltv") >= F.lit(top_1pct), F.lit("top_1pct"))
        .when((decile == 1) & (F.col("churn_probability") > 0.5), F.lit("at_risk_high_value"))
        .when(decile == 1, F.lit("top_10pct"))
        .otherwise(F.lit("rest"))
    )
    return scores.withColumn("value_decile", decile).withColumn("segment", segment)


def _decile_column(cuts: list[float]) -> Column:
    """1 for values above the 90th percentile cut, ..., 10 for values at or below the 10th."""
    decile = F.lit(10)
    for index, cut in enumerate(cuts):  # cuts[0] = 10th percentile ... cuts[8] = 90th
        decile = F.when(F.col("expected_ltv") > F.lit(cut), F.lit(9 - index)).otherwise(decile)
    return decile


def _stack(column: pd.Series, width: int) -> np.ndarray:
    return np.stack(column.to_numpy()).astype(np.float32).reshape(len(column), width)


def _doubles(batch: pa.RecordBatch, name: str) -> np.ndarray:
    """A numeric or boolean column as float64, null as NaN (what pandas' to_numpy(float) gives)."""
    return pc.cast(batch.column(name), pa.float64()).to_numpy(zero_copy_only=False)


def _flat_lists(batch: pa.RecordBatch, name: str, width: int) -> np.ndarray:
    """(rows, width) float32 from a list column of ``width`` numbers per row, read as one buffer
    (copied once: torch warns on, and must not write to, Arrow's read-only memory)."""
    column = batch.column(name)
    values = column.flatten().to_numpy(zero_copy_only=False, writable=True).astype(np.float32, copy=False)
    if column.null_count or values.size != batch.num_rows * width:
        raise ValueError(
            f"column {name}: expected {width} numbers in every row, got {values.size} in "
            f"{batch.num_rows} rows ({column.null_count} null)"
        )
    return values.reshape(batch.num_rows, width)
