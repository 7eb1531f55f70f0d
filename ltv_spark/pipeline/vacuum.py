"""``ltv vacuum``: delete the files no Delta version needs any more, in every table of the warehouse.

Files pile up three ways: versions replaced by later writes (overwrites, merges, deletes), writes
killed between their files and their commit, and Spark writes killed while staging. Each table's
VACUUM removes them once they are older than the retention; a file the latest version reads is
never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ltv_spark.progress import stage
from ltv_spark.tables import TableStore


@dataclass
class VacuumSummary:
    """Files deleted per table by one ``ltv vacuum``."""

    retention_hours: int
    deleted: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        total = sum(self.deleted.values())
        lines = [
            f"retention      {self.retention_hours} hours (time travel before that stops working)",
            f"tables         {len(self.deleted)}",
            f"files deleted  {total:,}",
        ]
        return lines + [f"  {name:<28} {n:>8,}" for name, n in sorted(self.deleted.items()) if n]


def vacuum_warehouse(store: TableStore, retention_hours: int) -> VacuumSummary:
    """VACUUM every table of the store; how many files each lost."""
    if retention_hours < 0:
        raise ValueError(f"retention_hours={retention_hours}: expected 0 or more hours")
    result = VacuumSummary(retention_hours)
    for name in store.tables():
        with stage(f"vacuum {name}") as timer:
            result.deleted[name] = store.vacuum(name, retention_hours)
            timer.rows = result.deleted[name]
    return result
