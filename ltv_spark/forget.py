"""Which rows name a customer: by ``user_id``, or inside a quarantined row's raw text; and the
hashed form the suppression list keeps (ingest checks it, so a forgotten customer never returns).

Pure column expressions; ``ltv_spark.pipeline.forget`` deletes with them and keeps the list.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

SUPPRESSION_LIST = "ops.forgotten_users"  # user_hash, forgotten_at, request_id: checked at ingest


def hash_user(user_id: str) -> str:
    """The suppression list's form of a user id: SHA-256 of the trimmed id, hex."""
    return hashlib.sha256(user_id.strip().encode()).hexdigest()


def user_hash(user_id: Column) -> Column:
    """``hash_user`` as a column expression (the same digest for the same id)."""
    return F.sha2(F.trim(user_id), 256)


def raw_values(raw: Column) -> Column:
    """The values a raw quarantined line may name a user by: a JSON object's ``user_id``, and each
    comma-separated field (a CSV line, quotes and spaces trimmed). A field of another column that
    equals the id counts too: a quarantined row too many goes, never one too few."""
    fields = F.transform(F.split(raw, ","), lambda field: F.trim(F.regexp_replace(field, '"', "")))
    return F.concat(F.array(F.trim(F.get_json_object(raw, "$.user_id"))), fields)


def names_users(columns: Sequence[str], users: Sequence[str]) -> Column | None:
    """Rows of a table with these columns that name one of ``users``; None if it cannot name one."""
    if "user_id" in columns:
        return F.col("user_id").isin(*users)
    if "raw" in columns:
        return F.exists(raw_values(F.col("raw")), lambda value: value.isin(*users))
    return None


def names_hashed_users(user_id: Column, raw: Column, hashes: Sequence[str]) -> Column:
    """Rows whose user id, or when it has none (a line that could not be parsed) whose raw text,
    names one of the users hashed in ``hashes``."""
    by_id = F.coalesce(user_hash(user_id).isin(*hashes), F.lit(False))
    by_raw = F.exists(raw_values(raw), lambda value: user_hash(value).isin(*hashes))
    no_id = F.coalesce(F.trim(user_id), F.lit("")) == ""
    return by_id | (no_id & F.coalesce(by_raw, F.lit(False)))
