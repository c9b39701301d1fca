"""What a task reserves on a scheduler that reserves memory (Ray): its DuckDB limit plus what
DuckDB, Arrow and pond allocate outside DuckDB's buffer manager.

`memory_limit` bounds DuckDB's buffer manager only. bench/task_memory.py measures a task's
process past its limit: beyond the worker's idle footprint (the Python runtime with DuckDB and
pyarrow loaded, ~87 MiB, there whether a task runs or not), a 2 M-row high-cardinality
group-by, a join and a sort at 100 MB – 400 MB limits with 1 or 2 threads used at most 44 MiB
more than their limit (DuckDB alone: 41 MiB), most of it at the smallest limits. Reserving the
limit alone over-commits a node by that much per task, so a task reserves
`limit + TASK_OVERHEAD_BYTES + limit / 8`: the measured fixed part with room, and a share that
grows with the limit for the allocations (hash table directories, Arrow batches of a COPY) that
grow with the work. The idle worker process itself is not reserved: Ray counts a node's
memory after its own processes, and pond's warm workers are long-lived.
"""

from __future__ import annotations

TASK_OVERHEAD_BYTES = 64 << 20


def reserved_bytes(memory_limit_bytes: int) -> int:
    """The memory a task with this DuckDB limit reserves; 0 (no limit) reserves nothing."""
    if memory_limit_bytes <= 0:
        return 0
    return memory_limit_bytes + TASK_OVERHEAD_BYTES + memory_limit_bytes // 8
