"""Typed configuration: conf/base.yaml, an environment overlay, then ``--set`` overrides.

Every setting the pipeline reads lives in one of the dataclasses below. Loading is strict on
purpose: a misspelt key or a value of the wrong type stops the job at start-up with the key path
and the expected type, instead of silently falling back to a default hours into a run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

_BUNDLED_CONF = Path(__file__).resolve().parent / "conf"  # inside an installed wheel (setup.py)
CONF_DIR = _BUNDLED_CONF if _BUNDLED_CONF.is_dir() else Path(__file__).resolve().parent.parent / "conf"
ENVIRONMENTS = ("local", "cluster", "databricks")


class ConfigError(ValueError):
    """A configuration file or override that does not match the schema below."""


@dataclass(frozen=True)
class SparkConfig:
    """How to obtain the SparkSession (see ltv_spark.session)."""

    master: str | None = None  # None: use the running / spark-submit supplied master
    app_name: str = "ltv_spark"
    shuffle_partitions: int = 8
    driver_memory: str = "4g"
    conf: dict[str, str] = field(default_factory=dict)
    jvm_connector: bool = False  # local: load the cached Delta/S3 jars even when tables run on delta-rs


@dataclass(frozen=True)
class TablesConfig:
    """Where logical tables such as ``bronze.events`` live and which Delta engine writes them."""

    engine: Literal["auto", "delta-rs", "spark-delta"] = "auto"
    root: str = "data/warehouse"  # folder (or URI) holding one folder per table
    catalog: str | None = None  # Databricks Unity Catalog: tables become catalog.schema.table
    staging_dir: str = "_staging"  # under each table root: Spark's files before they are committed
    vacuum_retention_hours: int = 168  # ltv vacuum: files no version of the last 7 days needs go


@dataclass(frozen=True)
class BtydWorldConfig:
    """True parameters of the purchases-only world (ltv_spark.world.btyd), rates per week: BG/NBD
    (r, alpha, a, b) and Gamma-Gamma (p, q, gamma); by default the published CDNOW estimates."""

    r: float = 0.243
    alpha: float = 4.414
    a: float = 0.793
    b: float = 2.426
    p: float = 6.25
    q: float = 3.74
    gamma: float = 15.44


@dataclass(frozen=True)
class WorldConfig:
    """The generated world (ltv_spark.world): which model, size, time span and dirt."""

    model: Literal["sessions", "btyd"] = "sessions"  # btyd: purchases only, closed-form ceiling
    btyd: BtydWorldConfig = field(default_factory=BtydWorldConfig)
    users: int = 20_000
    days: int = 540
    start_date: dt.date = dt.date(2025, 6, 1)
    seed: int = 7
    dirty_rate: float = 0.002
    format: Literal["csv", "json", "parquet"] = "csv"
    files_per_day: int = 1
    users_per_partition: int = 2_500
    out: str = "data/raw/events"
    truth_cutoff: dt.date = dt.date(2026, 5, 1)
    truth_horizon_days: int = 180


@dataclass(frozen=True)
class IngestConfig:
    """Raw drops -> bronze.events (ltv_spark.ingest)."""

    raw_dir: str = "data/raw/events"
    format: Literal["csv", "json", "parquet"] = "csv"
    min_event_time: dt.date = dt.date(2000, 1, 1)
    max_future_hours: int = 24  # events later than ingestion time + this are out of range
    app_id: str = "ltv_spark.ingest"
    # A file ingested before whose size or modification time changed (a re-drop): read it again
    # (rows already in bronze count as duplicates) or quarantine the new version whole.
    changed_files: Literal["reingest", "quarantine"] = "reingest"


@dataclass(frozen=True)
class FeaturesConfig:
    """Sessions, point-in-time features, sequences, labels and the training cutoffs."""

    session_gap_minutes: int = 30
    max_events_per_user_day: int = 2000  # heavy users and bots are capped per day
    sequence_length: int = 32
    horizon_days: int = 365
    evaluation_cutoff: dt.date = dt.date(2025, 11, 23)
    train_cutoffs: int = 24  # weekly: 4x the examples of 6 monthly ones, +0.008 validation Gini (README)
    cutoff_step_days: int = 7
    app_id: str = "ltv_spark.sessions"


@dataclass(frozen=True)
class TrainConfig:
    """Model training (the training issue fills in the rest)."""

    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3  # the weekly plan's: 2e-3 overfits by epoch 2-5 (README); demo: 2e-3
    lr_schedule: Literal["constant", "cosine"] = "constant"  # cosine: warm-up, then decay to a tenth
    seed: int = 7
    patience: int = 3  # epochs improving neither the best validation loss nor Gini before stopping
    select_by: Literal["validation_loss", "validation_gini"] = "validation_gini"  # the epoch kept
    loss_tolerance: float = 0.05  # nats/user: an epoch kept by Gini is this close to the best loss
    launcher: Literal["local", "horovod", "torch-distributor"] = "local"
    num_proc: int = 2
    d_model: int = 32
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 64
    dropout: float = 0.0  # 0.1 ranked no better on the demo world and halved training speed
    architecture: Literal["transformer", "mlp"] = "transformer"  # mlp: the static-feature baseline
    mixture_components: int = 1  # lognormals of a buyer's spend in the ZILN head (1: plain ZILN)
    next_categories: int = 20  # cross-sell head: the categories most bought in training (0: no head)
    category_weight: float = 1.0  # of the cross-sell loss (summed over categories) beside the ZILN loss
    models_root: str = "data/models"
    cache_dir: str = "data/petastorm_cache"  # Petastorm's materialized rows, deleted after training


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow (ltv_spark.tracking, ltv_spark.registry): where runs and registered models live.

    Offline: a SQLite store and an artifact folder under data/ (no server). On Databricks: the
    workspace tracking server and Unity Catalog (conf/databricks.yaml).
    """

    tracking_uri: str = "sqlite:///data/mlflow/mlflow.db"  # a relative sqlite path: from the working dir
    registry_uri: str | None = None  # None: the tracking store also holds the registry
    artifact_root: str | None = "data/mlflow/artifacts"  # of a new experiment; None: the server's
    experiment: str = "ltv_spark"  # Databricks: a workspace path such as /Shared/ltv_spark
    # one registered model per architecture: load_config fills {architecture} from train.architecture
    # (ltv_transformer, ltv_mlp); Unity Catalog: <catalog>.<schema>.ltv_{architecture}
    registered_model: str = "ltv_transformer"


