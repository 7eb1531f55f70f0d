# Databricks notebook source
# MAGIC %md
# MAGIC # ltv_spark 04: compare every model on the evaluation cutoff
# MAGIC The Transformer, the static MLP with the same ZILN head, gradient boosting, linear regression,
# MAGIC BG/NBD + Gamma-Gamma and (on generated data) the oracle, scored on the same users. Metrics go to
# MAGIC `gold.evaluation_metrics`, the report to `reports/<run>/index.html`.
# MAGIC Each cell is a call into the package.

# COMMAND ----------

dbutils.widgets.text("env", "databricks")  # noqa: F821 (dbutils exists on Databricks)
dbutils.widgets.dropdown("data", "generated", ["generated", "cdnow"])  # noqa: F821
dbutils.widgets.text("seeds", "7,8,9")  # noqa: F821
dbutils.widgets.text("extra_overrides", "")  # noqa: F821

# COMMAND ----------

from ltv_spark.config import load_config
from ltv_spark.evaluation import format_summary
from ltv_spark.pipeline.evaluation import EVALUATION_METRICS, evaluate
from ltv_spark.session import build_spark
from ltv_spark.tables import open_store

get = dbutils.widgets.get  # noqa: F821
config = load_config(get("env"), [o for o in get("extra_overrides").split(",") if o.strip()])
spark = build_spark(config)
store = open_store(spark, config.tables)

# COMMAND ----------

result = evaluate(spark, store, config, get("data"), [int(s) for s in get("seeds").split(",")])
print("\n".join(format_summary(result.tables.summary())))
print(f"report: {result.report}")

# COMMAND ----------

display(store.read(EVALUATION_METRICS).filter(f"run = '{result.run}'"))  # noqa: F821
