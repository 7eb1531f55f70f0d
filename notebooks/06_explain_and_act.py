# Databricks notebook source
# MAGIC %md
# MAGIC # ltv_spark 06: from scores to actions (a marketer's view)
# MAGIC Who to call first: the high-value customers most likely to stop buying, each with the three
# MAGIC reasons the model itself gives for their value (`gold.predictions.reasons`, integrated
# MAGIC gradients in the scoring UDF), the category they have bought most so far and the three they
# MAGIC are most likely to buy next (`gold.predictions.top_categories`, the Transformer's cross-sell
# MAGIC head). How good those next categories are, against popularity and ALS, is in
# MAGIC `gold.evaluation_categories`. Then where the
# MAGIC model can be trusted (`gold.evaluation_segments`: calibration per kind of customer, the
# MAGIC segments off by more than 10% flagged) and whether today's customers still look like the
# MAGIC ones it learnt from (`ops.drift`: PSI per feature at each refresh).
# MAGIC Run after 01-05 (they write the tables read here).

# COMMAND ----------

dbutils.widgets.text("env", "databricks")  # noqa: F821 (dbutils exists on Databricks)
dbutils.widgets.text("top", "20")  # noqa: F821  how many customers to list
dbutils.widgets.text("category", "")  # noqa: F821  a category to offer; empty: the most likely one
dbutils.widgets.text("extra_overrides", "")  # noqa: F821

# COMMAND ----------

from pyspark.sql import functions as F

from ltv_spark.config import load_config
from ltv_spark.pipeline import EVENTS
from ltv_spark.pipeline.drift import DRIFT
from ltv_spark.pipeline.evaluation import ALL_CATEGORIES
from ltv_spark.pipeline.gold import EVALUATION_CATEGORIES, EVALUATION_SEGMENTS
from ltv_spark.pipeline.scoring import PREDICTIONS
from ltv_spark.segments import CALIBRATION_TOLERANCE, main_categories
from ltv_spark.session import build_spark
from ltv_spark.tables import open_store

get = dbutils.widgets.get  # noqa: F821
config = load_config(get("env"), [o for o in get("extra_overrides").split(",") if o.strip()])
spark = build_spark(config)
store = open_store(spark, config.tables)

# COMMAND ----------

# MAGIC %md
# MAGIC ## High value, at risk: the top two value deciles, most likely to churn first

# COMMAND ----------

latest = store.read(PREDICTIONS).agg(F.max("as_of")).first()[0]
today = store.read(PREDICTIONS).filter(F.col("as_of") == F.lit(latest))
at_risk = today.filter(F.col("value_decile") <= 2).orderBy(F.desc("churn_probability")).limit(int(get("top")))
bought_most = main_categories(store.read(EVENTS), at_risk.select("user_id", F.col("as_of").alias("cutoff")))
display(  # noqa: F821
    at_risk.join(bought_most, "user_id", "left")
    .select(
        "user_id",
        "expected_ltv",
        "churn_probability",
        "segment",
        "reasons",
        "main_category",
        F.transform(
            "top_categories", lambda c: F.format_string("%s %.0f%%", c.category, c.probability * 100)
        ).alias("next_categories"),
    )
    .orderBy(F.desc("churn_probability"))
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Who to offer a category: the users most likely to buy in it next

# COMMAND ----------

likely = today.select("user_id", "expected_ltv", F.explode("top_categories").alias("next"))
category = get("category") or likely.groupBy("next.category").count().orderBy(F.desc("count")).first()[0]
offer = likely.filter(F.col("next.category") == category)
display(offer.orderBy(F.desc("next.probability")).limit(int(get("top"))))  # noqa: F821

# COMMAND ----------

# MAGIC %md
# MAGIC ## How good are the next categories? (the latest evaluation: mean AUC and top-3 hit rate)

# COMMAND ----------

categories = store.read(EVALUATION_CATEGORIES)
display(  # noqa: F821
    categories.filter(
        (F.col("run") == categories.agg(F.max("run")).first()[0]) & (F.col("category") == ALL_CATEGORIES)
    )
    .groupBy("model")
    .agg(F.mean("auc").alias("mean_auc"), F.mean("top_k_hit_rate").alias("top_3_hit_rate"))
    .orderBy(F.desc("mean_auc"))
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Can the number be trusted for every kind of customer? (the latest evaluation)

# COMMAND ----------

segments = store.read(EVALUATION_SEGMENTS)
last_run = segments.agg(F.max("run")).first()[0]
display(  # noqa: F821
    segments.filter((F.col("run") == last_run) & (F.col("model") == "transformer"))
    .groupBy("segment_kind", "segment")
    .agg(
        F.first("users").alias("users"),
        F.mean("normalized_gini").alias("gini"),
        F.mean("total_ratio").alias("predicted_over_true"),
        F.mean("churn_auc").alias("churn_auc"),
    )
    .withColumn("flagged", F.abs(F.col("predicted_over_true") - 1) > CALIBRATION_TOLERANCE)
    .orderBy("segment_kind", "segment")
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Drift: today's customers against the model's training cutoffs (PSI > 0.25: look)

# COMMAND ----------

display(store.read(DRIFT).orderBy(F.desc("refresh_date"), F.desc("psi")))  # noqa: F821
