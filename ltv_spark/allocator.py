"""Keep the memory a scoring process frees for its next batch (glibc's malloc settings).

Scoring a batch of 1,024 users allocates the same few tensors of 1-16 MB on every batch. Past
glibc's mmap threshold each is a fresh ``mmap``: zeroed pages, page faults, and an ``munmap`` when
freed; and freed heap memory is handed back to the system once more than the trim threshold sits at
the heap's top. A Python worker that starts scoring with the defaults runs the model about 1.6x
slower than one whose threshold happened to grow (measured with ``benchmarks/bench_scoring.py``:
8,000-9,000 against 13,000-14,500 users/s on one core). Both thresholds are set once per process:
blocks up to 64 MiB come from the heap, and up to 256 MiB of freed memory stays there for reuse.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 64 * 2**20  # the largest glibc accepts on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD_BYTES = 256 * 2**20


@functools.cache
def reuse_freed_memory() -> bool:
    """Set this process's malloc to reuse freed memory (once); False where the C library is not
    glibc (macOS, musl) or refuses, and then nothing changes."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
