"""One refresh at a time: an exclusive lock file, created atomically, naming its holder.

``O_CREAT | O_EXCL`` makes creating the file the test-and-set: of two jobs starting together,
exactly one creates it. A lock left by a process that died on this host is recognised (its pid is
gone) and taken over; a lock held by a live process, or by another host, stops the second job with
a message naming the holder. The lock folder must be on a file system shared by every driver that
may start the job (a local path, or a DBFS / Volumes FUSE path on Databricks).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType


class Locked(RuntimeError):
    """Another job holds the lock."""


class FileLock:
    """``with FileLock(folder, "refresh"): ...``: held for the block, released even on errors."""

    def __init__(self, folder: str | Path, name: str, purpose: str = "") -> None:
        self.path = Path(folder) / f"{name}.lock"
        self.purpose = purpose

    def __enter__(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.time(),
            "purpose": self.purpose,
        }
        for _ in range(2):  # a second try only after removing a dead holder's lock
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                current = self._holder()
                if current is not None and self._is_dead(current):
                    self.path.unlink(missing_ok=True)
                    continue
                raise Locked(self._message(current)) from None
            with os.fdopen(descriptor, "w") as handle:
                json.dump(holder, handle)
            return self
        raise Locked(self._message(self._holder()))

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.path.unlink(missing_ok=True)

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return None  # being written or removed right now: treat as held

    @staticmethod
    def _is_dead(holder: dict) -> bool:
        if holder.get("host") != socket.gethostname():
            return False  # another machine's process: cannot tell, so it holds
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _message(self, holder: dict | None) -> str:
        if holder is None:
            return f"{self.path} is held by another job; try again when it has finished"
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder.get("since", 0)))
        return (
            f"another job holds {self.path}: pid {holder.get('pid')} on {holder.get('host')} since {started}"
            f" ({holder.get('purpose') or 'no purpose given'}). It stops by itself when that job ends; "
            "remove the file only if that process is gone."
        )
