"""One Prefect task per pond stage.

`stage_task(plan, stage)` is a materialising Prefect task named after the stage. Its run starts
a pond session in the flow process (the DAG walk stays in the driver), runs the stage's
partition tasks on the session's executor (threads, or Ray), and returns the stage's small JSON
result: locations, counts, schema, timings, never rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prefect import get_run_logger
from prefect.assets import Asset
from prefect.cache_policies import NO_CACHE
from prefect.tasks import MaterializingTask

from pond_core import api
from pond_prefect.artifacts import Progress, create_checks_artifact, create_stage_artifact
from pond_prefect.assets import MATERIALIZED_BY, add_partitions_to_current_task, stage_asset, upstream_assets
from pond_prefect.blocks import PondConfig
from pond_prefect.cache import StageCache, retry_transient_only
from pond_prefect.cancel import CancelGuard
from pond_prefect.worker_logs import PrefectTaskLogs

DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY = 10.0


def run_pond_stage(
    plan_json: str,
    stage_id: str,
    run_id: str,
    config: PondConfig,
    force: bool = False,
    upstream: dict[str, Any] | None = None,
    progress: Progress | None = None,
    guard: CancelGuard | None = None,
    worker_logs: bool = True,
) -> dict[str, Any]:
    """The body of a stage task. `upstream` carries the upstream stages' results, so Prefect
    records the dependencies; the stage itself reads their committed outputs from storage.
    `worker_logs` ships log records written inside partition tasks to this task run."""
    plan = api.PhysicalPlan.from_json(plan_json)
    stage = plan.stage(stage_id)
    logger = get_run_logger()
    settings = config.settings(job_id=run_id)
    hooks = [PrefectTaskLogs.for_current_task_run()] if worker_logs else []
    executor = api.make_executor(settings, hooks)
    if guard is not None:
        guard.register(executor)
    try:
        manifest = api.run_stage(
            plan, stage.id, run_id, settings=settings, storage=config.storage_options(), executor=executor, force=force,
            progress=progress.partitions_done if progress else None, recompute_upstream=True,
        )
    except api.PondCheckError as exc:
        logger.error("stage %s: checks failed, nothing was published\n%s", stage.name, api.render_checks(exc.results))
        create_checks_artifact(plan, stage, [r.to_dict() for r in exc.results])
        # The first line is what the task's and the flow run's state say: which checks failed.
        failed = ", ".join(r.name for r in exc.results if not r.passed and r.severity == "error")
        message = f"checks failed: {failed}; nothing was published (stage {stage.name})\n{api.render_checks(exc.results)}"
        raise api.PondCheckError(message, exc.results) from None
    finally:
        if guard is not None:
            guard.unregister(executor)
        executor.shutdown()
    result = manifest.result.to_dict()
    if result.get("checks"):
        create_checks_artifact(plan, stage, result["checks"])
    add_partitions_to_current_task(plan, stage, result)
    create_stage_artifact(plan, stage, result)
    logger.info(
        "stage %s: %s partitions, %s rows, %s in %.2fs on %s (pond run %s); SQL: %s",
        stage.name, result.get("npartitions"), result.get("rows"), api.human_bytes(result.get("bytes")), result.get("seconds") or 0.0,
        result.get("executor"), run_id, api.sql_head(plan, stage) or "(none)",
    )
    return result


def stage_task(
    plan: api.PhysicalPlan,
    stage: api.Stage,
    *,
    retries: int = DEFAULT_RETRIES,
    retry_delay_seconds: float | list[float] = DEFAULT_RETRY_DELAY,
    cache: bool = True,
    refresh_cache: bool = False,
    tags: Iterable[str] = (),
    body: Callable[..., Any] = run_pond_stage,
) -> MaterializingTask:
    """The Prefect task that runs `stage` of `plan`; call with `run_pond_stage`'s arguments.
    `body`: `run_pond_stage` (in this process) or `pond_prefect.service.run_service_stage` (an
    async body that submits the stage to the pond service and awaits it)."""
    return MaterializingTask(
        fn=body,
        assets=[stage_asset(plan, stage)],
        materialized_by=MATERIALIZED_BY,
        asset_deps=list[Asset | str](upstream_assets(plan, stage)) or None,
        name=stage.name,
        task_run_name=stage.name,
        description=api.stage_markdown(plan, stage),
        tags={"pond", *tags},
        retries=retries,
        retry_delay_seconds=retry_delay_seconds,
        retry_condition_fn=retry_transient_only,
        cache_policy=StageCache() if cache else NO_CACHE,
        refresh_cache=refresh_cache or None,
        persist_result=True,
        result_serializer="json",
    )
