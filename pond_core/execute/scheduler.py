"""Run stages as a DAG: each starts as soon as the stages it reads are committed.

Independent stages (the two sides of a join, say) run at the same time; their partition tasks
share the executor. On one failure no new stage starts, running ones finish, and the first
error is raised. A dependency outside the stages given counts as committed already (an
orchestrator runs one stage per task, after its upstream tasks).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from pond_core.plan.physical import Stage

R = TypeVar("R")


def run_dag(
    stages: Sequence[Stage], run_one: Callable[[Stage], R], max_parallel: int = 2, stop: threading.Event | None = None
) -> dict[str, R]:
    """Run every stage with `run_one`; return results by stage name, in the order given.

    Stages run on worker threads, so Ctrl-C reaches only this (main) thread: it sets `stop`,
    which running stages watch, and waits for them to stop their tasks before re-raising."""
    results: dict[str, R] = {}
    pending = list(stages)
    selected = {s.id for s in stages}
    done_ids: set[str] = set()
    error: BaseException | None = None
    with cf.ThreadPoolExecutor(max_workers=max(1, max_parallel), thread_name_prefix="pond-stage") as pool:
        running: dict[cf.Future[R], Stage] = {}
        try:
            while pending or running:
                if error is None:
                    ready = [s for s in pending if all(d in done_ids or d not in selected for d in s.depends_on)]
                    for stage in ready[: max_parallel - len(running)]:
                        pending.remove(stage)
                        running[pool.submit(run_one, stage)] = stage
                if not running:
                    break
                finished, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    stage = running.pop(future)
                    try:
                        results[stage.name] = future.result()
                        done_ids.add(stage.id)
                    except BaseException as exc:  # keep the first failure, let the others finish
                        error = error or exc
        except BaseException:
            if stop is not None:
                stop.set()
            raise
    if error is not None:
        raise error
    return {s.name: results[s.name] for s in stages}
