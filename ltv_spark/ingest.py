"""Raw events -> bronze: classify, drop repeated event ids, count where every input row went.

Pure DataFrame functions; reading and writing tables happens in ltv_spark.pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

STATUS_BRONZE = "bronze"
STATUS_QUARANTINE = "quarantine"
STATUS_DUPLICATE = "duplicate"
STATUS_FORGOTTEN = "forgotten"  # a customer who asked to be forgotten (ltv forget): counted, not kept
SHOWN_FILES = 20  # skipped or re-dropped files named in a run's summary
# bronze.event_ids is partitioned by a hash of the id into this many buckets. Changing it means
# rebuilding that table (delete it: the next ingest rebuilds it from bronze).
EVENT_ID_BUCKETS = 16
# Among rows sharing an event_id the earliest wins; the other columns only break exact ties.
_KEEP_ORDER = (
    "event_time",
    "source_file",
    "event_type",
    "user_id",
    "product_id",
    "price",
    "quantity",
    "order_id",
)


def label_rows(
    classified: DataFrame, existing_event_ids: DataFrame | None = None, forgotten: Column | None = None
) -> DataFrame:
    """Add ``status``: forgotten (the row names a customer in ``forgotten``), quarantine (broke the
    contract), duplicate (event_id seen before), or bronze.

    An event_id counts as seen when it is already in bronze (``existing_event_ids``) or when an
    earlier row of the same batch carries it.
    """
    good = F.col("reason").isNull()
    # The id's hash leads the sort: ids share long prefixes (``u00028308-000054``), so sorting by the
    # id itself compares many pairs in full; by the hash, almost every pair is told apart by its
    # 8-byte sort prefix (the same groups: the hash is a function of the id). Ranking 2.1 million
    # events took 2.9-3.3 s against 4.0-4.1 s; ingesting 8.9 million, 117-127 s against 123-142 s
    # (within this machine's swings).
    window = Window.partitionBy(F.xxhash64("event_id"), "event_id", good).orderBy(
        *[F.col(c).asc_nulls_last() for c in _KEEP_ORDER]
    )
    ranked = classified.withColumn("_rank", F.row_number().over(window))
    if existing_event_ids is not None:
        seen = existing_event_ids.select("event_id").distinct().withColumn("_seen", F.lit(True))
        ranked = ranked.join(seen, on="event_id", how="left")
    else:
        ranked = ranked.withColumn("_seen", F.lit(None).cast("boolean"))
    status = (
        F.when(~good, F.lit(STATUS_QUARANTINE))
        .when(F.coalesce(F.col("_seen"), F.lit(False)) | (F.col("_rank") > 1), F.lit(STATUS_DUPLICATE))
        .otherwise(F.lit(STATUS_BRONZE))
    )
    if forgotten is not None:
        status = F.when(forgotten, F.lit(STATUS_FORGOTTEN)).otherwise(status)
    return ranked.withColumn("status", status).drop("_rank", "_seen")


def id_bucket(event_id: Column) -> Column:
    """The hash bucket of an event id in ``bronze.event_ids`` (stable across runs and engines)."""
    return F.pmod(F.xxhash64(event_id), F.lit(EVENT_ID_BUCKETS)).cast("int")


def event_id_rows(bronze: DataFrame) -> DataFrame:
    """``bronze.event_ids`` rows for bronze rows: the id, its customer (so that ``ltv forget``
    removes it with the rest), the batch that kept it, and its hash bucket."""
    return bronze.select("event_id", "user_id", "batch_id", id_bucket(F.col("event_id")).alias("id_bucket"))


def count_by_file(labelled: DataFrame) -> DataFrame:
    """One row per source file: input, bronze, quarantine, duplicate and forgotten row counts."""

    def rows_with(status: str) -> F.Column:
        return F.sum(F.when(F.col("status") == status, 1).otherwise(0)).cast("long").alias(f"{status}_rows")

    return labelled.groupBy("source_file").agg(
        F.count(F.lit(1)).cast("long").alias("input_rows"),
        rows_with(STATUS_BRONZE),
        rows_with(STATUS_QUARANTINE),
        rows_with(STATUS_DUPLICATE),
        rows_with(STATUS_FORGOTTEN),
    )


@dataclass
class IngestCounts:
    """Where the input rows of one ingest run went.

    ``input == bronze + quarantine + duplicates + forgotten``; skipped files are not read, so their
    rows are in none of these: they are listed by name.
    """

    files: int = 0
    files_quarantined: int = 0
    files_empty: int = 0  # zero-byte drops: recorded in bronze.ingest_files, nothing to read
    input_rows: int = 0
    bronze_rows: int = 0
    quarantine_rows: int = 0
    duplicate_rows: int = 0
    forgotten_rows: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    skipped_files: list[str] = field(default_factory=list)  # beside the drops, not of the format
    changed_files: list[str] = field(default_factory=list)  # "path: what changed, what was done"
    ignored_columns: dict[str, int] = field(default_factory=dict)  # column -> files holding it

    @property
    def balanced(self) -> bool:
        kept_apart = self.quarantine_rows + self.duplicate_rows + self.forgotten_rows
        return self.input_rows == self.bronze_rows + kept_apart

    def add_file(self, counts: dict) -> None:
        self.input_rows += counts["input_rows"]
        self.bronze_rows += counts["bronze_rows"]
        self.quarantine_rows += counts["quarantine_rows"]
        self.duplicate_rows += counts["duplicate_rows"]
        self.forgotten_rows += counts["forgotten_rows"]

    def lines(self) -> list[str]:
        check = "adds up" if self.balanced else "DOES NOT ADD UP"
        lines = [
            f"files          {self.files:>12,}  ({self.files_quarantined} quarantined whole, "
            f"{self.files_empty} empty)",
            f"input rows     {self.input_rows:>12,}",
            f"bronze         {self.bronze_rows:>12,}",
            f"quarantine     {self.quarantine_rows:>12,}",
            f"duplicates     {self.duplicate_rows:>12,}",
            f"forgotten      {self.forgotten_rows:>12,}  (customers deleted on request: not kept)",
            f"input = bronze + quarantine + duplicates + forgotten: {check}",
        ]
        lines += [f"  quarantined {reason:<22} {n:>10,}" for reason, n in sorted(self.reasons.items())]
        lines += [
            f"column {column!r} is not in the contract: ignored in {n} files"
            for column, n in sorted(self.ignored_columns.items())
        ]
        lines += _listed("re-dropped (changed since ingested)", self.changed_files)
        return lines + _listed("skipped (not the ingest format, not read)", self.skipped_files)


def _listed(title: str, files: list[str]) -> list[str]:
    """A summary's list of files: a title with the count, then the first SHOWN_FILES of them."""
    if not files:
        return []
    lines = [f"{title}: {len(files)} files", *(f"  {line}" for line in files[:SHOWN_FILES])]
    if len(files) > SHOWN_FILES:
        lines.append(f"  ... and {len(files) - SHOWN_FILES} more")
    return lines
