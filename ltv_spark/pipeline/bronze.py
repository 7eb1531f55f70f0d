"""Raw drops -> bronze: the generated world, ingest with quarantine, CDNOW.

Entry points (the ``ltv`` CLI, ``jobs/*.py``, notebooks) call these and nothing else; the stage
modules below never read or write a table themselves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ltv_spark.cdnow import cdnow_path, read_cdnow
from ltv_spark.config import IngestConfig, WorldConfig, config_to_dict
from ltv_spark.contract import Reason, classify_events, to_bronze, to_quarantine
from ltv_spark.file_log import (
    VERSION_COLUMNS,
    LoggedFile,
    describe_change,
    files_to_read,
    latest_logged,
    with_columns,
)
from ltv_spark.forget import names_hashed_users
from ltv_spark.frames import union_all
from ltv_spark.ingest import (
    STATUS_BRONZE,
    STATUS_QUARANTINE,
    IngestCounts,
    count_by_file,
    event_id_rows,
    label_rows,
)
from ltv_spark.pipeline.forget import forgotten_hashes
from ltv_spark.progress import LOG, stage
from ltv_spark.raw_files import (
    RawFile,
    drop_day,
    inspect_files,
    list_raw_files,
    read_bad_files,
    read_good_files,
)
from ltv_spark.tables import TableStore
from ltv_spark.world import events_frame, observable_ceiling_frame, truth_frame, write_drops, write_junk_files

EVENTS = "bronze.events"
QUARANTINE = "bronze.quarantine"
EVENT_IDS = "bronze.event_ids"  # every event id bronze kept, by hash bucket: the duplicate lookup
INGEST_FILES = "bronze.ingest_files"
INGEST_BATCHES = "bronze.ingest_batches"
TRUTH = "world.truth"
OBSERVABLE_CEILING = "world.observable_ceiling"
CDNOW_EVENTS = "cdnow.events"
CDNOW_QUARANTINE = "cdnow.quarantine"
WORLD_MARKER = "_world.json"
FILE_LOG_SCHEMA = (  # bronze.ingest_files, in table order (a log older than re-drops ends at duplicate_rows)
    "batch_id long, path string, file_reason string, detail string, ingested_at timestamp, "
    "input_rows long, bronze_rows long, quarantine_rows long, duplicate_rows long, "
    "size long, modified_ms long, sha256 string, forgotten_rows long"
)
ADDED_LOG_COLUMNS = {**VERSION_COLUMNS, "forgotten_rows": "long"}  # null in an older log's rows
CDNOW_APP_ID = "ltv_spark.cdnow"


class WorldExists(RuntimeError):
    """The output folder already holds a different world (or other files)."""


@dataclass
class GenerateSummary:
    out: str
    files: int
    events: int
    bytes: int
    junk_files: int
    truth_table: str
    skipped: bool = False

    def lines(self) -> list[str]:
        if self.skipped:
            return [f"raw files   {self.out} (already generated with this configuration: kept)"]
        return [
            f"raw files   {self.out}",
            f"            {self.files:,} files, {self.events:,} events, {self.bytes / 1e6:,.1f} MB",
            f"            + {self.junk_files} malformed files (one per kind)",
            f"truth       {self.truth_table}",
        ]


def generate_world(
    spark: SparkSession, store: TableStore, world: WorldConfig, overwrite: bool = False
) -> GenerateSummary:
    """Write the world's raw daily drops and its truth table (skipped if the same world is there)."""
    out = Path(world.out).resolve()
    marker = out / WORLD_MARKER
    wanted = json.dumps(config_to_dict(world), sort_keys=True)
    if marker.exists() and marker.read_text() == wanted and not overwrite:
        return GenerateSummary(str(out), 0, 0, 0, 0, store.location(TRUTH), skipped=True)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise WorldExists(f"{out} is not empty and holds another world: pass --overwrite to replace it")
        shutil.rmtree(out)
    with stage("generate: events -> raw files") as timer:
        manifest = write_drops(events_frame(spark, world), world, str(out)).collect()  # one row per file
        timer.rows = sum(row["rows"] for row in manifest)
    junk = write_junk_files(str(out), world.start_date, world.format) if world.dirty_rate > 0 else []
    with stage("generate: truth") as timer:
        truth = truth_frame(spark, world, world.truth_cutoff, world.truth_horizon_days)
        # the whole table: a truth that ensure_truth added for another cutoff was the old world's
        store.overwrite(truth, TRUTH, partition_by=["cutoff", "horizon_days"])
        timer.rows = world.users
    marker.write_text(wanted)
    return GenerateSummary(
        out=str(out),
        files=len(manifest),
        events=sum(row["rows"] for row in manifest),
        bytes=sum(row["bytes"] for row in manifest),
        junk_files=len(junk),
        truth_table=store.location(TRUTH),
    )


