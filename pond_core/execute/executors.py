"""Executors: where partition tasks run. Both hand back `concurrent.futures.Future`s.

- `LocalExecutor` runs tasks on threads of this process. DuckDB releases the GIL, so tasks run
  truly in parallel, and a task costs a thread hand-off rather than a process start: the default
  on one machine (see bench/README.md for the measurement behind that choice).
- `RayExecutor` (execute/ray_executor.py) runs tasks on a local Ray (started on demand) or the
  cluster at an address, on warm pond workers or as plain Ray tasks.

Both take `task_hooks`: callables `hook(spec) -> context manager` entered around every task where
it runs (a thread here, or a Ray worker), e.g. an orchestrator shipping the task's log records
to its own API. A hook must pickle (a module-level function, or a partial of one over plain
data). `cancel_all()` stops every task the executor still has outstanding, so an orchestrator
that cancels a run stops its work too.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pond_core.execute.results import TaskResult
from pond_core.execute.task import run_task
from pond_core.execute.task_db import TaskDatabase
from pond_core.execute.task_spec import TaskSpec

TaskHook = Callable[[TaskSpec], contextlib.AbstractContextManager[Any]]



class Executor(Protocol):
    name: str
    stops_running_tasks: bool  # cancel() stops a task that already runs (needed for speculation)

    def cores(self) -> int:
        """CPU cores available to tasks in total."""

    def memory_bytes(self) -> int:
        """Memory available to tasks in total."""

    def max_task_memory(self) -> int:
        """The most memory one task can be given: what the largest machine has."""

    def max_task_cores(self) -> int:
        """The most CPU cores one task can be given: what the largest machine has."""

    def machines(self) -> int:
        """How many machines run tasks (1: everything stays in one machine's memory and disk)."""

    def submit(self, spec: TaskSpec) -> cf.Future:
        """Start one task; the future's result is its TaskResult."""

    def cancel(self, futures: list[cf.Future]) -> None:
        """Stop tasks that have not finished (best effort)."""

    def cancel_all(self) -> None:
        """Stop every task submitted here that has not finished (best effort)."""

    def remove_dirs(self, paths: list[str]) -> None:
        """Remove these local directories on every machine that runs tasks (best effort): the
        spill directories of tasks whose process was killed before it could remove its own."""

    def shutdown(self) -> None:
        """Release workers; idempotent."""


class LocalExecutor:
    name = "local"
    stops_running_tasks = False

    def __init__(self, num_workers: int | None = None, task_hooks: Sequence[TaskHook] = ()) -> None:
        self._cores = num_workers or os.cpu_count() or 1
        self._pool = cf.ThreadPoolExecutor(max_workers=self._cores, thread_name_prefix="pond-task")
        self.task_hooks: list[TaskHook] = list(task_hooks)
        self._outstanding = _Outstanding()

    def cores(self) -> int:
        return self._cores

    def memory_bytes(self) -> int:
        return available_memory()

    def max_task_memory(self) -> int:
        return available_memory()

    def max_task_cores(self) -> int:
        return self._cores

    def machines(self) -> int:
        return 1

    def submit(self, spec: TaskSpec) -> cf.Future:
        return self._outstanding.track(self._pool.submit(run_hooked, spec, tuple(self.task_hooks)), None)

    def cancel(self, futures: list[cf.Future]) -> None:
        for f in futures:
            f.cancel()

    def cancel_all(self) -> None:
        # A task already running on a thread finishes; only queued ones are stopped.
        self.cancel([f for f, _ in self._outstanding.items()])

    def remove_dirs(self, paths: list[str]) -> None:
        _remove_dirs(paths)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def run_hooked(spec: TaskSpec, hooks: Sequence[TaskHook] = (), database: TaskDatabase | None = None) -> TaskResult:
    """Run one task inside its hooks' contexts."""
    with contextlib.ExitStack() as stack:
        for hook in hooks:
            stack.enter_context(hook(spec))
        return run_task(spec, database)


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable on Linux: no import cost), else psutil's."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return psutil.virtual_memory().available


def _remove_dirs(paths: list[str]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


class _Outstanding:
    """Futures not finished yet (and what cancels each), forgotten as they finish."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[cf.Future, Any] = {}

    def track(self, future: cf.Future, handle: Any) -> cf.Future:
        with self._lock:
            self._items[future] = handle
        future.add_done_callback(self.pop)
        return future

    def pop(self, future: cf.Future) -> Any:
        with self._lock:
            return self._items.pop(future, None)

    def items(self) -> list[tuple[cf.Future, Any]]:
        with self._lock:
            return list(self._items.items())
