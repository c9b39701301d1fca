"""Small tasks run in batches: several partition tasks per worker call on Ray.

A Ray call costs the driver and the cluster a few milliseconds whatever the task does (the
call's own messages, pickling the spec, the result coming back): for a stage of 1,000 tiny
partitions that was most of its time (issue 27: ~8.5 ms per task on a warm cluster). So a
stage whose partitions are small, judged from what the plan knows before anything runs (the
bytes of the files, or the rows of the row ranges, each partition reads), hands its warm
workers several tasks per call. Each task keeps its own spec, attempt, output path, hooks and
result: a batch is only how tasks travel, never a unit of work. The worker runs them one after
another and answers each as it ends (a Ray streaming generator), so the driver commits them
while the rest run.

What stays per task: a task that fails is answered with its own error and retried alone (its
batch goes on); a stopped batch (cancelled, its worker lost) fails its unanswered tasks with
`PondBatchInterruptedError`, which the stage runs again as new attempts without counting it as
their failure; a batch holds one task's memory and threads (its tasks never run at once).
Retries and speculative copies always run alone; a batched task straggles by the time since
its batch got to it (not since the batch was sent), and its copy runs alone.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from collections.abc import Callable, Sequence

from pond_core.errors import PondInternalError, PondTransientError
from pond_core.execute.results import TaskResult

# A partition is small when it reads at most this much (compressed Parquet, as stored): DuckDB
# runs such a task in milliseconds, so a worker call would cost more than the task.
SMALL_TASK_BYTES = 4 << 20
MAX_BATCH = 64  # tasks per call, at most: a stopped batch re-runs at most this many
WAVES = 4  # at least this many calls per worker slot, so batches still balance across workers


class PondBatchInterruptedError(PondTransientError):
    """The task's batch stopped before the task ran to its end (the worker was stopped to cancel
    another task of the batch, or died running an earlier one): not the task's failure, so it
    runs again as a new attempt without using up its retries."""


@dataclasses.dataclass(frozen=True)
class TaskOutcome:
    """What a worker answers for one task of a batch: its result, or the error it failed with."""

    result: TaskResult | None
    error: BaseException | None = None


def portable_error(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling back to the driver, else a PondInternalError naming it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return PondInternalError(f"{type(exc).__name__}: {exc}")


def groups(partitions: Sequence[int], small: Callable[[int], bool], slots: int) -> list[list[int]]:
    """`partitions` in calls, order kept: runs of small ones batched, each other one alone.

    A batch has up to MAX_BATCH tasks, and at most the small tasks' share that leaves every
    worker slot WAVES calls (so one slow batch does not hold the stage's tail)."""
    flags = [small(k) for k in partitions]
    nsmall = sum(flags)
    size = max(1, min(MAX_BATCH, math.ceil(nsmall / (max(1, slots) * WAVES)))) if nsmall else 1
    out: list[list[int]] = []
    current: list[int] = []
    for k, is_small in zip(partitions, flags):
        if not is_small:
            out.append([k])
            continue
        current.append(k)
        if len(current) == size:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out
