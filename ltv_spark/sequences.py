"""Per user and cutoff: the last N sessions as a fixed-length, padded sequence with a mask.

Petastorm's batch reader refuses variable-length arrays, so each sequence is stored flat:
``sequence`` is array<float> of length N * F (session-major: session i occupies [i*F, (i+1)*F)),
oldest kept session first, padding (zeros) after the last real one; ``mask`` is array<float> of
length N, 1 for a real session. Only the last N sessions of a user ever reach one array: they are
picked with a window rank first, so no user's whole history is collected.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ltv_spark.frames import days_between

# One session as numbers (F = len(SESSION_VECTOR)). Counts and money are log1p-squashed.
SESSION_VECTOR = (
    "log_duration_min",
    "log_views",
    "log_carts",
    "purchases",
    "log_revenue",
    "log_refunded",
    "log_gap_days",  # since the previous session (0 for a user's first)
    "log_days_before_cutoff",
    "weekday_sin",
    "weekday_cos",
    "categories",
)


def session_vectors(sessions: DataFrame, cutoff: dt.date) -> DataFrame:
    """sessions (before the cutoff) -> user_id, session_start, vector (array<float>, len F)."""
    t = F.lit(dt.datetime.combine(cutoff, dt.time()))
    previous_end = F.lag("session_end").over(Window.partitionBy("user_id").orderBy("session_start"))
    weekday = (F.dayofweek("session_start") - 1).cast("double") * (2 * 3.141592653589793 / 7)
    parts = [
        F.log1p(F.col("duration_s") / 60),
        F.log1p(F.col("n_views")),
        F.log1p(F.col("n_carts")),
        F.col("n_purchases").cast("double"),
        F.log1p(F.col("revenue")),
        F.log1p(F.col("refunded")),
        F.log1p(F.coalesce(days_between(F.col("session_start"), previous_end), F.lit(0.0))),
        F.log1p(days_between(t, F.col("session_start"))),
        F.sin(weekday),
        F.cos(weekday),
        F.col("n_categories").cast("double"),
    ]
    return sessions.select(
        "user_id", "session_start", F.array(*[p.cast("float") for p in parts]).alias("vector")
    )


def user_sequences(sessions: DataFrame, cutoff: dt.date, length: int) -> DataFrame:
    """One row per user with a session before the cutoff: user_id, cutoff, sequence, mask, n_sessions."""
    vectors = session_vectors(sessions, cutoff)
    newest_first = Window.partitionBy("user_id").orderBy(F.col("session_start").desc())
    last_n = vectors.withColumn("_age", F.row_number().over(newest_first)).filter(F.col("_age") <= length)
    grouped = last_n.groupBy("user_id").agg(
        F.sort_array(F.collect_list(F.struct(F.col("session_start"), F.col("vector")))).alias("_kept"),
    )
    width = len(SESSION_VECTOR)
    padding = F.array_repeat(F.lit(0.0).cast("float"), width)
    slots = F.sequence(F.lit(1), F.lit(length))
    padded = F.transform(
        slots, lambda i: F.coalesce(F.element_at(F.col("_kept"), i).getField("vector"), padding)
    )
    mask = F.transform(slots, lambda i: (i <= F.size("_kept")).cast("float"))
    return grouped.select(
        "user_id",
        F.lit(cutoff).alias("cutoff"),
        F.flatten(padded).alias("sequence"),
        mask.alias("mask"),
        F.size("_kept").alias("n_sessions"),
    )
