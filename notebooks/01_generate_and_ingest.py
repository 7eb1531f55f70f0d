# Databricks notebook source
# MAGIC %md
# MAGIC # ltv_spark 01: generate a world and ingest it into bronze
# MAGIC Each cell is a call into the `ltv_spark` package (installed on the cluster as a wheel, or via
# MAGIC `%pip install` from the repo); nothing here is a copy of pipeline code. Tables are Unity Catalog
# MAGIC names: `<catalog>.bronze.events`, `<catalog>.bronze.quarantine`, `<catalog>.world.truth`.

# COMMAND ----------

dbutils.widgets.text("env", "databricks")  # noqa: F821 (dbutils exists on Databricks)
dbutils.widgets.text("users", "1000000")  # noqa: F821
dbutils.widgets.text("seed", "7")  # noqa: F821
dbutils.widgets.dropdown("format", "csv", ["csv", "json", "parquet"])  # noqa: F821
dbutils.widgets.text("extra_overrides", "")  # noqa: F821  e.g. tables.catalog=dev,world.days=365

# COMMAND ----------

from ltv_spark.config import load_config
from ltv_spark.pipeline import EVENTS, QUARANTINE, generate_world, ingest_cdnow, ingest_raw
from ltv_spark.session import build_spark
from ltv_spark.tables import open_store

get = dbutils.widgets.get  # noqa: F821
overrides = [f"world.users={get('users')}", f"world.seed={get('seed')}", f"world.format={get('format')}",
             f"ingest.format={get('format')}"]
overrides += [o for o in get("extra_overrides").split(",") if o.strip()]
config = load_config(get("env"), overrides)
spark = build_spark(config)
store = open_store(spark, config.tables)

# COMMAND ----------

print("\n".join(generate_world(spark, store, config.world).lines()))

# COMMAND ----------

counts = ingest_raw(spark, store, config.ingest)
print("\n".join(counts.lines()))
assert counts.balanced, "input rows do not add up to bronze + quarantine + duplicates + forgotten"

# COMMAND ----------

display(store.read(QUARANTINE).groupBy("reason").count().orderBy("reason"))  # noqa: F821
display(store.read(EVENTS).groupBy("event_date").count().orderBy("event_date"))  # noqa: F821

# COMMAND ----------

print("\n".join(ingest_cdnow(spark, store).lines()))
