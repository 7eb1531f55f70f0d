"""describe config: base + overlay + --set, strict about keys and types."""

import dataclasses
import datetime as dt

import pytest

from ltv_spark.config import ConfigError, cdnow_config, config_to_dict, load_config


def it_loads_every_environment():
    for env in ("local", "cluster", "databricks"):
        config = load_config(env)
        assert config.env == env
    assert load_config("local").tables.engine == "delta-rs"
    assert load_config("databricks").tables.catalog == "main"
    assert load_config("cluster").spark.master is None


def it_runs_the_demo_on_its_quick_plan_and_everything_else_on_the_weekly_one():
    config = load_config("local", ["features.horizon_days=60"])
    assert (config.features.train_cutoffs, config.features.cutoff_step_days) == (24, 7)
    demo = config.demo.applied_to(config)
    assert (demo.features.train_cutoffs, demo.features.cutoff_step_days) == (6, 30)
    assert (config.score.explain_steps, demo.score.explain_steps) == (8, 4)  # reasons from fewer steps
    assert (config.train.learning_rate, demo.train.learning_rate) == (0.001, 0.002)  # each plan's own
    assert demo.train == dataclasses.replace(config.train, learning_rate=0.002)  # nothing else changes
    assert demo.features.horizon_days == 60
    assert demo.score.batch_size == config.score.batch_size
    assert load_config("local", ["demo.train_cutoffs=12"]).demo.train_cutoffs == 12


def it_trains_cdnow_at_its_own_learning_rate():
    config = load_config("local", ["evaluate.cdnow_learning_rate=0.003"])
    cdnow = cdnow_config(config)
    assert (config.train.learning_rate, cdnow.train.learning_rate) == (0.001, 0.003)
    assert cdnow == dataclasses.replace(config, train=dataclasses.replace(config.train, learning_rate=0.003))


def it_applies_overrides_with_yaml_types():
    config = load_config("local", ["train.epochs=3", "world.start_date=2024-01-05", "world.dirty_rate=0"])
    assert config.train.epochs == 3
    assert config.world.start_date == dt.date(2024, 1, 5)
    assert config.world.dirty_rate == 0.0 and isinstance(config.world.dirty_rate, float)


def it_names_the_key_path_of_an_unknown_key():
    with pytest.raises(ConfigError, match=r"unknown key 'train\.epoch'.*accepts.*epochs"):
        load_config("local", ["train.epoch=3"])


def it_names_the_key_path_and_type_of_a_wrong_value():
    with pytest.raises(ConfigError, match=r"train\.epochs: expected int, got str 'three'"):
        load_config("local", ["train.epochs=three"])
    with pytest.raises(ConfigError, match=r"world\.start_date: expected a date"):
        load_config("local", ["world.start_date=June"])
    with pytest.raises(ConfigError, match=r"train\.launcher: expected one of \['local', 'horovod'"):
        load_config("local", ["train.launcher=mpi"])


def it_refuses_a_bool_where_an_int_is_expected():
    with pytest.raises(ConfigError, match=r"world\.users: expected int"):
        load_config("local", ["world.users=true"])


def it_checks_files_too(tmp_path):
    (tmp_path / "base.yaml").write_text("spark:\n  shuffle_partitions: many\n")
    (tmp_path / "local.yaml").write_text("{}\n")
    with pytest.raises(ConfigError, match=r"spark\.shuffle_partitions: expected int"):
        load_config("local", conf_dir=tmp_path)
    (tmp_path / "base.yaml").write_text("sparkk: {}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'sparkk'"):
        load_config("local", conf_dir=tmp_path)


def it_refuses_malformed_overrides_and_unknown_environments():
    with pytest.raises(ConfigError, match="expected KEY.PATH=VALUE"):
        load_config("local", ["train.epochs"])
    with pytest.raises(ConfigError, match="unknown environment 'prod'"):
        load_config("prod")


def it_round_trips_to_a_plain_dict():
    plain = config_to_dict(load_config("local"))
    assert plain["world"]["start_date"] == "2025-06-01"
    assert plain["spark"]["conf"]["spark.sql.session.timeZone"] == "UTC"


def it_takes_a_dotted_spark_key_whole_under_spark_conf():
    config = load_config("local", ["spark.conf.spark.hadoop.fs.s3a.endpoint=http://127.0.0.1:9000"])
    assert config.spark.conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert config.spark.conf["spark.ui.enabled"] == "false"  # the overlay's keys stay


def it_names_one_registered_model_per_architecture():
    assert load_config("local").tracking.registered_model == "ltv_transformer"
    assert load_config("local", ["train.architecture=mlp"]).tracking.registered_model == "ltv_mlp"
    assert load_config("databricks").tracking.registered_model == "main.ltv.ltv_transformer"
    with pytest.raises(ConfigError, match=r"tracking.registered_model: 'ltv_\{model\}' may name only"):
        load_config("local", ["tracking.registered_model=ltv_{model}"])
