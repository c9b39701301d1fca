"""What a task really uses for a DuckDB memory limit: the bound pond reserves on Ray and admits
tasks by (execute/attempts.py), so pond's own tasks never overcommit the memory they run in.

`memory_limit` bounds DuckDB's buffer manager only. bench/task_memory.py measures a task's peak
RSS against its limit over query shapes (group-by with wide VARCHAR min/max, join, sort,
window, distinct) at 100 MB – 2 GB limits (figures in bench/README.md, the bound per shape in
docs/security.md). Beyond the worker's idle footprint (the Python runtime with DuckDB and
pyarrow loaded, ~87 MiB, there whether a task runs or not), joins, sorts, windows and DISTINCT
used at most their limit + 50 MiB; a group-by keeping wide strings per group holds them outside
the buffer manager and used up to 2.3 x its limit (5.5 x with far more groups than the limit
holds: that case is bounded by its data, see docs/security.md). So a task reserves
`limit * 5 / 2 + TASK_OVERHEAD_BYTES`. The idle worker process itself is not reserved: Ray
counts a node's memory after its own processes, pond's warm workers are long-lived, and a local
run's tasks share the driver's process.
"""

from __future__ import annotations

import threading
import weakref

# Measured (bench/README.md "Task memory against its limit"), checked by tests/test_task_memory.py.
RATIO_NUM, RATIO_DEN = 5, 2  # a task reserves 2.5 x its limit ...
TASK_OVERHEAD_BYTES = 64 << 20  # ... plus this: the fixed part (Arrow batches of a COPY, Python objects)


def reserved_bytes(memory_limit_bytes: int) -> int:
    """The memory a task with this DuckDB limit reserves; 0 (no limit) reserves nothing."""
    if memory_limit_bytes <= 0:
        return 0
    return memory_limit_bytes * RATIO_NUM // RATIO_DEN + TASK_OVERHEAD_BYTES


def limit_within(budget_bytes: int) -> int:
    """The largest DuckDB limit whose reservation fits `budget_bytes` (0 when none does)."""
    room = budget_bytes - TASK_OVERHEAD_BYTES
    if room <= 0:
        return 0
    limit = room * RATIO_DEN // RATIO_NUM
    while limit > 0 and reserved_bytes(limit) > budget_bytes:  # integer rounding
        limit -= 1
    return limit


class MemoryBudget:
    """The bytes running tasks reserve, shared by every stage that runs on one executor (stages
    of a run run at once, and a session's actions may too): a task starts only when its
    reservation fits what the others hold, or when its stage has nothing running (so every
    stage progresses, and a task larger than the budget runs alone in its stage)."""

    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        with self._lock:
            return self._used

    def try_reserve(self, nbytes: int, *, alone: bool) -> bool:
        with self._lock:
            if alone or self._used + nbytes <= self.total:
                self._used += nbytes
                return True
            return False

    def release(self, nbytes: int) -> None:
        with self._lock:
            self._used -= nbytes


_BUDGETS: weakref.WeakKeyDictionary[object, MemoryBudget] = weakref.WeakKeyDictionary()
_BUDGETS_LOCK = threading.Lock()


def budget_of(executor: object, total_bytes: int) -> MemoryBudget:
    """The one budget of `executor`, made with `total_bytes` (its memory when first asked)."""
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(executor)
        if budget is None:
            budget = _BUDGETS[executor] = MemoryBudget(total_bytes)
        return budget
