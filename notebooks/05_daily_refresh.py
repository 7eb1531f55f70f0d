# Databricks notebook source
# MAGIC %md
# MAGIC # ltv_spark 05: the daily refresh, end to end
# MAGIC New drops -> `bronze.events` -> `silver.sessions` -> (on the retrain weekday) a new registered
# MAGIC version, alias `challenger`, moved to `champion` only if not worse on validation -> every user
# MAGIC scored by the `champion` and MERGEd into `gold.predictions` (`model_version` names it). Roll back
# MAGIC with `ltv promote --version N` (or `ltv_spark.registry.promote`).
# MAGIC The same call as `jobs/refresh.py` and the bundle's daily job; each run is a row of `ops.refresh_runs`.

# COMMAND ----------

dbutils.widgets.text("env", "databricks")  # noqa: F821 (dbutils exists on Databricks)
dbutils.widgets.text("date", "")  # noqa: F821  YYYY-MM-DD; empty: the day after the last ingested event
dbutils.widgets.text("extra_overrides", "")  # noqa: F821

# COMMAND ----------

import datetime as dt

from ltv_spark.config import load_config
from ltv_spark.pipeline.refresh import REFRESH_RUNS, refresh
from ltv_spark.pipeline.scoring import day_after_data
from ltv_spark.session import build_spark
from ltv_spark.tables import open_store

get = dbutils.widgets.get  # noqa: F821
config = load_config(get("env"), [o for o in get("extra_overrides").split(",") if o.strip()])
spark = build_spark(config)
store = open_store(spark, config.tables)

# COMMAND ----------

day = dt.date.fromisoformat(get("date")) if get("date") else day_after_data(store)
result = refresh(spark, store, config, day)
print("\n".join(result.lines()))

# COMMAND ----------

display(store.read(REFRESH_RUNS).orderBy("started_at", ascending=False).limit(20))  # noqa: F821
