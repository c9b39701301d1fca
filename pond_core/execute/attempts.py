"""Run a stage's partition tasks until each partition has exactly one committed attempt.

What happens to a failed attempt depends on why it failed:

- data, SQL, input and configuration errors fail the stage at once (and stop its other tasks);
- a task lost with its node (`PondNodeLostError`) runs again elsewhere. A lost machine is not
  the task's fault, so this does not use up `max_retries` (bounded by `MAX_NODE_LOSSES`);
- a task that ran out of memory (`PondOutOfMemoryError`) runs again with twice the memory, up
  to `max_task_memory`; when an attempt that already had that much fails too, the stage fails
  with a `PondResourceError` listing the memory of every attempt;
- any other transient error is retried up to `max_retries` times;
- a task whose batch stopped before it ran (`PondBatchInterruptedError`) runs again, uncounted.

Batches (execute/batches.py): on an executor that takes several tasks per call (Ray's warm
workers), first attempts of small partitions (`TaskFactory.small`) are submitted in batches that
hold one reservation; retries and speculative copies always run alone.

Admission: running attempts reserve, from their executor's `MemoryBudget`, what
`reserved_bytes` of their memory limit says a task really uses (execute/task_memory.py). An
attempt that does not fit waits until others finish (a stage with nothing running always starts
one, even a retry with the most memory a task may have), so pond's own tasks never overcommit
the memory they were sized for; a speculative copy that does not fit is not started.

Speculation (executors that can stop a running task, i.e. Ray): once `quantile` of a stage's
tasks have finished, a task running longer than `multiplier` × their median time (and at least
`min_seconds`) gets one copy, on another node than the one the straggler said it runs on
(a task still running after `min_seconds / 2` writes a running record). Whichever attempt
finishes first is committed; the other is cancelled and its output, written under its own
attempt-scoped name, is never referenced.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import logging
import queue
import statistics
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from pond_core.errors import (
    PondError,
    PondInternalError,
    PondInterruptedError,
    PondNodeLostError,
    PondOutOfMemoryError,
    PondResourceError,
    is_retryable,
)
from pond_core.execute import batches
from pond_core.execute.batches import PondBatchInterruptedError
from pond_core.execute.executors import Executor
from pond_core.execute.results import Attempt, AttemptCounters, CommittedPartition, TaskResult
from pond_core.execute.task_memory import MemoryBudget, reserved_bytes
from pond_core.execute.task_spec import TaskSpec

log = logging.getLogger("pond.stage")

MAX_NODE_LOSSES = 5  # per partition: a task that kills every node it runs on is not "unlucky"
MAX_INTERRUPTIONS = 5  # per partition: batches stopped under it before it ran (then they count as failures)
POLL_SECONDS = 0.5  # how often stragglers are looked for, and Ctrl-C noticed, while tasks run


@dataclasses.dataclass(frozen=True)
class Speculation:
    quantile: float = 0.75
    multiplier: float = 2.0
    min_seconds: float = 5.0


@dataclasses.dataclass(frozen=True)
class AttemptPolicy:
    max_retries: int
    first_memory: int  # bytes for a partition's first attempt
    max_memory: int  # bytes no attempt may exceed
    speculation: Speculation | None
    memory_budget: MemoryBudget | None = None  # what running attempts reserve from; None: unbounded


@dataclasses.dataclass
class _AttemptEntry:
    """One attempt while it runs (mutable until it settles)."""

    attempt: int
    memory: int
    speculative: bool
    submitted: float
    avoided_node: str | None = None
    batched: bool = False  # ran in a batch: its time counts from when its batch got to it
    outcome: str | None = None
    error: str | None = None
    host: str | None = None
    node: str | None = None
    seconds: float | None = None

    def record(self) -> Attempt:
        return Attempt(
            self.attempt, self.memory, self.speculative, self.outcome, self.error, self.host, self.node, self.seconds, self.avoided_node
        )


@dataclasses.dataclass
class _Partition:
    """The attempts of one partition so far."""

    index: int
    memory: int
    launched: int = 0
    retries: int = 0
    failures: int = 0  # other transient failures, against max_retries
    node_failures: int = 0
    memory_retries: int = 0
    speculative: int = 0
    interruptions: int = 0
    history: list[_AttemptEntry] = dataclasses.field(default_factory=list)
    running: dict[cf.Future, _AttemptEntry] = dataclasses.field(default_factory=dict)
    done: bool = False

    def committed(self, result: TaskResult) -> CommittedPartition:
        return CommittedPartition(
            partition=self.index, attempt=result.attempt, files=result.files, schema=result.schema, seconds=result.seconds,
            retries=self.retries, node_failures=self.node_failures, memory_retries=self.memory_retries,
            speculative_attempts=self.speculative, history=tuple(h.record() for h in self.history),
            host=result.host, pid=result.pid, node=result.node, threads=result.threads,
        )


class TaskFactory(Protocol):
    """Makes the attempts of a stage's partition tasks, and says where one runs."""

    def task(self, partition: int, attempt: int, memory: int) -> TaskSpec:
        """The spec of `attempt` (1, 2, ...) of `partition`, with `memory` bytes."""

    def running_node(self, partition: int, attempt: int) -> str | None:
        """The node a running attempt said it runs on, or None if it has not said (yet)."""

    def small(self, partition: int) -> bool:
        """Whether the partition's task is small enough to share a worker call (batches.py)."""


