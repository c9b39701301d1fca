"""Where this process's pond time went, by phase: the per-phase profile the benchmarks print.

Pond's own fixed and per-task costs (issue 25) hide inside one job's wall time; summed per
phase they show which one a regression is in. Each phase is timed where it happens (a
perf_counter pair, nothing when no one asks) and the seconds add up per process, across
sessions and threads, until `reset()`. Phases nest (a stage's `tasks` run inside a session's
`run`), so they are not to be summed.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import time
from collections.abc import Iterator


class Phase(enum.Enum):
    PLAN = "plan"  # compiling a logical plan into stages
    CATALOG = "catalog"  # opening the catalog (its imports, its schema check)
    LIST = "list"  # a stage listing its sources and reading their footers (row counts)
    TASKS = "tasks"  # a stage's partition tasks, first started to last committed
    COMMIT = "commit"  # a stage's sink commit, manifest and sweep after its tasks
    READ_BACK = "read-back"  # reading a result's files into Python or Arrow


_lock = threading.Lock()
_seconds: dict[Phase, float] = {}


@contextlib.contextmanager
def timed(phase: Phase) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        with _lock:
            _seconds[phase] = _seconds.get(phase, 0.0) + elapsed


def seconds() -> dict[str, float]:
    """Seconds spent in each phase since the process started (or `reset()`), by phase name."""
    with _lock:
        return {p.value: round(_seconds.get(p, 0.0), 4) for p in Phase}


def reset() -> None:
    with _lock:
        _seconds.clear()
