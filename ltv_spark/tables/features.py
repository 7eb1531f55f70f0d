"""Which Delta protocol features an engine that reads files by path can honour.

delta-rs lists a snapshot's files and Spark reads them as plain Parquet. That is only right when
every row of every listed file is live and columns are named as in the files: deletion vectors and
column mapping break both, so such tables are refused instead of being read wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ltv_spark.tables.base import UnsupportedTableFeature

# Reader features that do not change which rows or columns a plain Parquet read returns.
SAFE_READER_FEATURES = frozenset({"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"})
# Writer features our commits respect (we never write CDC files, constraints or identities).
SAFE_WRITER_FEATURES = SAFE_READER_FEATURES | {"appendOnly", "invariants"}
# Legacy writer versions 3..6 imply check constraints, CDF, generated/identity columns, column mapping.
MAX_SAFE_LEGACY_WRITER_VERSION = 2


def check_readable(
    location: str,
    min_reader_version: int,
    reader_features: Iterable[str] | None,
    configuration: Mapping[str, str | None],
) -> None:
    """Raise UnsupportedTableFeature when a path-based Parquet read would return wrong data."""
    mapping_mode = configuration.get("delta.columnMapping.mode") or "none"
    if mapping_mode != "none":
        raise UnsupportedTableFeature(
            f"{location}: column mapping (mode={mapping_mode}) is not supported by the delta-rs engine; "
            "read this table with Spark's Delta connector, or rewrite it without column mapping"
        )
    unsupported = sorted(set(reader_features or ()) - SAFE_READER_FEATURES)
    if unsupported:
        raise UnsupportedTableFeature(
            f"{location}: reader feature(s) {', '.join(unsupported)} not supported by the delta-rs engine "
            f"(it honours only {', '.join(sorted(SAFE_READER_FEATURES))}); use Spark's Delta connector, "
            "or purge them (e.g. REORG TABLE ... APPLY (PURGE) for deletion vectors)"
        )
    if min_reader_version > 3:
        raise UnsupportedTableFeature(f"{location}: Delta reader version {min_reader_version} is unknown")


def check_writable(
    location: str,
    min_reader_version: int,
    min_writer_version: int,
    reader_features: Iterable[str] | None,
    writer_features: Iterable[str] | None,
    configuration: Mapping[str, str | None],
) -> None:
    """Raise UnsupportedTableFeature when our commits would break a feature's guarantees."""
    check_readable(location, min_reader_version, reader_features, configuration)
    if writer_features is None and min_writer_version > MAX_SAFE_LEGACY_WRITER_VERSION:
        raise UnsupportedTableFeature(
            f"{location}: Delta writer version {min_writer_version} (constraints, change data feed, "
            "generated or identity columns) is not supported by the delta-rs engine"
        )
    unsupported = sorted(set(writer_features or ()) - SAFE_WRITER_FEATURES)
    if unsupported:
        raise UnsupportedTableFeature(
            f"{location}: writer feature(s) {', '.join(unsupported)} not supported by the delta-rs engine"
        )