@dataclass(frozen=True)
class ScoreConfig:
    """Batch scoring (ltv_spark.score)."""

    batch_size: int = 1024  # rows per model call inside the scoring UDF
    model: str = "champion"  # champion | challenger | models:/<name>@<alias> or /<version> | a folder
    explain_steps: int = 8  # integrated-gradient steps behind each user's reasons (ltv_spark.explain)


@dataclass(frozen=True)
class RefreshConfig:
    """The daily job (ltv refresh): which model scores, when to retrain, how long its lease lasts."""

    model: str = "champion"  # the registered model's alias (or any model ScoreConfig.model accepts)
    retrain_weekday: int | None = 0  # 0 = Monday .. 6 = Sunday; null: never retrain in the refresh
    lease_minutes: float = 360  # a dead job's lease (ops.leases) frees after this; a backfill renews daily
    drift_threshold: float = 0.25  # a PSI above this (any feature, or the prediction) is an ALERT


@dataclass(frozen=True)
class StreamConfig:
    """Near-real-time scoring (ltv stream)."""

    checkpoint: str = "data/checkpoints/stream"  # Structured Streaming's progress: keep it with the tables
    trigger_seconds: int = 30  # how often new drops are picked up


@dataclass(frozen=True)
class EvaluateConfig:
    """Model comparison on the evaluation cutoff (ltv evaluate) and on CDNOW."""

    seeds: list[int] = field(default_factory=lambda: [7, 8, 9])  # one training per seed, neural models
    max_fit_rows: int = 500_000  # rows the driver-side fits (BTYD, scikit-learn) read at most
    btyd_time_unit_days: int = 7  # BG/NBD time unit: weeks, as in the literature
    btyd_spend_from: Literal["all", "repeat"] = "all"  # purchases the Gamma-Gamma prediction conditions on
    ceiling_particles: int = 500  # sessions world's observable ceiling: particles per set (0: none)
    ceiling_users: int = 4000  # ... for about this many of the world's users (a fixed sample; 0: all)
    models_root: str = "data/evaluation/models"  # kept apart from the models that score production
    reports_dir: str = "reports"
    cdnow_cutoff: dt.date = dt.date(1997, 10, 1)  # 39 weeks of calibration from 1997-01-01
    cdnow_horizon_days: int = 273  # 39 weeks of holdout
    cdnow_folds: int = 2  # supervised models are trained on the other folds' customers
    cdnow_validation_share: float = 0.1  # of each training fold, for early stopping
    cdnow_learning_rate: float = 2e-3  # 42 steps an epoch: at 1e-3 the MLP still rises at epoch 9 (README)
    # ltv learning-curve: multiples of the configured training set, and the models trained at each
    curve_sizes: list[float] = field(default_factory=lambda: [0.125, 0.25, 0.5, 1.0, 2.0, 4.0])
    curve_models: list[str] = field(default_factory=lambda: ["gradient_boosting", "mlp_ziln", "transformer"])


