"""One refresh at a time, on any storage Delta commits to atomically: a lease in ``ops.leases``.

A lock file made with ``O_EXCL`` is a test-and-set on a local disk only: object stores have no
exclusive create through a file system API. A Delta table has one, its commit. The lease is a log
of epochs per name, one row per claim or release, each appended with ``(app_id="lease:<name>",
batch_id=epoch)``: of two jobs that read epoch ``n`` and both append epoch ``n + 1``, Delta lets
exactly one commit (the other's append is skipped as already committed, or fails its commit with
a concurrent-transaction conflict). Each claim carries a random token, and the winner is whoever's
token the epoch's row holds, so a job never mistakes another's claim for its own.

A lease held by a live job stops the second one with a message naming the holder. A dead holder's
lease is taken over: at once when it ran on this host and its pid is gone, otherwise once it
expires (``refresh.lease_minutes`` after its claim; ``renew`` extends it). Releasing never removes
another job's claim: the release is epoch ``n + 1`` of the releaser's own epoch ``n``.

On ``s3a://`` this is as atomic as the log store: ``make``'s conditional-PUT log store
(ltv_spark/jvm) makes every commit there safe across drivers; on Databricks, its commit service.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from types import TracebackType

from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from ltv_spark.tables import TableNotFound, TableStore

LOG = logging.getLogger(__name__)

LEASES = "ops.leases"
LEASE_SCHEMA = (
    "name string, epoch long, token string, pid long, host string, purpose string, "
    "claimed_at timestamp, expires_at timestamp, released boolean"
)
CLAIM_ATTEMPTS = 3  # a retry only after taking over a dead holder's lease raced with another job


class Locked(RuntimeError):
    """Another job holds the lease."""


@dataclass(frozen=True)
class LeaseState:
    """One row of ``ops.leases``: who claimed (or released) the lease at this epoch."""

    epoch: int
    token: str
    pid: int
    host: str
    purpose: str
    claimed_at: dt.datetime
    expires_at: dt.datetime
    released: bool

    def is_free(self, now: dt.datetime) -> bool:
        """Released, expired, or held by a process of this host that no longer exists."""
        return self.released or self.expires_at <= now or self._holder_died_here()

    def describe(self) -> str:
        return (
            f"pid {self.pid} on {self.host} since {self.claimed_at:%Y-%m-%d %H:%M:%S} "
            f"({self.purpose or 'no purpose given'}; the lease expires at "
            f"{self.expires_at:%Y-%m-%d %H:%M:%S} unless renewed)"
        )

    def _holder_died_here(self) -> bool:
        if self.host != socket.gethostname():
            return False  # another machine's process: cannot tell, so it holds until it expires
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


class Lease:
    """``with Lease(spark, store, "refresh", "ltv refresh --date D", minutes=360): ...``."""

    def __init__(
        self, spark: SparkSession, store: TableStore, name: str, purpose: str = "", minutes: float = 360
    ) -> None:
        self._spark, self._store = spark, store
        self.name, self.purpose = name, purpose
        self._duration = dt.timedelta(minutes=minutes)
        self._held: LeaseState | None = None

    # ---------------------------------------------------------------- public
    def claim(self) -> LeaseState:
        """Take the lease or raise Locked naming its holder."""
        for _ in range(CLAIM_ATTEMPTS):
            current = self.current()
            if current is not None and not current.is_free(_now()):
                raise Locked(self._message(current))
            epoch = current.epoch + 1 if current is not None else 1
            mine = self._append(epoch, released=False)
            if mine is not None:
                self._held = mine
                LOG.info("lease %s: claimed (epoch %d) for %s", self.name, epoch, self.purpose)
                return mine
        raise Locked(self._message(self.current()))

    def renew(self) -> None:
        """Push the expiry of a held lease ``minutes`` past now (for jobs that outlive it)."""
        self._held = self._successor(released=False, what="renew")

    def release(self) -> None:
        """Give the lease up; a lease another job has taken over since is left to it."""
        if self._held is not None:
            self._successor(released=True, what="release")
            self._held = None

    def current(self) -> LeaseState | None:
        """The latest epoch's row, or None before the first claim."""
        return self._row(epoch=None)

    def __enter__(self) -> Lease:
        self.claim()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()

    # ---------------------------------------------------------------- internals
    def _successor(self, released: bool, what: str) -> LeaseState | None:
        held = self._held
        if held is None:
            raise Locked(f"lease {self.name}: cannot {what}, it is not held")
        successor = self._append(held.epoch + 1, released=released)
        if successor is None:
            current = self.current()
            holder = current.describe() if current else "nobody"
            LOG.error("lease %s: lost before %s; now held by %s", self.name, what, holder)
            if not released:
                raise Locked(f"lease {self.name} was taken over: {self._message(current)}")
        return successor

    def _append(self, epoch: int, released: bool) -> LeaseState | None:
        """Append epoch ``epoch`` with a fresh token; our row if we won it, None if another did."""
        now = _now()
        state = LeaseState(
            epoch, uuid.uuid4().hex, os.getpid(), socket.gethostname(), self.purpose,
            now, now + self._duration, released,
        )  # fmt: skip
        row = Row(name=self.name, **{k: getattr(state, k) for k in LeaseState.__dataclass_fields__})
        frame = self._spark.createDataFrame([row], LEASE_SCHEMA)
        try:
            self._store.append(frame, LEASES, app_id=f"lease:{self.name}", batch_id=epoch)
        except Exception as error:  # a concurrent commit of the same epoch: see who holds it
            winner = self._row(epoch)
            if winner is None:
                raise
            LOG.info("lease %s: epoch %d lost to a concurrent claim (%r)", self.name, epoch, error)
        winner = self._row(epoch)
        return state if winner is not None and winner.token == state.token else None

    def _row(self, epoch: int | None) -> LeaseState | None:
        try:
            rows = self._store.read(LEASES).filter(F.col("name") == self.name)
        except TableNotFound:
            return None
        if epoch is not None:
            rows = rows.filter(F.col("epoch") == epoch)
        latest = rows.orderBy(F.col("epoch").desc()).limit(1).collect()
        if not latest:
            return None
        fields = latest[0].asDict()
        return LeaseState(**{k: fields[k] for k in LeaseState.__dataclass_fields__})

    def _message(self, holder: LeaseState | None) -> str:
        where = self._store.location(LEASES)
        if holder is None:
            return f"lease {self.name!r} ({where}) is held by another job; try again when it has finished"
        return (
            f"another job holds the {self.name!r} lease ({where}): {holder.describe()}. "
            "It is released when that job ends."
        )


def _now() -> dt.datetime:
    """Naive local time: PySpark turns naive datetimes into instants and back in local time."""
    return dt.datetime.now().replace(microsecond=0)
