"""RunContext: everything a stage run needs besides the plan — where, on what, with which
limits, and who hears about it.

`StageEvents` is how a stage run reports to the world (the catalog, in practice) without
knowing it: started, failed, finished. `TaskLimits` are the settings that size tasks;
`size_tasks` turns them, the executor and the number of tasks into threads and memory.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Protocol

from pond_core.execute.attempts import AttemptPolicy, Speculation
from pond_core.execute.executors import Executor
from pond_core.execute.results import AttemptCounters, StageManifest
from pond_core.execute.task_memory import budget_of, limit_within
from pond_core.io.options import StorageOptions
from pond_core.layout import RunLayout
from pond_core.plan.physical import Stage

Progress = Callable[[Stage, int, int], None]  # (stage, partitions done, partitions in all)
MIN_TASK_MEMORY = 64 << 20


class StageEvents(Protocol):
    """What a stage run reports, in this order: started, then failed or finished."""

    def stage_started(self, stage: Stage, npartitions: int) -> None: ...

    def stage_failed(self, stage: Stage, error: BaseException, seconds: float, counters: AttemptCounters) -> None: ...

    def stage_finished(self, stage: Stage, manifest: StageManifest) -> None: ...


class NoEvents:
    """Nobody listens (a session's own DataFrame actions are not recorded)."""

    def stage_started(self, stage: Stage, npartitions: int) -> None:
        pass

    def stage_failed(self, stage: Stage, error: BaseException, seconds: float, counters: AttemptCounters) -> None:
        pass

    def stage_finished(self, stage: Stage, manifest: StageManifest) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class TaskLimits:
    """The settings that size a stage's tasks (see pond_core.settings for each)."""

    max_retries: int = 2
    memory_limit: int | None = None  # bytes per task; default: a share of the executor's memory
    max_task_memory: int | None = None  # bound for retries with more memory; default: the largest node's
    speculation: bool | None = None  # default: on where running tasks can be stopped (Ray)
    task_threads: int | None = None
    parallelism: int | None = None  # producers for source splits; default: executor cores

    def for_stage(self, stage: Stage) -> TaskLimits:
        """These limits with the stage's own threads and memory (smallpond's per-node limits)."""
        if stage.task_threads is None and stage.task_memory is None:
            return self
        return dataclasses.replace(
            self, task_threads=stage.task_threads or self.task_threads, memory_limit=stage.task_memory or self.memory_limit,
        )


@dataclasses.dataclass(frozen=True)
class TaskSizing:
    threads: int
    policy: AttemptPolicy


def size_tasks(limits: TaskLimits, executor: Executor, ntasks: int) -> TaskSizing:
    """Threads per task, and the memory of first attempts, retries and speculation.

    Memory is sized by what a task really uses, its limit plus what DuckDB allocates outside
    it (`reserved_bytes`, measured): by default the tasks that can run at once share the
    executor's memory that way, and the stage admits no more running attempts than the memory
    holds (`memory_budget`), whatever limit was set."""
    cores = executor.cores()
    concurrent = max(1, min(ntasks, cores))
    # Few tasks get more threads each, but never more than one node has: a task runs on one node.
    threads = min(limits.task_threads or max(1, cores // concurrent), executor.max_task_cores())
    max_memory = limits.max_task_memory or executor.max_task_memory()
    memory = executor.memory_bytes()
    # The tasks that can run at once share the memory, each reserving its limit's real bound; a
    # retry can double the limit (and then waits until its reservation fits).
    at_once = max(1, min(ntasks, cores // threads))
    first = min(limits.memory_limit or limit_within(int(memory * 0.8) // at_once), max_memory)
    speculation = executor.stops_running_tasks if limits.speculation is None else limits.speculation
    policy = AttemptPolicy(
        max_retries=limits.max_retries,
        first_memory=max(first, MIN_TASK_MEMORY),
        max_memory=max(max_memory, MIN_TASK_MEMORY),
        speculation=Speculation() if speculation else None,
        memory_budget=budget_of(executor, memory),
    )
    return TaskSizing(threads, policy)


@dataclasses.dataclass(frozen=True)
class RunContext:
    run_id: str
    layout: RunLayout
    executor: Executor
    storage: StorageOptions = dataclasses.field(repr=False)
    limits: TaskLimits = TaskLimits()
    events: StageEvents = dataclasses.field(default_factory=NoEvents)
    progress: Progress | None = None
    stop: threading.Event | None = None  # set when the run is interrupted: stages stop their tasks
