# Databricks notebook source
# MAGIC %md
# MAGIC # ltv_spark 02: sessions, point-in-time features, sequences and labels
# MAGIC `silver.sessions` is refreshed incrementally from `bronze.events`; the gold tables are written per
# MAGIC cutoff (partition `cutoff`), each cell a call into the package.

# COMMAND ----------

dbutils.widgets.text("env", "databricks")  # noqa: F821 (dbutils exists on Databricks)
dbutils.widgets.text("cutoff", "")  # noqa: F821  empty: every cutoff of the configured plan
dbutils.widgets.text("extra_overrides", "")  # noqa: F821  e.g. features.horizon_days=180

# COMMAND ----------

import datetime as dt

from ltv_spark.config import load_config
from ltv_spark.dataset import plan_cutoffs
from ltv_spark.pipeline import FEATURES, SESSIONS, build_cutoff, build_sessions, build_training_set
from ltv_spark.session import build_spark
from ltv_spark.tables import open_store

get = dbutils.widgets.get  # noqa: F821
config = load_config(get("env"), [o for o in get("extra_overrides").split(",") if o.strip()])
spark = build_spark(config)
store = open_store(spark, config.tables)

# COMMAND ----------

print("\n".join(build_sessions(spark, store, config.features).lines()))
display(store.read(SESSIONS).groupBy("session_date").count().orderBy("session_date"))  # noqa: F821

# COMMAND ----------

if get("cutoff"):
    print(build_cutoff(spark, store, config.features, dt.date.fromisoformat(get("cutoff"))).line())
else:
    result = build_training_set(spark, store, config.features, plan_cutoffs(config.features))
    print("\n".join(summary.line() for summary in result.summaries))

# COMMAND ----------

display(store.read(FEATURES).groupBy("cutoff").count().orderBy("cutoff"))  # noqa: F821