def ensure_truth(
    spark: SparkSession, store: TableStore, world: WorldConfig, cutoff: dt.date, horizon_days: int
) -> DataFrame:
    """world.truth at (cutoff, horizon), written once; the world on disk must be this config's."""
    _check_world_on_disk(world)
    at = (F.col("cutoff") == F.lit(cutoff)) & (F.col("horizon_days") == horizon_days)
    if not store.exists(TRUTH) or store.read(TRUTH).filter(at).limit(1).count() == 0:
        with stage(f"truth at {cutoff} + {horizon_days} days") as timer:
            replace = {"cutoff": [cutoff.isoformat()], "horizon_days": [horizon_days]}
            truth = truth_frame(spark, world, cutoff, horizon_days)
            store.overwrite(truth, TRUTH, partition_by=["cutoff", "horizon_days"], replace_partitions=replace)
            timer.rows = world.users
    return store.read(TRUTH).filter(at)


def ensure_observable_ceiling(
    spark: SparkSession,
    store: TableStore,
    world: WorldConfig,
    cutoff: dt.date,
    horizon_days: int,
    particles: int,
    share: float,
) -> DataFrame:
    """world.observable_ceiling at (cutoff, horizon) for this world, particle count and sample; computed
    once (it is the costliest reference: a posterior per user)."""
    fingerprint = _check_world_on_disk(world)
    at = (F.col("cutoff") == F.lit(cutoff)) & (F.col("horizon_days") == horizon_days)
    same = at & (F.col("world") == fingerprint) & (F.col("particles") == particles)
    same &= F.col("sample_share") == share
    if (
        not store.exists(OBSERVABLE_CEILING)
        or store.read(OBSERVABLE_CEILING).filter(same).limit(1).count() == 0
    ):
        with stage(f"observable ceiling at {cutoff} + {horizon_days} days ({particles} particles)") as timer:
            ceiling = observable_ceiling_frame(spark, world, cutoff, horizon_days, particles, share)
            replace = {"cutoff": [cutoff.isoformat()], "horizon_days": [horizon_days]}
            store.overwrite(
                ceiling.withColumn("world", F.lit(fingerprint)),
                OBSERVABLE_CEILING,
                partition_by=["cutoff", "horizon_days"],
                replace_partitions=replace,
            )
            timer.rows = store.read(OBSERVABLE_CEILING).filter(same).count()
    return store.read(OBSERVABLE_CEILING).filter(same)


def _check_world_on_disk(world: WorldConfig) -> str:
    """The world's fingerprint; raises unless the raw drops on disk are this configuration's world."""
    marker = Path(world.out).resolve() / WORLD_MARKER
    wanted = json.dumps(config_to_dict(world), sort_keys=True)
    if not marker.exists() or marker.read_text() != wanted:
        raise WorldExists(
            f"{marker} does not describe the configured world (world.*): the oracle would not be the "
            f"truth of the events in bronze ({_world_difference(marker, world)}). Run `ltv generate` "
            "with this configuration first, or pass the world's settings (e.g. --set world.model=btyd)."
        )
    return hashlib.sha256(wanted.encode()).hexdigest()[:16]


def _world_difference(marker: Path, world: WorldConfig) -> str:
    """The world keys where the marker and the configuration differ, as ``key: disk != config``."""
    if not marker.exists():
        return "no world there"
    on_disk, configured = _flat(json.loads(marker.read_text())), _flat(config_to_dict(world))
    keys = sorted(k for k in on_disk.keys() | configured.keys() if on_disk.get(k) != configured.get(k))
    return "; ".join(f"world.{k}: {on_disk.get(k)!r} on disk, {configured.get(k)!r} configured" for k in keys)


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@dataclass(frozen=True)
class BatchPlan:
    """The files of one ingest batch, recorded before any table is written so a re-run redoes it exactly."""

    batch_id: int
    files: list[str]
    ingested_at: dt.datetime
    bronze_version: int  # bronze as it was before this batch (-1: no table yet); event ids index it
    resumed: bool = False