@dataclass(frozen=True)
class DemoConfig:
    """What ``ltv demo`` changes so that the whole pipeline runs in minutes on a laptop: the quick
    training plan (6 monthly cutoffs: a quarter of the default plan's examples, and of its training
    time) with the learning rate that plan wants (a quarter of the steps per epoch: 0.002 ranked
    0.004 above 0.001 there, while on the weekly plan 0.001 ranks 0.0035 above 0.002), and reasons
    from 4 integrated-gradient steps, not 8 (half the explaining time; on the demo world's model
    98.6% of users get the same three reasons as from 32 steps, against 99.5% from 8). Everything
    else is the configuration as given."""

    train_cutoffs: int = 6
    cutoff_step_days: int = 30
    learning_rate: float = 2e-3
    explain_steps: int = 4

    def applied_to(self, config: Config) -> Config:
        """``config`` with the demo's training plan, its learning rate and explaining steps."""
        features = dataclasses.replace(
            config.features, train_cutoffs=self.train_cutoffs, cutoff_step_days=self.cutoff_step_days
        )
        train = dataclasses.replace(config.train, learning_rate=self.learning_rate)
        score = dataclasses.replace(config.score, explain_steps=self.explain_steps)
        return dataclasses.replace(config, features=features, train=train, score=score)


