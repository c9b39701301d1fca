"""Service mode: each stage's task run submits the stage to the pond service and awaits it.

When the `PondConfig` names a `service_url`, no stage runs in the flow process and nothing here
needs Ray: a stage's task run sends the compiled plan, the pond run id and the stage to the pond
service on the cluster (`api.AsyncServiceClient`), which runs it through pond's ordinary runner
on its warm workers. The task run stays what it is in-process: named after the stage, wired to
its upstream stages, retried on transient failures, cached, with its artifacts, assets and
checks.

Waiting holds no thread. The stage bodies are async, and `run_on_service` drives every stage
task of the pipeline on one event loop (the flow's own thread, or one helper thread when the
caller already runs a loop): a stage waiting on the cluster is an `await` between two status
polls, so fifty waiting stages cost one thread, not fifty. (Prefect's thread pool task runner
would run each async task in a pool thread of its own, `asyncio.run` per task.)

Each poll brings the stage's new log lines, which go to the task run's logger: the flow-run log
shows them as they happen. Cancelling the flow run cancels the stage on the service, by whichever
way the cancel arrives: the flow run's `CancelGuard` watcher sees the Cancelling state (any flow
run, also one called in-process); the runner's or worker's termination signal cancels the event
loop's tasks, and each stage cancels its attempt on the service before it ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.states import Cancelled, Failed, State

from pond_core import api
from pond_core.api import PhysicalPlan, Stage
from pond_prefect.artifacts import Progress, acreate_checks_artifact, acreate_stage_artifact
from pond_prefect.assets import add_partitions_to_current_task
from pond_prefect.blocks import PondConfig, ServiceTarget
from pond_prefect.cancel import CancelGuard
from pond_prefect.stages import stage_task

log = logging.getLogger("pond_prefect")

POLL_SECONDS = 0.2
CANCEL_TIMEOUT = 10.0


class PondServiceStageError(api.PondError):
    """A stage failed on the pond service with an error a retry cannot cure (bad SQL, a data
    error, a missing input): the service's error type and message, naming the stage."""


@dataclasses.dataclass(frozen=True)
class ServiceStageCancel:
    """A stage's attempt on the service, as the flow run's CancelGuard cancels it (a thread)."""

    target: ServiceTarget
    run_id: str
    stage_id: str

    def cancel_all(self) -> None:
        with self.target.client() as client:
            client.cancel(self.run_id, self.stage_id)


@dataclasses.dataclass(frozen=True)
class StageRun:
    """What `run_on_service` hands `outcomes.settle`: a stage task run's final (or NotReady) state."""

    state: State
    task_run_id: UUID | None


async def run_service_stage(
    plan_json: str,
    stage_id: str,
    run_id: str,
    config: PondConfig,
    force: bool = False,
    upstream: dict[str, Any] | None = None,
    progress: Progress | None = None,
    guard: CancelGuard | None = None,
    worker_logs: bool = True,
) -> Any:
    """The body of a stage task in service mode (`run_pond_stage`'s arguments): submit, await,
    and record what the service committed. `worker_logs` is unused: the service ships the
    stage's log lines with its status."""
    plan = api.PhysicalPlan.from_json(plan_json)
    stage = plan.stage(stage_id)
    target = config.service_target()
    if target is None:
        raise api.PondConfigError("run_service_stage needs a PondConfig with service_url set")
    request: dict[str, Any] = {"plan": plan_json, "force": force, "recompute_upstream": True, "settings": config.run_tunables()}
    async with target.async_client() as client:
        status = await _submit_and_wait(client, ServiceStageCancel(target, run_id, stage.id), stage, request, guard)
    return await _record(plan, stage, status, progress)


async def _submit_and_wait(
    client: api.AsyncServiceClient, handle: ServiceStageCancel, stage: Stage, request: dict[str, Any], guard: CancelGuard | None
) -> api.StageStatus:
    logger = get_run_logger()
    if guard is not None:
        guard.register(handle)
    try:
        first = await client.submit(run_id=handle.run_id, stage=stage.id, **request)
        how = "attached to its running attempt" if first.attached else "submitted"
        logger.info(
            "stage %s: %s on the pond service at %s (pond run %s, stage id %s, attempt %s, %s)",
            stage.name, how, client.url, handle.run_id, stage.id, first.attempt, first.state.value,
        )
        return await client.wait(
            handle.run_id, stage.id, poll_interval=POLL_SECONDS, on_log=lambda line: logger.info("%s", line), submit_again=request
        )
    except asyncio.CancelledError:
        # The runner's termination signal (or the caller) cancelled this wait: stop the stage
        # on the cluster too, and end the task run Cancelled once the service says so.
        logger.warning("stage %s: the flow run is stopping; cancelling the stage on the pond service", stage.name)
        stopped = await _cancel_on_service(client, handle)
        if stopped is None:
            raise
        return stopped
    finally:
        if guard is not None:
            guard.unregister(handle)


async def _cancel_on_service(client: api.AsyncServiceClient, handle: ServiceStageCancel) -> api.StageStatus | None:
    """Cancel the stage's attempt and wait (at most CANCEL_TIMEOUT) until it has stopped: its
    final status, or None if the service did not confirm in time."""
    try:
        async with asyncio.timeout(CANCEL_TIMEOUT):
            status = await client.cancel(handle.run_id, handle.stage_id)
            while not status.state.finished:
                await asyncio.sleep(POLL_SECONDS)
                status = await client.status(handle.run_id, handle.stage_id, log_offset=1 << 62)
            return status
    except (TimeoutError, api.PondError) as exc:
        log.warning("stage %s of pond run %s: the pond service did not confirm the cancel: %s", handle.stage_id, handle.run_id, exc)
        return None