def ingest_raw(
    spark: SparkSession,
    store: TableStore,
    ingest: IngestConfig,
    now: dt.datetime | None = None,
    before: dt.date | None = None,
) -> IngestCounts:
    """Ingest the raw files not seen before as one batch; return where every input row went.

    ``before``: only the drops of days before it (their ``<YYYY-MM-DD>/`` folder), as a daily
    refresh of that date sees them; files outside a day folder are always taken.
    """
    spark.conf.set("spark.sql.csv.parser.columnPruning.enabled", "false")  # corrupt rows need all columns
    listing = list_raw_files(spark, ingest.raw_dir, ingest.format)
    listed, skipped = listing.files, [f.path for f in listing.skipped]
    if before is not None:
        listed = [f for f in listed if _dropped_before(f.path, before)]
        skipped = [path for path in skipped if _dropped_before(path, before)]
    for path in skipped:
        LOG.warning("[ingest] skipping %s: not a %s drop (ingest.format)", path, ingest.format)
    logged = _logged_files(store)
    to_read = [f.path for f in files_to_read(listed, logged)]
    plan = _plan_batch(spark, store, to_read, ingest.app_id, now)
    if plan is None:
        LOG.info("[ingest] no new or changed files under %s", ingest.raw_dir)
        return IngestCounts(skipped_files=skipped)
    resumed = " (resumed)" if plan.resumed else ""
    LOG.info("[ingest] batch %d: %d files%s", plan.batch_id, len(plan.files), resumed)
    inspected, empty = _inspect_batch(spark, plan, listed, ingest.format)
    inspected, unchanged = _sort_out_redrops(inspected, listed, logged, ingest.changed_files)
    empty += unchanged
    good = [f for f in inspected if f["reason"] is None]
    bad = [f for f in inspected if f["reason"] is not None]
    for file in bad:
        LOG.warning("[ingest] quarantining %s whole: %s (%s)", file["path"], file["reason"], file["detail"])

    _index_event_ids_once(store, plan)
    forgotten = forgotten_hashes(store)
    labelled = _label_good_files(spark, store, plan, ingest, good, forgotten)
    bad_lines = read_bad_files(spark, bad)
    if bad_lines is not None:
        naming = names_hashed_users(F.lit(None), F.col("raw"), forgotten) if forgotten else F.lit(False)
        bad_lines = to_quarantine(bad_lines, plan.ingested_at, plan.batch_id).withColumn("_forgotten", naming)
        bad_lines = bad_lines.persist()
    file_counts = _count_files(labelled, bad_lines)
    if bad_lines is not None:
        bad_lines = bad_lines.filter(~F.col("_forgotten")).drop("_forgotten")
    rejected = [bad_lines] if bad_lines is not None else []
    if labelled is not None:
        broken = labelled.filter(F.col("status") == STATUS_QUARANTINE)
        rejected.append(to_quarantine(broken, plan.ingested_at, plan.batch_id))
    quarantine = union_all(rejected)
    counts = IngestCounts(
        files=len(inspected) + len(empty),
        files_quarantined=len(bad),
        files_empty=len(empty) - len(unchanged),
        skipped_files=skipped,
        changed_files=[f"{f['path']}: {f['detail']}" for f in inspected + unchanged if f["path"] in logged],
        ignored_columns=_ignored_columns(good),
    )
    for file in file_counts:
        counts.add_file(file)
    if quarantine is not None:
        by_reason = quarantine.groupBy("reason").agg(F.count(F.lit(1)).alias("n")).collect()
        counts.reasons = {row["reason"]: row["n"] for row in by_reason}

    with stage("ingest: write tables") as timer:
        every_file = [*inspected, *empty]
        logged_as = _log_rows(every_file, listed, file_counts)
        _write_batch(spark, store, ingest.app_id, plan, labelled, quarantine, logged_as)
        timer.rows = counts.bronze_rows
    for frame in (labelled, bad_lines):
        if frame is not None:
            frame.unpersist()
    return counts