@runtime_checkable
class BatchExecutor(Protocol):
    """An executor that can run several small tasks per call, answering each separately."""

    batches_tasks: bool  # whether it does now (Ray: on warm workers)

    def submit_batch(self, specs: list[TaskSpec]) -> list[cf.Future]:
        """Start the tasks as one call (run one after another); one future per task."""

    def running_since(self, future: cf.Future) -> float | None:
        """When a task of a batch started running (None: it waits behind another)."""


class _Hold:
    """One reservation, held by the attempts of a call (a batch runs its tasks one by one)."""

    def __init__(self, nbytes: int, count: int) -> None:
        self.nbytes, self.count = nbytes, count


OnCommit = Callable[[CommittedPartition], None]


class StageAttempts:
    def __init__(
        self, stage_name: str, executor: Executor, policy: AttemptPolicy, tasks: TaskFactory, on_commit: OnCommit,
        stop: threading.Event | None = None,
    ) -> None:
        self.stage_name = stage_name
        self.executor = executor
        self.policy = policy
        self.tasks = tasks
        self.on_commit = on_commit
        self.stop = stop
        self.speculation = policy.speculation if executor.stops_running_tasks else None
        self._parts: list[_Partition] = []
        self._owner: dict[cf.Future, _Partition] = {}
        self._finished: queue.SimpleQueue[cf.Future] = queue.SimpleQueue()  # O(1) per task, unlike cf.wait
        self._losers: list[cf.Future] = []
        self._spill_dirs: dict[cf.Future, str] = {}
        self._killed: list[str] = []  # spill directories of attempts whose process was killed
        self._durations: list[float] = []
        self._drained_at: float | None = None
        self._waiting: collections.deque[list[_Partition]] = collections.deque()  # calls admitted in order
        self._reserved: dict[cf.Future, _Hold] = {}  # what each running attempt's call reserves
        self._batching = isinstance(executor, BatchExecutor) and executor.batches_tasks
        self._cores = 1

    def run(self, todo: list[int]) -> None:
        """Run `todo` to one committed attempt each, or raise the error that ends the stage."""
        parts = self._parts = [_Partition(k, self.policy.first_memory) for k in todo]
        by_index = {p.index: p for p in parts}
        self._cores = self.executor.cores()  # asked once: on Ray each ask is a request to the cluster
        calls = batches.groups(todo, self.tasks.small, self._cores) if self._batching else [[k] for k in todo]
        for call in calls:
            self._launch([by_index[k] for k in call])
        looked = time.monotonic()
        try:
            while self._owner:
                try:
                    # Never block without a timeout: a signal handler (Ctrl-C) runs only once
                    # the wait returns to Python.
                    self._settle(self._finished.get(timeout=POLL_SECONDS))
                except queue.Empty:
                    self._admit_waiting()  # another stage on this executor may have freed memory
                if self.stop is not None and self.stop.is_set():
                    raise PondInterruptedError(f"stage {self.stage_name} stopped: the run was interrupted")
                if self.speculation and time.monotonic() - looked >= POLL_SECONDS:
                    self._speculate(parts)
                    looked = time.monotonic()
        except BaseException:
            self._stop(list(self._owner))
            raise
        finally:
            # Cancelled losers must be gone before the stage commits and sweeps their files.
            cf.wait(self._losers, timeout=30)
            self._remove_killed_spill()
            for future in list(self._reserved):  # a stage that ended early holds no memory
                self._release(future)

    def counters(self) -> AttemptCounters:
        """Retries, lost nodes and speculative copies of every partition so far (for a stage
        that failed: a committed stage sums its partition records instead)."""
        parts = self._parts
        return AttemptCounters(
            task_retries=sum(p.retries for p in parts),
            node_failures=sum(p.node_failures for p in parts),
            memory_retries=sum(p.memory_retries for p in parts),
            speculative_attempts=sum(p.speculative for p in parts),
        )

    def _reserve(self, memory: int) -> int | None:
        """Reserve what an attempt with `memory` needs; the bytes reserved, or None: no room."""
        budget = self.policy.memory_budget
        if budget is None:
            return 0
        nbytes = reserved_bytes(memory)
        return nbytes if budget.try_reserve(nbytes, alone=not self._owner) else None

    def _release(self, future: cf.Future) -> None:
        hold = self._reserved.pop(future, None)
        if hold is None:
            return
        hold.count -= 1
        if hold.count == 0 and hold.nbytes and self.policy.memory_budget is not None:
            self.policy.memory_budget.release(hold.nbytes)

    def _launch(self, call: list[_Partition]) -> None:
        """Start the next attempt of the call's partitions now, or once its memory fits."""
        reserved = None if self._waiting else self._reserve(max(p.memory for p in call))
        if reserved is None:
            self._waiting.append(call)  # after those already waiting: first come, first run
            return
        self._start(call, None, False, reserved)

    def _start(self, call: list[_Partition], avoid_node: str | None, speculative: bool, reserved: int) -> None:
        specs = []
        for part in call:
            part.launched += 1
            spec = self.tasks.task(part.index, part.launched, part.memory)
            if self.speculation:
                spec = dataclasses.replace(spec, report_running_after=self.speculation.min_seconds / 2, avoid_node=avoid_node)
            specs.append(spec)
        if len(specs) > 1:
            assert isinstance(self.executor, BatchExecutor)
            futures = self.executor.submit_batch(specs)
        else:
            futures = [self.executor.submit(specs[0])]
        hold = _Hold(reserved, len(futures))
        now = time.time()
        for part, spec, future in zip(call, specs, futures):
            future.add_done_callback(self._finished.put)
            self._spill_dirs[future] = spec.spill_dir
            self._reserved[future] = hold
            entry = _AttemptEntry(part.launched, part.memory, speculative, now, avoid_node, batched=len(call) > 1)
            part.running[future] = entry
            part.history.append(entry)
            self._owner[future] = part

    def _settle(self, future: cf.Future) -> None:
        self._settle_one(future)  # when it raises, the stage ends: nothing more is admitted
        self._admit_waiting()

    def _admit_waiting(self) -> None:
        while self._waiting:
            call = [p for p in self._waiting[0] if not p.done]
            if not call:
                self._waiting.popleft()
                continue
            reserved = self._reserve(max(p.memory for p in call))
            if reserved is None:
                return
            self._waiting.popleft()
            self._start(call, None, False, reserved)

    def _settle_one(self, future: cf.Future) -> None:
        self._release(future)
        part = self._owner.pop(future)
        entry = part.running.pop(future)
        spill_dir = self._spill_dirs.pop(future)
        try:
            result: TaskResult = future.result()
        except (Exception, cf.CancelledError) as exc:
            entry.error = f"{type(exc).__name__}: {_short(exc)}"
            if isinstance(exc, (PondNodeLostError, PondOutOfMemoryError)):
                self._killed.append(spill_dir)  # its process may have died before its cleanup ran
            if part.done or part.running:  # the partition's other attempt decides
                return
            self._retry_or_raise(part, exc)
            return
        entry.host, entry.node, entry.seconds = result.host, result.node, round(result.seconds, 3)
        if part.done:
            entry.outcome = "discarded"  # the other attempt committed first
            return
        entry.outcome = "committed"
        part.done = True
        self._durations.append(result.seconds)
        log.debug(
            "stage %s partition %d committed: %d rows, %d bytes in %d files, %.3f s (attempt %d, %s)", self.stage_name, part.index,
            result.rows, result.bytes, len(result.files), result.seconds, entry.attempt, result.node or result.host,
        )
        losers = list(part.running)
        for loser in losers:
            part.running[loser].outcome = "cancelled"
        self._stop(losers)
        self.on_commit(part.committed(result))

    def _retry_or_raise(self, part: _Partition, exc: BaseException) -> None:
        where = f"stage {self.stage_name} partition {part.index}"
        if isinstance(exc, PondBatchInterruptedError) and part.interruptions < MAX_INTERRUPTIONS:
            part.interruptions += 1  # it never ran (or was stopped for another task): not its failure
            log.info("%s: %s; running it again", where, _short(exc))
            self._launch([part])
            return
        if isinstance(exc, PondNodeLostError) and part.node_failures < MAX_NODE_LOSSES:
            part.node_failures += 1
        elif isinstance(exc, PondOutOfMemoryError):
            if part.memory >= self.policy.max_memory:
                raise PondResourceError(self._out_of_memory_message(part, exc)) from exc
            part.memory = min(part.memory * 2, self.policy.max_memory)
            part.memory_retries += 1
        elif is_retryable(exc) and part.failures < self.policy.max_retries:
            part.failures += 1
        else:
            raise _located(exc, where) from exc
        part.retries += 1
        log.warning("%s attempt %d failed, retrying with %s: %s", where, part.launched, _size(part.memory), _short(exc))
        self._launch([part])

    def _out_of_memory_message(self, part: _Partition, exc: BaseException) -> str:
        tried = ", ".join(_size(h.memory) for h in part.history if not h.speculative)
        return (
            f"stage {self.stage_name} partition {part.index} ran out of memory on every attempt "
            f"({part.launched} attempts with {tried}); {_size(self.policy.max_memory)} is the most a task may have "
            f"(max_task_memory: the largest node's memory unless set). Give tasks more memory or split the work "
            f"into more partitions. Last error: {_short(exc)}"
        )

    def _speculate(self, parts: list[_Partition]) -> None:
        policy = self.speculation
        assert policy is not None
        now = time.time()
        cores = self._cores
        if self._drained_at is None:
            if self._calls_running() > cores or self._waiting:
                return  # tasks still wait for a slot: waiting is not straggling
            self._drained_at = now
        if not self._durations or len(self._durations) < policy.quantile * len(parts) or self._calls_running() >= cores:
            return
        threshold = max(policy.multiplier * statistics.median(self._durations), policy.min_seconds)
        for part in parts:
            if part.done or part.speculative or len(part.running) != 1:
                continue
            ((future, entry),) = part.running.items()
            since = entry.submitted
            if entry.batched:  # its time in the batch is its own only once it runs
                assert isinstance(self.executor, BatchExecutor)
                started = self.executor.running_since(future)
                if started is None:
                    continue
                since = started
            if now - max(since, self._drained_at) > threshold:
                reserved = self._reserve(part.memory)
                if reserved is None:
                    return  # no memory for a copy now
                node = self._node_running(part, entry.attempt)
                log.warning(
                    "stage %s partition %d is a straggler (> %.1f s): starting a speculative copy%s",
                    self.stage_name, part.index, threshold, f" away from node {node}" if node else "",
                )
                part.speculative += 1
                self._start([part], node, True, reserved)
                if self._calls_running() >= cores:
                    return

    def _calls_running(self) -> int:
        """Executor calls in flight (a batch of tasks is one)."""
        return len({id(hold) for hold in self._reserved.values()})

    def _remove_killed_spill(self) -> None:
        if not self._killed:
            return
        try:
            self.executor.remove_dirs(self._killed)
        except Exception as exc:  # leftovers on a local disk must not hide how the stage ended
            log.warning("stage %s: could not remove the spill directories of killed attempts: %s", self.stage_name, exc)

    def _node_running(self, part: _Partition, attempt: int) -> str | None:
        try:
            return self.tasks.running_node(part.index, attempt)
        except Exception as exc:  # only a placement hint: a copy can still run anywhere
            log.warning("stage %s partition %d: cannot read where attempt %d runs: %s", self.stage_name, part.index, attempt, exc)
            return None

    def _stop(self, futures: list[cf.Future]) -> None:
        if futures:
            self.executor.cancel(futures)
            self._losers.extend(futures)
            if self.executor.stops_running_tasks:  # a stopped task's process is killed mid-task
                self._killed.extend(self._spill_dirs[f] for f in futures if f in self._spill_dirs)


def _located(exc: BaseException, where: str) -> BaseException:
    """The error that ends the stage, naming the stage and partition."""
    if not isinstance(exc, PondError):
        return PondInternalError(f"{where}: {type(exc).__name__}: {exc}")
    if where in str(exc):
        return exc
    return type(exc)(f"{where}: {exc}")


def _short(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"
