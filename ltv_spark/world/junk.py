"""One malformed file of each kind a platform's logger produces, for ingest to quarantine whole.

Written on the driver: they are a handful of lines each.
"""

from __future__ import annotations

import datetime as dt
import io
import os

import pandas as pd

from ltv_spark.world.files import render
from ltv_spark.world.simulate import EVENT_COLUMNS

JUNK_ROWS = 5


def write_junk_files(out: str, start: dt.date, fmt: str) -> list[str]:
    """Write bad-encoding, truncated and wrong-layout files into the first days' folders."""
    sample = _sample_rows(start)
    good = render(sample, fmt)
    files = {}
    if fmt == "parquet":
        files["junk-truncated.parquet"] = good[: len(good) // 2]
        files["junk-wrong-columns.parquet"] = render_renamed_parquet(sample)
    else:
        text = good.decode("utf-8")
        files[f"junk-bad-encoding.{fmt}"] = text.replace("view", "vi\u00e9w").encode("latin-1")
        files[f"junk-truncated.{fmt}"] = good[: len(good) - 7]
        wrong = (
            text.replace(",", ";") if fmt == "csv" else "".join(f"[{line}]\n" for line in text.splitlines())
        )
        files[f"junk-wrong-layout.{fmt}"] = wrong.encode("utf-8")
    written = []
    for offset, (name, payload) in enumerate(sorted(files.items())):
        folder = os.path.join(out, (start + dt.timedelta(days=offset)).isoformat())
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name)
        with open(path, "wb") as handle:
            handle.write(payload)
        written.append(path)
    return written


def render_renamed_parquet(sample: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    renamed = sample[list(EVENT_COLUMNS)].rename(columns={"user_id": "customer", "event_time": "ts"})
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(renamed.astype(str), preserve_index=False), sink)
    return sink.getvalue()


def _sample_rows(start: dt.date) -> pd.DataFrame:
    stamp = f"{start.isoformat()}T12:00:00.000Z"
    rows = [
        (f"junk-{i:03d}", "u99999999", stamp, "view", "p00001", "c00", "9.99", "", "")
        for i in range(JUNK_ROWS)
    ]
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    frame["malformed"] = False
    return frame