def _dropped_before(path: str, before: dt.date) -> bool:
    """Whether a refresh of ``before`` sees the file: a drop of an earlier day, or outside a day folder."""
    return (drop_day(path) or dt.date.min) < before


def _inspect_batch(
    spark: SparkSession, plan: BatchPlan, listed: list[RawFile], fmt: str
) -> tuple[list[dict], list[dict]]:
    """The inspection rows of the batch's files with content, and those of its zero-byte files."""
    sizes = {f.path: f.size for f in listed}
    empty = [_empty_file(path) for path in plan.files if sizes.get(path) == 0]
    to_read = [path for path in plan.files if sizes.get(path) != 0]
    if not to_read:
        return [], empty
    with stage("ingest: inspect files"):
        return [row.asDict() for row in inspect_files(spark, to_read, fmt).collect()], empty


def _empty_file(path: str) -> dict:
    """The inspection row of a zero-byte drop: not an error, and recorded, so it is never planned
    again (Spark's file readers skip zero-byte files, so no inspection row would come back)."""
    return {
        "path": path,
        "reason": None,
        "detail": "empty file (0 bytes)",
        "header": None,
        "lines": 0,
        "extra_columns": None,
        "sha256": hashlib.sha256(b"").hexdigest(),
    }


def _logged_files(store: TableStore) -> dict[str, LoggedFile]:
    """The file log's newest row per path; a log written before it kept file versions is upgraded
    once (its rows gain null size, time and hash, so none of its files is read again)."""
    if not store.exists(INGEST_FILES):
        return {}
    log = store.read(INGEST_FILES)
    missing = {c: kind for c, kind in ADDED_LOG_COLUMNS.items() if c not in log.columns}
    if missing:
        LOG.warning("[ingest] %s: adding columns %s (null in the rows before)", INGEST_FILES, list(missing))
        store.overwrite(with_columns(log, missing), INGEST_FILES)
        log = store.read(INGEST_FILES)
    return latest_logged(log)


def _sort_out_redrops(
    inspected: list[dict], listed: list[RawFile], logged: dict[str, LoggedFile], mode: str
) -> tuple[list[dict], list[dict]]:
    """Files to read, and re-dropped files whose bytes are those already read (logged, not read).

    A re-drop with other bytes is read again (its rows already in bronze count as duplicates) or,
    with ``ingest.changed_files: quarantine``, quarantined whole. Either way its detail says so.
    """
    by_path = {f.path: f for f in listed}
    to_read, unchanged = [], []
    for file in inspected:
        before = logged.get(file["path"])
        if before is None:
            to_read.append(file)
            continue
        change = describe_change(by_path[file["path"]], before)
        if before.sha256 is not None and file["sha256"] == before.sha256:
            detail = f"{change}; same bytes as batch {before.batch_id}: not read again"
            unchanged.append({**file, "reason": None, "detail": detail, "lines": 0, "extra_columns": None})
        elif mode == "quarantine":
            detail = f"{change}; quarantined whole (ingest.changed_files: quarantine)"
            to_read.append({**file, "reason": Reason.CHANGED, "detail": detail})
        else:
            detail = f"{change}; read again (rows already in bronze are duplicates)"
            to_read.append({**file, "detail": detail})
    for file in [*to_read, *unchanged]:
        if file["path"] in logged:
            LOG.warning("[ingest] re-drop %s: %s", file["path"], file["detail"])
    return to_read, unchanged


def _ignored_columns(good: list[dict]) -> dict[str, int]:
    """Columns of the good files that the contract does not know, with the number of files."""
    files_with: dict[str, int] = {}
    for file in good:
        for column in json.loads(file["extra_columns"] or "[]"):
            files_with[column] = files_with.get(column, 0) + 1
    return files_with


