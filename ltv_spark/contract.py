"""The event contract of ``bronze.events``: columns, types, rules, and quarantine reason codes.

Raw drops arrive as strings (CSV/JSON) or loosely typed Parquet. ``classify_events`` parses them
into the typed contract and tags each row with the first rule it breaks, so that ingest can send
good rows to bronze and bad rows to quarantine without losing any.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

RAW_COLUMNS = (
    "event_id",
    "user_id",
    "event_time",
    "event_type",
    "product_id",
    "category",
    "price",
    "quantity",
    "order_id",
)
REQUIRED_COLUMNS = ("event_id", "user_id", "event_time", "event_type")
EVENT_TYPES = ("view", "cart", "purchase", "refund")
ORDER_EVENT_TYPES = ("purchase", "refund")
CORRUPT_COLUMN = "_corrupt_record"


class Reason:
    """Machine-readable quarantine reasons. Row-level first, then whole-file reasons."""

    MALFORMED_LINE = "malformed_line"
    MISSING_EVENT_ID = "missing_event_id"
    MISSING_USER = "missing_user"
    UNPARSABLE_TIME = "unparsable_time"
    TIME_OUT_OF_RANGE = "time_out_of_range"
    UNKNOWN_TYPE = "unknown_event_type"
    BAD_PRICE = "bad_price"
    BAD_QUANTITY = "bad_quantity"
    MISSING_ORDER_ID = "missing_order_id"
    # whole files
    BAD_ENCODING = "file_bad_encoding"
    TRUNCATED = "file_truncated"
    BAD_HEADER = "file_bad_header"
    UNREADABLE = "file_unreadable"
    CHANGED = "file_changed"  # a re-drop of an ingested file, with ingest.changed_files: quarantine


RAW_SCHEMA = StructType([StructField(name, StringType()) for name in RAW_COLUMNS])

BRONZE_SCHEMA = StructType(
    [
        StructField("event_id", StringType()),
        StructField("user_id", StringType()),
        StructField("event_time", TimestampType()),
        StructField("event_type", StringType()),
        StructField("product_id", StringType()),
        StructField("category", StringType()),
        StructField("price", DoubleType()),
        StructField("quantity", IntegerType()),
        StructField("order_id", StringType()),
        StructField("source_file", StringType()),
        StructField("ingested_at", TimestampType()),
        StructField("batch_id", LongType()),
        StructField("event_date", DateType()),
    ]
)

QUARANTINE_SCHEMA = StructType(
    [
        StructField("reason", StringType()),
        StructField("raw", StringType()),
        StructField("source_file", StringType()),
        StructField("ingested_at", TimestampType()),
        StructField("batch_id", LongType()),
    ]
)

_INTEGER = r"^\s*[0-9]+\s*$"
# Epoch timestamps, told apart by their number of digits: 9-10 are seconds (1973-2286), 12-13 are
# milliseconds (1973-2286). Any other bare number is no time we can trust: unparsable_time.
_EPOCH_SECONDS = r"^[0-9]{9,10}([.][0-9]{1,6})?$"
_EPOCH_MILLISECONDS = r"^[0-9]{12,13}$"


def parse_event_time(column: str) -> Column:
    """A raw event time as a UTC timestamp (the session's zone is UTC), or null when it is none.

    Accepted: ISO-8601 with ``Z`` or an offset (``+02:00``, ``+0200``; converted to UTC), without
    one (taken as UTC), and epoch seconds or milliseconds as platforms log them.
    """
    trimmed = F.trim(F.col(column))
    epoch = F.expr(f"try_cast(trim(`{column}`) AS double)")
    return (
        F.when(trimmed.rlike(_EPOCH_MILLISECONDS), F.timestamp_millis(epoch.cast("long")))
        .when(trimmed.rlike(_EPOCH_SECONDS), F.timestamp_micros(F.round(epoch * 1_000_000).cast("long")))
        .otherwise(F.expr(f"try_cast(trim(`{column}`) AS timestamp)"))
    )


def classify_events(raw: DataFrame, min_time: dt.datetime, max_time: dt.datetime) -> DataFrame:
    """Typed contract columns plus ``reason``: null for a good row, else the first broken rule.

    ``raw`` holds the RAW_COLUMNS as strings, ``source_file``, and optionally ``_corrupt_record``
    (the text of a line the reader could not split into columns). A row that breaks a rule keeps
    its original values in ``raw`` (JSON) so that it can be inspected and replayed from quarantine;
    a good row's ``raw`` is null (rendering it for every row cost a fifth of the contract's time).

    Three projections, each reading the columns of the one before: the values parsed once, then the
    reason, then the output. Spark keeps a projection apart when merging it into the next would
    repeat a costly expression, and evaluates each of its columns once per row. Written as one
    projection, the optimized plan held the time parse seven times (the rules that read it, the
    output, and the reason copied into ``raw`` and into the dedupe's window and status), each
    evaluated where a row reaches it. Ingest of 8.9 million events (bench_ingest's world, 2 cores,
    before and after in turn) took 146 and 174 s before, 123 and 142 s after.
    """
    corrupt = F.col(CORRUPT_COLUMN) if CORRUPT_COLUMN in raw.columns else F.lit(None).cast("string")
    parsed = raw.select(
        *RAW_COLUMNS,
        "source_file",
        corrupt.alias("_corrupt"),
        F.lower(F.trim(F.col("event_type"))).alias("_event_type"),
        parse_event_time("event_time").alias("_event_time"),
        F.expr("try_cast(trim(price) AS double)").alias("_price"),
        F.col("quantity").rlike(_INTEGER).alias("_quantity_ok"),
    ).withColumn("_quantity", F.when(F.col("_quantity_ok"), F.expr("try_cast(trim(quantity) AS int)")))
    judged = parsed.withColumn("reason", _first_broken_rule(min_time, max_time))
    original = F.coalesce(F.col("_corrupt"), F.to_json(F.struct(*[F.col(c) for c in RAW_COLUMNS])))
    return judged.select(
        F.trim("event_id").alias("event_id"),
        F.trim("user_id").alias("user_id"),
        F.col("_event_time").alias("event_time"),
        F.col("_event_type").alias("event_type"),
        F.nullif(F.trim("product_id"), F.lit("")).alias("product_id"),
        F.nullif(F.trim("category"), F.lit("")).alias("category"),
        F.col("_price").alias("price"),
        F.col("_quantity").alias("quantity"),
        F.nullif(F.trim("order_id"), F.lit("")).alias("order_id"),
        F.col("source_file"),
        F.col("reason"),
        F.when(F.col("reason").isNotNull(), original).alias("raw"),
    )


def _first_broken_rule(min_time: dt.datetime, max_time: dt.datetime) -> Column:
    """The reason of the first rule a row breaks (null: none), over classify_events' parsed
    columns (``_event_type``, ``_event_time``, ``_price``, ``_quantity_ok``, ``_quantity``,
    ``_corrupt``) and the raw strings."""
    event_type, event_time, price = F.col("_event_type"), F.col("_event_time"), F.col("_price")
    quantity_ok, quantity = F.col("_quantity_ok"), F.col("_quantity")
    is_order = event_type.isin(*ORDER_EVENT_TYPES)

    def blank(column: str) -> Column:
        return F.col(column).isNull() | (F.trim(F.col(column)) == "")

    bad_price = (is_order & blank("price")) | (
        ~blank("price") & (price.isNull() | F.isnan(price) | (price < 0) | (price == float("inf")))
    )
    bad_quantity = (is_order & ~(quantity_ok & (quantity >= 1))) | (
        ~is_order & ~blank("quantity") & ~(quantity_ok & (quantity >= 1))
    )
    return (
        F.when(F.col("_corrupt").isNotNull(), F.lit(Reason.MALFORMED_LINE))
        .when(blank("event_id"), F.lit(Reason.MISSING_EVENT_ID))
        .when(blank("user_id"), F.lit(Reason.MISSING_USER))
        .when(event_time.isNull(), F.lit(Reason.UNPARSABLE_TIME))
        .when(
            (event_time < F.lit(min_time)) | (event_time > F.lit(max_time)), F.lit(Reason.TIME_OUT_OF_RANGE)
        )
        .when(~event_type.isin(*EVENT_TYPES) | event_type.isNull(), F.lit(Reason.UNKNOWN_TYPE))
        .when(bad_price, F.lit(Reason.BAD_PRICE))
        .when(bad_quantity, F.lit(Reason.BAD_QUANTITY))
        .when(is_order & blank("order_id"), F.lit(Reason.MISSING_ORDER_ID))
    )


def to_bronze(good: DataFrame, ingested_at: dt.datetime, batch_id: int) -> DataFrame:
    """Rows that passed ``classify_events``, with lineage, in BRONZE_SCHEMA order."""
    return good.select(
        *[c for c in RAW_COLUMNS],
        "source_file",
        F.lit(ingested_at).cast("timestamp").alias("ingested_at"),
        F.lit(batch_id).cast("long").alias("batch_id"),
        F.to_date("event_time").alias("event_date"),
    )


def to_quarantine(bad: DataFrame, ingested_at: dt.datetime, batch_id: int) -> DataFrame:
    """Rejected rows (``reason``, ``raw``, ``source_file``) in QUARANTINE_SCHEMA order."""
    return bad.select(
        "reason",
        "raw",
        "source_file",
        F.lit(ingested_at).cast("timestamp").alias("ingested_at"),
        F.lit(batch_id).cast("long").alias("batch_id"),
    )
