"""One of two driver processes racing on the same s3a:// warehouse (run by tests/test_lease.py).

``python -m tests.s3_racer <root> <ready_dir> <racer> <peers> -- <config overrides>``: starts its
own Spark session on the JVM engine, waits until every peer's session is up, then at once claims
the refresh lease (keeping it), appends its rows to ``test.appends`` and merges its key into
``test.merged``. Prints one JSON line: whether it won the lease (or whom it was told holds it), and
the commit conflicts it met and retried (how often the race was close enough to collide).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from ltv_spark.config import TablesConfig, load_config
from ltv_spark.lease import Lease, Locked
from ltv_spark.session import build_spark
from ltv_spark.tables import open_store

ROWS_PER_RACER = 50


class ConflictLog(logging.Handler):
    """Collects the table layer's and the lease's reports of a lost concurrent commit."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.conflicts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "concurrent" in record.getMessage():
            self.conflicts.append(record.getMessage()[:200])


def main(root: str, ready_dir: str, racer: int, peers: int, overrides: list[str]) -> None:
    conflicts = ConflictLog()
    logging.getLogger("ltv_spark").addHandler(conflicts)
    logging.getLogger("ltv_spark").setLevel(logging.INFO)
    spark = build_spark(load_config("local", overrides))
    spark.sparkContext.setLogLevel("ERROR")
    store = open_store(spark, TablesConfig(engine="spark-delta", root=root))
    rows = spark.createDataFrame([(racer, i) for i in range(ROWS_PER_RACER)], "racer int, i int")
    ready = Path(ready_dir)
    (ready / str(racer)).touch()
    while len(list(ready.iterdir())) < peers:  # the barrier: every JVM started, then all at once
        time.sleep(0.01)
    outcome: dict = {"racer": racer}
    try:
        Lease(spark, store, "refresh", f"racer {racer}").claim()
        outcome["lease"] = "won"
    except Locked as refused:
        outcome["lease"] = f"refused: {refused}"
    store.append(rows, "test.appends", app_id=f"racer-{racer}", batch_id=1)
    store.merge(
        spark.createDataFrame([(racer, "merged")], "racer int, note string"), "test.merged", ["racer"]
    )
    outcome["conflicts"] = conflicts.conflicts
    print(json.dumps(outcome), flush=True)
    spark.stop()


if __name__ == "__main__":
    separator = sys.argv.index("--")
    root, ready_dir, racer, peers = sys.argv[1:separator]
    main(root, ready_dir, int(racer), int(peers), sys.argv[separator + 1 :])