def _label_good_files(
    spark: SparkSession,
    store: TableStore,
    plan: BatchPlan,
    ingest: IngestConfig,
    good: list[dict],
    forgotten: list[str],
) -> DataFrame | None:
    """Rows of the files that passed inspection, each with its ``status`` (persisted: read 3 times);
    a row naming a customer of the suppression list (``forgotten``, hashed ids) is not kept."""
    raw = read_good_files(spark, good, ingest.format)
    if raw is None:
        return None
    max_time = plan.ingested_at + dt.timedelta(hours=ingest.max_future_hours)
    min_time = dt.datetime.combine(ingest.min_event_time, dt.time())
    classified = classify_events(raw, min_time, max_time)
    naming = names_hashed_users(F.col("user_id"), F.col("raw"), forgotten) if forgotten else None
    labelled = label_rows(classified, _seen_event_ids(store, plan), naming)
    labelled = labelled.persist(StorageLevel.MEMORY_AND_DISK)
    labelled.count()  # materialize: the counts, the quarantine and the writes read it
    return labelled


def _count_files(labelled: DataFrame | None, bad_lines: DataFrame | None) -> list[dict]:
    """Per source file: input, bronze, quarantine, duplicate and forgotten rows (a small row per file).

    ``bad_lines``: the lines of files quarantined whole, with ``_forgotten`` (lines naming a
    forgotten customer, not kept).
    """
    counts = [row.asDict() for row in count_by_file(labelled).collect()] if labelled is not None else []
    if bad_lines is not None:
        forgotten = F.sum(F.col("_forgotten").cast("long"))
        per_file = bad_lines.groupBy("source_file").agg(F.count(F.lit(1)).alias("n"), forgotten.alias("f"))
        for row in per_file.collect():
            counts.append(
                {
                    "source_file": row["source_file"],
                    "input_rows": row["n"],
                    "bronze_rows": 0,
                    "quarantine_rows": row["n"] - row["f"],
                    "duplicate_rows": 0,
                    "forgotten_rows": row["f"],
                }
            )
    return counts


def _write_batch(
    spark: SparkSession,
    store: TableStore,
    app_id: str,
    plan: BatchPlan,
    labelled: DataFrame | None,
    quarantine: DataFrame | None,
    log_rows: list[dict],
) -> None:
    """Quarantine, then bronze and its ids, then the file log (the batch's completion mark), each
    exactly once."""
    if quarantine is not None:
        store.append(quarantine, QUARANTINE, app_id=app_id, batch_id=plan.batch_id)
    if labelled is not None:
        good = to_bronze(labelled.filter(F.col("status") == STATUS_BRONZE), plan.ingested_at, plan.batch_id)
        bronze = good.repartition("event_date")  # a file a day
        store.append(bronze, EVENTS, partition_by=["event_date"], app_id=app_id, batch_id=plan.batch_id)
        ids = event_id_rows(good).repartition("id_bucket")  # a file a bucket
        store.append(ids, EVENT_IDS, partition_by=["id_bucket"], app_id=app_id, batch_id=plan.batch_id)
    log = _file_log(spark, plan, log_rows)
    store.append(log, INGEST_FILES, app_id=app_id, batch_id=plan.batch_id)


def ingest_cdnow(spark: SparkSession, store: TableStore, path: str | None = None) -> IngestCounts:
    """Load CDNOW into ``cdnow.events`` under the same contract, once."""
    source = path or str(cdnow_path())
    ingested_at = dt.datetime(1998, 7, 1)  # fixed, so that re-running changes nothing
    with stage("ingest: CDNOW") as timer:
        min_time, max_time = dt.datetime(1997, 1, 1), dt.datetime(1998, 7, 1)
        labelled = label_rows(classify_events(read_cdnow(spark, source), min_time, max_time)).persist()
        counts = IngestCounts(files=1)
        for file in _count_files(labelled, None):
            counts.add_file(file)
        bronze = to_bronze(labelled.filter(F.col("status") == STATUS_BRONZE), ingested_at, 0)
        quarantine = to_quarantine(labelled.filter(F.col("status") == STATUS_QUARANTINE), ingested_at, 0)
        # One fixed batch: loading the same file again commits nothing.
        store.append(quarantine, CDNOW_QUARANTINE, app_id=CDNOW_APP_ID, batch_id=0)
        store.append(bronze, CDNOW_EVENTS, app_id=CDNOW_APP_ID, batch_id=0)
        labelled.unpersist()
        timer.rows = counts.bronze_rows
    return counts