@dataclass(frozen=True)
class Config:
    """The whole configuration of one run."""

    env: Literal["local", "cluster", "databricks"] = "local"
    spark: SparkConfig = field(default_factory=SparkConfig)
    tables: TablesConfig = field(default_factory=TablesConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    refresh: RefreshConfig = field(default_factory=RefreshConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)


def cdnow_config(config: Config) -> Config:
    """``config`` as ``ltv evaluate --data cdnow`` trains its neural models: at
    ``evaluate.cdnow_learning_rate``. CDNOW gives 42 optimizer steps an epoch, the weekly plan of
    ``train.learning_rate`` about 730: at the weekly plan's 0.001 the CDNOW MLP still rises at its
    last epoch and ranks 0.011 lower on validation (README)."""
    train = dataclasses.replace(config.train, learning_rate=config.evaluate.cdnow_learning_rate)
    return dataclasses.replace(config, train=train)


def load_config(
    env: str = "local", overrides: list[str] | None = None, conf_dir: Path | str = CONF_DIR
) -> Config:
    """Load base.yaml, deep-merge ``<env>.yaml`` over it, apply ``key.path=value`` overrides."""
    if env not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment {env!r}: expected one of {', '.join(ENVIRONMENTS)}")
    conf_dir = Path(conf_dir)
    merged = _read_yaml(conf_dir / "base.yaml")
    merged = _deep_merge(merged, _read_yaml(conf_dir / f"{env}.yaml"))
    merged["env"] = env
    for override in overrides or []:
        _apply_override(merged, override)
    return _with_registered_model(_build(Config, merged, path=""))


def _with_registered_model(config: Config) -> Config:
    """tracking.registered_model with ``{architecture}`` filled from train.architecture."""
    template = config.tracking.registered_model
    try:
        name = template.format(architecture=config.train.architecture)
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(
            f"tracking.registered_model: {template!r} may name only {{architecture}} ({error!r})"
        ) from None
    return dataclasses.replace(config, tracking=dataclasses.replace(config.tracking, registered_model=name))


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML/JSON-friendly dict of a config (dates as ISO strings), e.g. to save with a model."""

    def plain(value: Any) -> Any:
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(loaded).__name__}")
    return loaded


def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_override(tree: dict[str, Any], override: str) -> None:
    """Apply one ``a.b.c=value`` override; the value is read as YAML (so 3 is an int, x a string)."""
    key_path, sep, raw_value = override.partition("=")
    if not sep or not key_path.strip():
        raise ConfigError(f"override {override!r}: expected KEY.PATH=VALUE, e.g. train.epochs=3")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"override {override!r}: value is not valid YAML: {error}") from error
    *parents, leaf = key_path.strip().split(".")
    if parents[:2] == ["spark", "conf"] and len(parents) > 2:  # spark.conf.<a Spark key with dots>
        parents, leaf = ["spark", "conf"], ".".join([*parents[2:], leaf])
    node = tree
    for depth, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parents[: depth + 1])
            raise ConfigError(f"override {override!r}: {where} is a value, not a section")
        node = child
    node[leaf] = value


def _build(cls: type, values: Any, path: str) -> Any:
    """Turn a mapping into dataclass ``cls``, checking every key and type on the way."""
    where = path or "<top level>"
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping (section {cls.__name__}), got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown key {_join(path, unknown[0])!r}: {cls.__name__} accepts {', '.join(sorted(known))}"
        )
    kwargs = {name: _coerce(hints[name], value, _join(path, name)) for name, value in values.items()}
    return cls(**kwargs)


def _coerce(expected: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(expected)
    if dataclasses.is_dataclass(expected):
        return _build(expected, value, path)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(expected)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(option, value, path)
            except ConfigError as error:
                errors.append(error)
        raise ConfigError(f"{path}: expected {_type_name(expected)}, got {value!r}")
    if origin is Literal:
        allowed = typing.get_args(expected)
        if value not in allowed:
            raise ConfigError(f"{path}: expected one of {list(allowed)}, got {value!r}")
        return value
    if origin is dict:
        key_type, value_type = typing.get_args(expected)
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return {_coerce(key_type, k, path): _coerce(value_type, v, f"{path}.{k}") for k, v in value.items()}
    if origin is list:
        (item_type,) = typing.get_args(expected)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return [_coerce(item_type, v, f"{path}[{i}]") for i, v in enumerate(value)]
    return _coerce_scalar(expected, value, path)


def _coerce_scalar(expected: type, value: Any, path: str) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # YAML reads "4" or 1.5 as numbers where a string (e.g. a Spark conf) is meant
    if expected is str and isinstance(value, bool):
        return "true" if value else "false"  # likewise true/false, spelt as Spark and Hadoop spell them
    if expected is dt.date and isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{path}: expected a date YYYY-MM-DD, got {value!r}") from None
    if expected is dt.date and isinstance(value, dt.datetime):
        raise ConfigError(f"{path}: expected a date YYYY-MM-DD, got a timestamp {value!r}")
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{path}: expected {_type_name(expected)}, got {type(value).__name__} {value!r}")


def _type_name(expected: Any) -> str:
    if expected is dt.date:
        return "date (YYYY-MM-DD)"
    return getattr(expected, "__name__", None) or str(expected).replace("typing.", "")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
