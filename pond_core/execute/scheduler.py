"""Run a plan's stages as a DAG: each stage starts as soon as the stages it reads are committed.

Independent stages (the two sides of a join, say) run at the same time; their partition tasks
share the executor. On one failure no new stage starts, running ones finish, and the first
error is raised.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from typing import Any, Callable

from pond_core.plan.physical import PhysicalPlan, Stage


def run_dag(
    plan: PhysicalPlan, run_one: Callable[[Stage], dict[str, Any]], max_parallel: int = 2, stop: threading.Event | None = None
) -> dict[str, dict[str, Any]]:
    """Run every stage with `run_one`; return results by stage name, in plan order.

    Stages run on worker threads, so Ctrl-C reaches only this (main) thread: it sets `stop`,
    which running stages watch, and waits for them to stop their tasks before re-raising."""
    results: dict[str, dict[str, Any]] = {}
    pending = list(plan.stages)
    done_ids: set[str] = set()
    error: BaseException | None = None
    with cf.ThreadPoolExecutor(max_workers=max(1, max_parallel), thread_name_prefix="pond-stage") as pool:
        running: dict[cf.Future, Stage] = {}
        try:
            while pending or running:
                if error is None:
                    for stage in [s for s in pending if set(s.depends_on) <= done_ids][: max_parallel - len(running)]:
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
    return {s.name: results[s.name] for s in plan.stages}