def _seen_event_ids(store: TableStore, plan: BatchPlan) -> DataFrame | None:
    """Event ids bronze kept before this batch, from ``bronze.event_ids``: one narrow column.

    Across all of bronze, whatever the event's date: a replay with another timestamp is caught.
    The rows of this batch itself (a resumed batch may have written them) are left out. Every hash
    bucket is read: a batch of more than a few dozen events has ids in all EVENT_ID_BUCKETS of them,
    and finding which (a pass over the batch, held in memory for it) cost more than it saved.
    """
    if not store.exists(EVENT_IDS):
        return None
    return store.read(EVENT_IDS).filter(F.col("batch_id") < plan.batch_id).select("event_id")


def _index_event_ids_once(store: TableStore, plan: BatchPlan) -> None:
    """Build ``bronze.event_ids`` from bronze (as it was before this batch) when a warehouse
    ingested before the table existed has none: one full read, once."""
    if plan.bronze_version < 0 or store.exists(EVENT_IDS):
        return
    with stage("ingest: index bronze's event ids (once)") as timer:
        ids = event_id_rows(store.read(EVENTS, version=plan.bronze_version))
        store.append(ids.repartition("id_bucket"), EVENT_IDS, partition_by=["id_bucket"])
        timer.rows = store.read(EVENT_IDS).count()


def _plan_batch(
    spark: SparkSession, store: TableStore, to_read: list[str], app_id: str, now: dt.datetime | None
) -> BatchPlan | None:
    """Resume the last batch if it never completed; otherwise record a new batch of ``to_read``
    (the new and changed files)."""
    last_planned = None
    if store.exists(INGEST_BATCHES):
        batches = store.read(INGEST_BATCHES)
        last_planned = batches.agg(F.max("batch_id")).first()[0]
        last_done = store.committed_batch(INGEST_FILES, app_id)
        if last_planned is not None and (last_done is None or last_done < last_planned):
            row = batches.filter(F.col("batch_id") == last_planned).first()
            return BatchPlan(
                row["batch_id"], list(row["files"]), row["ingested_at"], row["bronze_version"], True
            )
    if not to_read:
        return None
    plan = BatchPlan(
        batch_id=0 if last_planned is None else last_planned + 1,
        files=to_read,
        ingested_at=(now or dt.datetime.now(dt.UTC)).replace(tzinfo=None, microsecond=0),
        bronze_version=store.version(EVENTS) if store.exists(EVENTS) else -1,
    )
    record = spark.createDataFrame(
        [(plan.batch_id, plan.files, plan.ingested_at, plan.bronze_version)],
        "batch_id long, files array<string>, ingested_at timestamp, bronze_version long",
    ).coalesce(1)
    store.append(record, INGEST_BATCHES, app_id=app_id, batch_id=plan.batch_id)
    return plan


def _log_rows(inspected: list[dict], listed: list[RawFile], counts: list[dict]) -> list[dict]:
    """Each file of the batch as the file log keeps it: inspection, version (size, time, hash), and
    where its rows went. A file listed no more (deleted since a resumed batch was planned) keeps
    null size and time."""
    by_file = {c["source_file"]: c for c in counts}
    nothing = dict.fromkeys(
        ("input_rows", "bronze_rows", "quarantine_rows", "duplicate_rows", "forgotten_rows"), 0
    )
    sizes = {f.path: f for f in listed}
    rows = []
    for file in inspected:
        version = sizes.get(file["path"])
        ignored = file["extra_columns"] and f"columns not in the contract, ignored: {file['extra_columns']}"
        rows.append(
            {
                **file,
                **by_file.get(file["path"], nothing),
                "detail": "; ".join(part for part in (file["detail"], ignored) if part) or None,
                "size": version.size if version else None,
                "modified_ms": version.modified_ms if version else None,
            }
        )
    return rows


def _file_log(spark: SparkSession, plan: BatchPlan, log_rows: list[dict]) -> DataFrame:
    """``bronze.ingest_files``: one row per file of the batch; a path is read again only when its
    size or modification time change (a re-drop)."""
    columns = [column.split()[0] for column in FILE_LOG_SCHEMA.split(", ")]
    batch = {"batch_id": plan.batch_id, "ingested_at": plan.ingested_at}
    rows = [tuple({**row, **batch, "file_reason": row["reason"]}[c] for c in columns) for row in log_rows]
    return spark.createDataFrame(rows, FILE_LOG_SCHEMA).coalesce(1)  # one small file per batch
