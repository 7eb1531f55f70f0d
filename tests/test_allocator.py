"""The scoring process's malloc keeps large freed blocks on its heap (ltv_spark.allocator)."""

from __future__ import annotations

import subprocess
import sys

from ltv_spark.allocator import reuse_freed_memory

# Run in a fresh interpreter: prints the memory mapping that holds a new 16 MB array.
MAPPING_OF_A_LARGE_BLOCK = """
import sys
import numpy as np
from ltv_spark.allocator import reuse_freed_memory

if sys.argv[1] == "reuse":
    assert reuse_freed_memory()
block = np.ones(16 * 2**20 // 8)  # 16 MB, the size of a scoring batch's attention weights
address = block.ctypes.data
with open("/proc/self/maps") as maps:
    for line in maps:
        start, end = (int(bound, 16) for bound in line.split()[0].split("-"))
        if start <= address < end:
            print(line.split()[-1] if line.rstrip().endswith("]") else "anonymous mapping")
"""


def _mapping_of_a_large_block(setting: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", MAPPING_OF_A_LARGE_BLOCK, setting], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def it_takes_a_large_block_from_the_heap_instead_of_a_fresh_mapping():
    assert _mapping_of_a_large_block("default") == "anonymous mapping"  # glibc: past 128 KB, an mmap
    assert _mapping_of_a_large_block("reuse") == "[heap]"  # kept on the heap, reused when freed


def it_is_set_once_per_process():
    assert reuse_freed_memory() is reuse_freed_memory()
