"""bronze.events -> silver.sessions, incrementally by event day."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from ltv_spark.config import FeaturesConfig
from ltv_spark.pipeline.bronze import EVENTS
from ltv_spark.progress import stage
from ltv_spark.sessions import cap_user_days, sessionize
from ltv_spark.tables import TableStore

SESSIONS = "silver.sessions"
SESSIONS_PROGRESS = "silver.sessions_progress"


@dataclass
class SessionsSummary:
    bronze_batch: int | None
    days_rebuilt: int
    sessions_written: int

    def lines(self) -> list[str]:
        if self.days_rebuilt == 0:
            return ["silver.sessions: up to date"]
        return [f"silver.sessions: {self.sessions_written:,} sessions on {self.days_rebuilt} days rebuilt"]


def build_sessions(spark: SparkSession, store: TableStore, features: FeaturesConfig) -> SessionsSummary:
    """Sessionize the bronze batches not yet in silver, rewriting only the days they touch.

    A new day D can extend a session that started on D - 1 (across midnight), so the days rebuilt
    are the touched days and the day before each; the events of one more day before them are read
    so that a session continuing into the first rebuilt day is recognised as such. A session longer
    than a day (only capped bots) may be split at that boundary.
    """
    events = store.read(EVENTS)
    last_bronze = events.agg(F.max("batch_id")).first()[0]
    done = store.committed_batch(SESSIONS_PROGRESS, sessions_app_id(features))
    if last_bronze is None or (done is not None and done >= last_bronze):
        return SessionsSummary(done, 0, 0)
    with stage("sessions") as timer:
        new = events if done is None else events.filter(F.col("batch_id") > done)
        touched = {row[0] for row in new.select("event_date").distinct().collect()}  # one row per day
        rebuilt = sorted(touched | {d - dt.timedelta(days=1) for d in touched})
        context = [*rebuilt, rebuilt[0] - dt.timedelta(days=1)]
        window = events.filter(F.col("event_date").isin(*context))
        capped = cap_user_days(window, features.max_events_per_user_day)
        sessions = (
            sessionize(capped, features.session_gap_minutes)
            .filter(F.col("session_date").isin(*rebuilt))
            .repartition("session_date")  # a file a day: every cutoff reads this table
        )
        if done is None:
            store.overwrite(sessions, SESSIONS, partition_by=["session_date"])
        else:
            replace = {"session_date": [d.isoformat() for d in rebuilt]}
            store.overwrite(sessions, SESSIONS, partition_by=["session_date"], replace_partitions=replace)
        marker = spark.createDataFrame([(int(last_bronze),)], "bronze_batch long")
        store.append(marker, SESSIONS_PROGRESS, app_id=sessions_app_id(features), batch_id=int(last_bronze))
        timer.rows = store.read(SESSIONS).filter(F.col("session_date").isin(*rebuilt)).count()
    return SessionsSummary(int(last_bronze), len(rebuilt), timer.rows)


def sessions_app_id(features: FeaturesConfig) -> str:
    """silver.sessions' progress id. Its settings are part of it: sessions built with another gap or
    cap are not current, so changing either rebuilds the table whole on the next run."""
    return f"{features.app_id}/gap={features.session_gap_minutes},cap={features.max_events_per_user_day}"