async def _record(plan: PhysicalPlan, stage: Stage, status: api.StageStatus, progress: Progress | None) -> Any:
    """The task's result for a finished attempt: the stage's result, its raised failure, or a
    Cancelled state."""
    logger = get_run_logger()
    if status.state is api.AttemptState.CANCELLED:
        return Cancelled(message=f"stage {stage.name} was cancelled on the pond service (attempt {status.attempt})")
    if status.state is api.AttemptState.FAILED or status.result is None:
        await _raise_failure(plan, stage, status)
    assert status.result is not None
    if status.recomputed:
        logger.info("stage %s: the service recomputed upstream stages first, their outputs were gone: %s", stage.name, ", ".join(status.recomputed))
    result = status.result.to_dict()
    if result.get("checks"):
        await acreate_checks_artifact(plan, stage, result["checks"])
    add_partitions_to_current_task(plan, stage, result)
    await acreate_stage_artifact(plan, stage, result)
    if progress is not None:
        await progress.astage_done(stage.id)
    logger.info(
        "stage %s: %s partitions, %s rows, %s in %.2fs on %s (pond run %s, pond service); SQL: %s",
        stage.name, result.get("npartitions"), result.get("rows"), api.human_bytes(result.get("bytes")), result.get("seconds") or 0.0,
        result.get("executor"), status.run_id, api.sql_head(plan, stage) or "(none)",
    )
    return result


async def _raise_failure(plan: PhysicalPlan, stage: Stage, status: api.StageStatus) -> None:
    """Raise what a failed attempt stands for: failed checks (never retried), a transient error
    (Prefect retries it: `retry_transient_only`), or any other error (not retried)."""
    error = status.error
    if error is None:
        raise PondServiceStageError(f"stage {stage.name}: the pond service ended attempt {status.attempt} as {status.state.value} without a result")
    if error.checks:
        results = tuple(error.checks)
        get_run_logger().error("stage %s: checks failed, nothing was published\n%s", stage.name, api.render_checks(results))
        await acreate_checks_artifact(plan, stage, [r.to_dict() for r in results])
        failed = ", ".join(r.name for r in results if not r.passed and r.severity == "error")
        raise api.PondCheckError(f"checks failed: {failed}; nothing was published (stage {stage.name})\n{api.render_checks(results)}", results)
    message = error.message if stage.name in error.message else f"stage {stage.name}: {error.message}"
    if error.retryable:
        raise api.PondTransientError(f"{message} ({error.type}, on the pond service)")
    raise PondServiceStageError(f"{message} ({error.type}, on the pond service)")


def run_on_service(
    plan: PhysicalPlan,
    run_id: str,
    cfg: PondConfig,
    force: bool,
    options: dict[str, Any],
    progress: Progress,
    guard: CancelGuard,
    wait_for: list[Any],
) -> dict[str, StageRun]:
    """Run every stage's task run of `plan` on one event loop; each stage starts when its
    upstream stages' task runs end (and fails NotReady if one did not complete)."""
    coro = _all_stages(plan, run_id, cfg, force, options, progress, guard, wait_for)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from a thread that already runs a loop (an async flow): one helper thread runs ours.
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1, thread_name_prefix="pond-service-stages") as pool:
        return pool.submit(context.run, asyncio.run, coro).result()


async def _all_stages(
    plan: PhysicalPlan,
    run_id: str,
    cfg: PondConfig,
    force: bool,
    options: dict[str, Any],
    progress: Progress,
    guard: CancelGuard,
    wait_for: list[Any],
) -> dict[str, StageRun]:
    plan_json = plan.to_json()
    tasks: dict[str, asyncio.Task[State]] = {}

    async def one(stage: Stage) -> State:
        upstream = {sid: await tasks[sid] for sid in stage.depends_on}  # States: Prefect records the dependencies
        task = stage_task(plan, stage, body=run_service_stage, **options)
        state: State = await task(
            plan_json, stage.id, run_id, cfg, force=force, upstream=upstream, progress=progress, guard=guard,
            wait_for=wait_for if not stage.depends_on else None, return_state=True,
        )
        return state

    for stage in plan.stages:  # plan order: upstream stages first
        tasks[stage.id] = asyncio.create_task(one(stage), name=f"pond-stage-{stage.name}")
    await asyncio.wait(tasks.values())
    return {sid: _stage_run(task) for sid, task in tasks.items()}


def _stage_run(task: asyncio.Task[State]) -> StageRun:
    if task.cancelled():
        state: State = Cancelled(message="the flow run stopped while the stage waited")
    elif task.exception() is not None:
        state = Failed(message=f"{type(task.exception()).__name__}: {task.exception()}")
    else:
        state = task.result()
    return StageRun(state, state.state_details.task_run_id)


def close_run(target: ServiceTarget, run_id: str, status: str, error: str | None) -> None:
    """Record the run's end in pond's catalog, through the service (the catalog is its own)."""
    with target.client() as client:
        client.close_run(run_id, status, error=error)
