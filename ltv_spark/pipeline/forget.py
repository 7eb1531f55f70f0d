"""``ltv forget``: delete customers' rows from every table, on request, and keep them out for good.

Under the refresh lease (no refresh writes meanwhile), in this order:
1. the customers' hashed ids join the suppression list (``ops.forgotten_users``), so that ingest
   never keeps their rows again, from new drops or from raw files already ingested;
2. every table that can name a customer loses their rows: by ``user_id``, or for quarantine
   tables by the raw text (``ltv_spark.forget``);
3. one audit row per table (``ops.forget_audit``): who asked, when, how many rows went, and when
   the files that still hold them may be deleted; never the customers' ids;
4. VACUUM of the tables touched with the given retention: with 0 the old files go now (time travel
   before this point stops working); otherwise ``ltv vacuum`` deletes them once the retention has
   passed (the audit row says from when).

Running it again for the same customers deletes nothing and writes no version of any table but the
lease's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from ltv_spark.forget import SUPPRESSION_LIST, hash_user, names_users
from ltv_spark.lease import Lease
from ltv_spark.progress import stage
from ltv_spark.tables import TableStore

FORGET_AUDIT = "ops.forget_audit"
AUDIT_SCHEMA = (
    "request_id string, requested_by string, requested_at timestamp, users long, table_name string, "
    "rows_deleted long, files_deleted_from timestamp"
)


@dataclass
class ForgetSummary:
    """What one ``ltv forget`` did: rows deleted per table, and when their files go."""

    request_id: str
    users: int
    new_on_suppression_list: int
    deleted: dict[str, int] = field(default_factory=dict)
    files_deleted: int = 0
    files_deleted_from: dt.datetime | None = None

    def lines(self) -> list[str]:
        tables = sum(map(bool, self.deleted.values()))
        lines = [
            f"request        {self.request_id} ({self.users} customers, "
            f"{self.new_on_suppression_list} new on the suppression list {SUPPRESSION_LIST})",
            f"rows deleted   {sum(self.deleted.values()):,} in {tables} tables",
            *[f"  {name:<28} {n:>10,}" for name, n in sorted(self.deleted.items()) if n],
            f"files deleted  {self.files_deleted:,} (VACUUM)",
        ]
        if self.files_deleted_from is not None:
            lines.append(
                f"old files      deleted by `ltv vacuum` from {self.files_deleted_from:%Y-%m-%d %H:%M} UTC"
            )
        return lines


def forget_users(
    spark: SparkSession,
    store: TableStore,
    users: Sequence[str],
    requested_by: str,
    retention_hours: int,
    lease_minutes: float = 360,
    now: dt.datetime | None = None,
) -> ForgetSummary:
    """Delete ``users``' rows from every table of ``store`` (see the module docstring)."""
    ids = sorted({u.strip() for u in users if u.strip()})
    if not ids:
        raise ValueError("ltv forget: no user id given (--user U or --users-file F, one id per line)")
    now = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None, microsecond=0)
    hashes = [hash_user(u) for u in ids]
    request_id = hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]  # names no customer
    with Lease(spark, store, "refresh", f"ltv forget ({len(ids)} customers)", minutes=lease_minutes):
        result = ForgetSummary(request_id, len(ids), _suppress(spark, store, hashes, request_id, now))
        for name in store.tables():
            condition = names_users(store.read(name).columns, ids)
            if condition is not None:  # the audit and the suppression list have neither column
                with stage(f"forget: {name}") as timer:
                    result.deleted[name] = timer.rows = store.delete(name, condition, f"forget {request_id}")
        touched = [name for name, n in result.deleted.items() if n]
        if touched or result.new_on_suppression_list:  # a request repeated changes nothing
            result.files_deleted_from = now + dt.timedelta(hours=retention_hours)
            _audit(spark, store, result, requested_by, now)
        for name in touched:
            result.files_deleted += store.vacuum(name, retention_hours)
    return result


def forgotten_hashes(store: TableStore) -> list[str]:
    """The suppression list: hashed ids of the customers deleted on request, which ingest and the
    stream check; one row per such customer reaches the driver."""
    if not store.exists(SUPPRESSION_LIST):
        return []
    return [row[0] for row in store.read(SUPPRESSION_LIST).select("user_hash").distinct().collect()]


def _suppress(
    spark: SparkSession, store: TableStore, hashes: list[str], request_id: str, now: dt.datetime
) -> int:
    """Add the hashes not yet on the suppression list; how many were new."""
    listed: set[str] = set()
    if store.exists(SUPPRESSION_LIST):
        listed = {
            r[0] for r in store.read(SUPPRESSION_LIST).filter(F.col("user_hash").isin(*hashes)).collect()
        }
    new = [h for h in hashes if h not in listed]
    if new:
        rows = [(h, now, request_id) for h in new]
        frame = spark.createDataFrame(rows, "user_hash string, forgotten_at timestamp, request_id string")
        store.append(frame.coalesce(1), SUPPRESSION_LIST)
    return len(new)


def _audit(
    spark: SparkSession, store: TableStore, result: ForgetSummary, requested_by: str, now: dt.datetime
) -> None:
    """One row per table that could name the customers, with its count (zeros included); one row
    with no table when none could (the customers only joined the suppression list)."""
    per_table = sorted(result.deleted.items()) or [(None, 0)]
    rows = [
        (result.request_id, requested_by, now, result.users, name, n, result.files_deleted_from)
        for name, n in per_table
    ]
    store.append(spark.createDataFrame(rows, AUDIT_SCHEMA).coalesce(1), FORGET_AUDIT)
