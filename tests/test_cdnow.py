"""describe CDNOW: the real purchase log loads into the same contract, every line accounted for."""

from __future__ import annotations

from pyspark.sql import functions as F

from ltv_spark.cdnow import cdnow_path
from ltv_spark.pipeline import CDNOW_EVENTS, CDNOW_QUARANTINE, ingest_cdnow

# Fader, Hardie & Lee (2005): 23,570 customers, 69,659 purchases, 1997-01-01 .. 1998-06-30.
CUSTOMERS, PURCHASES = 23_570, 69_659


def file_totals() -> tuple[int, float]:
    lines = cdnow_path().read_text().splitlines()[1:]
    return len(lines), sum(float(line.split()[3]) for line in lines)


def it_loads_every_purchase_as_a_contract_event(spark, store):
    counts = ingest_cdnow(spark, store)
    events = store.read(CDNOW_EVENTS)
    lines, dollars = file_totals()
    assert counts.input_rows == lines == PURCHASES
    assert (counts.bronze_rows, counts.quarantine_rows, counts.duplicate_rows) == (PURCHASES, 0, 0)
    assert store.read(CDNOW_QUARANTINE).count() == 0
    stats = events.agg(
        F.countDistinct("user_id").alias("customers"),
        F.min("event_time").alias("first"),
        F.max("event_time").alias("last"),
        F.sum(F.col("price") * F.col("quantity")).alias("dollars"),
        F.sum(F.when(F.col("event_type") != "purchase", 1).otherwise(0)).alias("not_purchases"),
    ).first()
    assert stats["customers"] == CUSTOMERS
    assert (stats["first"].date().isoformat(), stats["last"].date().isoformat()) == (
        "1997-01-01",
        "1998-06-30",
    )
    assert abs(stats["dollars"] - dollars) < 0.01
    assert stats["not_purchases"] == 0


def it_changes_nothing_when_loaded_again(spark, store):
    ingest_cdnow(spark, store)
    versions = store.version(CDNOW_EVENTS), store.version(CDNOW_QUARANTINE)
    again = ingest_cdnow(spark, store)
    assert again.input_rows == PURCHASES
    assert (store.version(CDNOW_EVENTS), store.version(CDNOW_QUARANTINE)) == versions
    assert store.read(CDNOW_EVENTS).count() == PURCHASES
