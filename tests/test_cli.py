"""describe the ltv command: generate then ingest, as a data engineer runs them."""

from __future__ import annotations

import datetime as dt

from deltalake import DeltaTable

from ltv_spark.cli import main
from ltv_spark.config import load_config
from ltv_spark.pipeline import EVENTS, QUARANTINE, TRUTH
from ltv_spark.pipeline.bronze import ensure_truth
from ltv_spark.tables import open_store


def it_generates_and_ingests_a_world_whose_counts_add_up(spark, tmp_path, capsys):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    common = ["--set", f"tables.root={warehouse}", "--set", "spark.master=local[2]", "--quiet"]
    generate = [
        "generate",
        "--users",
        "150",
        "--days",
        "40",
        "--seed",
        "3",
        "--dirty-rate",
        "0.05",
        "--out",
        str(raw),
        "--truth-cutoff",
        "2025-06-20",
        "--truth-horizon",
        "20",
    ]
    assert main([*generate, *common]) == 0
    assert main([*generate, *common]) == 0  # same world: kept, not rewritten
    assert "already generated" in capsys.readouterr().out
    assert main(["ingest", "--raw-dir", str(raw), *common]) == 0
    out = capsys.readouterr().out
    assert "input = bronze + quarantine + duplicates + forgotten: adds up" in out
    for name in (EVENTS, QUARANTINE, TRUTH):
        schema, table = name.split(".")
        assert DeltaTable(str(warehouse / schema / table)).version() >= 0
    assert main([*generate[:-4], "--seed", "4", *common]) == 1  # another world into the same folder


def it_exits_with_a_config_error_naming_the_key(capsys):
    assert main(["ingest", "--set", "ingest.formt=csv"]) == 2
    assert "unknown key 'ingest.formt'" in capsys.readouterr().err


def it_generates_the_purchases_only_world_with_its_ceiling(spark, tmp_path):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    common = ["--set", f"tables.root={warehouse}", "--quiet"]
    world = [
        "--users",
        "300",
        "--days",
        "120",
        "--dirty-rate",
        "0",
        "--out",
        str(raw),
        "--truth-cutoff",
        "2025-08-01",
    ]
    assert main(["generate", "--model", "btyd", *world, "--truth-horizon", "28", *common]) == 0
    store = open_store(spark, load_config("local", [f"tables.root={warehouse}"]).tables)
    truth = store.read(TRUTH).toPandas()
    assert 100 < len(truth) < 300  # the customers born before the cutoff
    assert (truth["ceiling_value"] > 0).all() and truth["ceiling_p_buy"].between(0, 1).all()
    lines = [line for path in raw.rglob("*.csv") for line in path.read_text().splitlines()[1:]]
    assert lines and all(",purchase," in line for line in lines)


def it_replaces_every_truth_of_the_world_it_overwrites(spark, tmp_path):
    """A truth that the evaluation added for its own cutoff was the old world's: a new world replaces
    the whole table, even with another schema (purchases only over sessions)."""
    settings = [f"tables.root={tmp_path / 'warehouse'}", f"world.out={tmp_path / 'raw'}"]
    settings += ["world.users=120", "world.days=60", "world.dirty_rate=0"]
    settings += ["world.truth_cutoff=2025-07-15", "world.truth_horizon_days=14"]
    flags = [*(arg for setting in settings for arg in ("--set", setting)), "--quiet"]
    assert main(["generate", *flags]) == 0
    config = load_config("local", settings)  # the world that generate wrote
    store = open_store(spark, config.tables)
    ensure_truth(spark, store, config.world, dt.date(2025, 7, 25), 7)  # as the evaluation does
    assert store.read(TRUTH).select("cutoff").distinct().count() == 2

    assert main(["generate", "--model", "btyd", "--overwrite", *flags]) == 0
    truth = store.read(TRUTH)
    assert [row.cutoff for row in truth.select("cutoff").distinct().collect()] == [dt.date(2025, 7, 15)]
    assert "ceiling_value" in truth.columns
