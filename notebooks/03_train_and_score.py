# Databricks notebook source
# MAGIC %md
# MAGIC # ltv_spark 03: train the Transformer and score every user
# MAGIC Training runs with the launcher chosen in the widget (Horovod and TorchDistributor use the
# MAGIC cluster's task slots), as an MLflow run in the experiment of `tracking.experiment`, and registers
# MAGIC the model as a new version of `tracking.registered_model` (Unity Catalog: `main.ltv.ltv_transformer`)
# MAGIC with the alias `challenger` (`champion` too for the first one). Scoring loads that version from the
# MAGIC registry (`models:/<name>/<version>`) and MERGEs into `gold.predictions`. Each cell is a call into
# MAGIC the package.

# COMMAND ----------

dbutils.widgets.text("env", "databricks")  # noqa: F821 (dbutils exists on Databricks)
dbutils.widgets.dropdown("launcher", "horovod", ["local", "horovod", "torch-distributor"])  # noqa: F821
dbutils.widgets.text("num_proc", "2")  # noqa: F821
dbutils.widgets.text("as_of", "")  # noqa: F821  YYYY-MM-DD; empty: the day after the last event
dbutils.widgets.text("extra_overrides", "")  # noqa: F821

# COMMAND ----------

import datetime as dt

from ltv_spark.config import load_config
from ltv_spark.pipeline.scoring import PREDICTIONS, day_after_data, score_as_of
from ltv_spark.pipeline.training import train_model
from ltv_spark.registry import version_uri
from ltv_spark.session import build_spark
from ltv_spark.tables import open_store

get = dbutils.widgets.get  # noqa: F821
config = load_config(get("env"), [o for o in get("extra_overrides").split(",") if o.strip()])
spark = build_spark(config)
store = open_store(spark, config.tables)

# COMMAND ----------

trained = train_model(spark, store, config, get("launcher"), int(get("num_proc")))
print("\n".join(trained.lines()))

# COMMAND ----------

as_of = dt.date.fromisoformat(get("as_of")) if get("as_of") else day_after_data(store)
model = version_uri(config.tracking.registered_model, trained.version)  # or "champion"
scored = score_as_of(spark, store, config, as_of, model)
print("\n".join(scored.lines()))
display(store.read(PREDICTIONS).orderBy("expected_ltv", ascending=False).limit(100))  # noqa: F821
