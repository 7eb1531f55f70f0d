"""One function per pipeline stage: read tables, call the pure transformations, write tables.

Entry points (the ``ltv`` CLI, ``jobs/*.py``, notebooks) call these and nothing else; the stage
modules below never read or write a table themselves.
"""

from ltv_spark.pipeline.bronze import (
    CDNOW_EVENTS,
    CDNOW_QUARANTINE,
    EVENTS,
    INGEST_BATCHES,
    INGEST_FILES,
    QUARANTINE,
    TRUTH,
    GenerateSummary,
    WorldExists,
    generate_world,
    ingest_cdnow,
    ingest_raw,
)
from ltv_spark.pipeline.gold import (
    FEATURES,
    LABELS,
    SEQUENCES,
    CutoffSummary,
    TrainingSet,
    build_cutoff,
    build_cutoffs,
    build_training_set,
    examples,
)
from ltv_spark.pipeline.silver import SESSIONS, SESSIONS_PROGRESS, SessionsSummary, build_sessions

__all__ = [
    "CDNOW_EVENTS",
    "CDNOW_QUARANTINE",
    "EVENTS",
    "FEATURES",
    "INGEST_BATCHES",
    "INGEST_FILES",
    "LABELS",
    "QUARANTINE",
    "SEQUENCES",
    "SESSIONS",
    "SESSIONS_PROGRESS",
    "TRUTH",
    "CutoffSummary",
    "GenerateSummary",
    "SessionsSummary",
    "TrainingSet",
    "WorldExists",
    "build_cutoff",
    "build_cutoffs",
    "build_sessions",
    "build_training_set",
    "examples",
    "generate_world",
    "ingest_cdnow",
    "ingest_raw",
]
