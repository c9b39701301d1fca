"""Running a pond pipeline as a Prefect flow.

`run_pipeline(ref, params)` is called inside a flow: it compiles the pipeline (no data read),
submits one task per stage with the plan's dependencies, records the plan, progress and
statistics artifacts, emits the asset lineage of stages served from the cache, and returns a
summary. `pond_pipeline` is a ready-made flow around it for any `module:function` pipeline.

With a `service_url` in the config the stages run on the pond service instead
(`pond_prefect.service`): the flow process compiles the plan and awaits each stage's task run
on one event loop; it needs no Ray and never opens pond's catalog or storage root itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, wait
from prefect.states import Cancelled, State

from pond_core import api
from pond_core.api import PhysicalPlan
from pond_prefect.artifacts import Progress, create_plan_artifact, create_stats_artifact
from pond_prefect.assets import emit_cached
from pond_prefect.blocks import PondConfig, ServiceTarget, load_config
from pond_prefect.cancel import CancelGuard
from pond_prefect.fingerprint import run_id_for
from pond_prefect.outcomes import StageOutcome, settle, write_cached_artifact
from pond_prefect.stages import DEFAULT_RETRIES, DEFAULT_RETRY_DELAY, stage_task

log = logging.getLogger("pond_prefect")


def run_pipeline(
    pipeline: str | Callable[..., Any],
    params: dict[str, Any] | None = None,
    *,
    config: PondConfig | str | None = None,
    force: bool = False,
    retries: int = DEFAULT_RETRIES,
    retry_delay_seconds: float | list[float] = DEFAULT_RETRY_DELAY,
    cache: bool = True,
    worker_logs: bool = True,
    wait_for: list[Any] | None = None,
) -> dict[str, Any] | State:
    """Run `pipeline` (a `module:function` reference) with `params` inside the current flow.

    Returns `{"run_id", "pipeline", "stages": {name: result}}`; raises the first stage failure,
    or returns a Cancelled state if the flow run was cancelled. `force` re-runs every stage
    (ignoring the cache and committed outputs). `retries` and `retry_delay_seconds` apply to
    transient stage failures only; `cache=False` turns the stage cache off; `worker_logs=False`
    stops shipping partition tasks' log records (e.g. when Ray workers cannot reach the API).
    `wait_for`: futures (e.g. the task that lands the data) the first stages wait for, so the
    flow run's graph shows them upstream of the pipeline.
    """
    logger = get_run_logger()
    cfg = load_config(config)
    target = cfg.service_target()
    plan = _compile(pipeline, params, cfg, open_catalog=target is None)
    run_id = run_id_for(plan, cfg.storage_options())
    logger.info("pond run %s: %s, %d stages", run_id, plan.pipeline, len(plan.stages))
    create_plan_artifact(plan, run_id)
    progress = Progress(plan)
    flow_ctx = FlowRunContext.get()
    flow_run_id = flow_ctx.flow_run.id if flow_ctx and flow_ctx.flow_run else None
    stored = _run_stored(cfg, run_id, target, logger)
    if cache and not force and not stored:
        logger.info("pond run %s has no stored stage outputs (new, or cleaned): every stage runs", run_id)
    with _driver(cfg) if target is None else contextlib.nullcontext(), CancelGuard(flow_run_id) as guard:
        # A cache entry is only as good as the stage output it points to: after `pond clean`,
        # refresh every stage rather than serve results whose files are gone.
        options = {"retries": retries, "retry_delay_seconds": retry_delay_seconds, "cache": cache, "refresh_cache": force or not stored}
        if target is None:
            futures = _submit(plan, run_id, cfg, force, options, worker_logs, progress, guard, wait_for or [])
            wait(list(futures.values()))
            outcomes = outcomes_of(plan, futures, progress, flow_run_id)
        else:
            from pond_prefect.service import run_on_service

            outcomes = outcomes_of(plan, run_on_service(plan, run_id, cfg, force, options, progress, guard, wait_for or []), progress, flow_run_id)
        create_stats_artifact(plan, outcomes)
    failed = [outcomes[s.id].state for s in plan.stages if outcomes[s.id].state.is_failed() or outcomes[s.id].state.is_crashed()]
    if guard.cancelled.is_set():
        _finish(cfg, target, run_id, "failed", "cancelled")
        where = "its stages were cancelled on the pond service" if target else "its outstanding partition tasks were cancelled"
        return Cancelled(message=f"pond run {run_id} cancelled; {where}")
    if failed:
        _finish(cfg, target, run_id, "failed", str(failed[0].message))
        failed[0].result()  # raises the stage's own exception
    if any(not outcomes[s.id].state.is_completed() for s in plan.stages):
        states = {s.name: outcomes[s.id].state_name for s in plan.stages}
        raise RuntimeError(f"pond run {run_id}: stages did not complete: {states}")
    _finish(cfg, target, run_id, "success", None)  # also when every stage was served from the cache
    return {"run_id": run_id, "pipeline": plan.pipeline, "stages": {s.name: outcomes[s.id].result for s in plan.stages}}


def _submit(
    plan: PhysicalPlan,
    run_id: str,
    cfg: PondConfig,
    force: bool,
    options: dict[str, Any],
    worker_logs: bool,
    progress: Progress,
    guard: CancelGuard,
    wait_for: list[Any],
) -> dict[str, PrefectFuture]:
    plan_json = plan.to_json()
    futures: dict[str, PrefectFuture] = {}
    for stage in plan.stages:
        futures[stage.id] = stage_task(plan, stage, **options).submit(
            plan_json,
            stage.id,
            run_id,
            cfg,
            force=force,
            upstream={sid: futures[sid] for sid in stage.depends_on},
            progress=progress,
            guard=guard,
            worker_logs=worker_logs,
            wait_for=wait_for if not stage.depends_on else None,
        )
    return futures


def _compile(pipeline: str | Callable[..., Any], params: dict[str, Any] | None, cfg: PondConfig, *, open_catalog: bool) -> PhysicalPlan:
    """The pipeline's plan. In-process, pond's catalog is opened meanwhile; in service mode the
    catalog is the service's, and the plan needs no data root of its own to run there."""
    if not open_catalog:
        return api.compile_pipeline(pipeline, params, data_root=cfg.settings(job_id="planning").data_root, storage=cfg.storage_options())
    with ThreadPoolExecutor(1, thread_name_prefix="pond-catalog") as pool:
        catalog_ready = pool.submit(_open_catalog, cfg)
        plan = api.compile_pipeline(pipeline, params, data_root=cfg.settings(job_id="planning").data_root, storage=cfg.storage_options())
        catalog_ready.result()
    return plan


def outcomes_of(plan: PhysicalPlan, futures: Any, progress: Progress, flow_run_id: Any) -> dict[str, StageOutcome]:
    """Each stage's outcome (pond_prefect.outcomes); a Cached stage gets its artifact and lineage."""
    outcomes = settle(plan, futures)
    for stage in plan.stages:
        outcome = outcomes[stage.id]
        if outcome.state.is_completed():
            progress.stage_done(stage.id)
        if outcome.cached and outcome.result is not None:
            emit_cached(plan, stage, outcome.result, str(outcome.task_run_id))
            write_cached_artifact(plan, stage, outcome, flow_run_id)
    return outcomes


class _driver:
    """Start Ray once for the whole flow run when the config uses it (stages reuse it)."""

    def __init__(self, cfg: PondConfig) -> None:
        self.cfg = cfg
        self.owned = False

    def __enter__(self) -> _driver:
        if self.cfg.uses_ray:
            api.require_ray("executor=ray")  # a thin client's venv: name the extra, not ModuleNotFoundError
            import ray

            if not ray.is_initialized():
                address = self.cfg.settings(job_id="ray").ray_address
                if address:
                    ray.init(address=address)
                else:
                    ray.init(include_dashboard=False)
                self.owned = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.owned:
            import ray

            ray.shutdown()


def _open_catalog(cfg: PondConfig) -> None:
    """Create (or migrate) pond's catalog once, while the plan compiles: otherwise the first
    stages each do it when they start, seconds of their start on a fresh catalog, racing."""
    with api.open_catalog(cfg.settings(job_id="planning")):
        pass


def _run_stored(cfg: PondConfig, run_id: str, target: ServiceTarget | None, logger: Any) -> bool:
    """True if the pond run's folder (its staged stage outputs) exists in storage. The storage
    of the pond service is its own: there, a stage whose upstream outputs are gone recomputes
    them first (recompute_upstream), so cached stages are trusted."""
    if target is not None:
        ignored = cfg.ignored_by_service()
        logger.info(
            "pond run %s: stages run on the pond service at %s%s", run_id, target.url,
            f" (its own settings decide {', '.join(ignored)}: the block's values are not sent)" if ignored else "",
        )
        return True
    return api.run_stored(run_id, cfg.settings(job_id=run_id), cfg.storage_options())


def _finish(cfg: PondConfig, target: ServiceTarget | None, run_id: str, status: str, error: str | None) -> None:
    """Close the run in pond's catalog (stage runs were recorded by the stages themselves),
    through the service in service mode."""
    try:
        if target is not None:
            from pond_prefect.service import close_run

            close_run(target, run_id, status, error)
        else:
            api.close_run(run_id, status, settings=cfg.settings(job_id=run_id), error=error)
    except api.PondError as exc:
        log.warning("pond run %s: cannot record its end in the catalog: %s", run_id, exc)


def run_sql(
    sql: str,
    inputs: dict[str, str | list[str]],
    output_path: str | None = None,
    *,
    partition_by: str | list[str] | None = None,
    mode: str | None = None,
    hash_by: str | list[str] | None = None,
    npartitions: int | None = None,
    hive_partitioning: bool | dict[str, bool] | None = None,
    output_table: str | None = None,
    iceberg_catalog: dict[str, str] | str | None = None,
    checks: list[Any] | None = None,
    **run_options: Any,
) -> Any:
    """Inside a flow: run one SQL statement over named Parquet inputs as pond stages (the
    pipeline `pond_prefect.sql:sql_pipeline`; see `run_pipeline` for the options). With
    `output_table` (and `iceberg_catalog`) it commits an Iceberg table; `checks` run before
    publish (`pond_core.checks`)."""
    params = api.sql_pipeline_params(
        sql, inputs, output_path, partition_by=partition_by, mode=mode if mode is not None else ("append" if output_table else "error"),
        hash_by=hash_by, npartitions=npartitions, hive_partitioning=hive_partitioning, output_table=output_table,
        iceberg_catalog=iceberg_catalog, checks=checks or (),
    )
    return run_pipeline("pond_prefect.sql:sql_pipeline", params, **run_options)


@flow(name="pond-pipeline")
def pond_pipeline(
    pipeline: str,
    params: dict[str, Any] | None = None,
    config: str | None = None,
    force: bool = False,
    retries: int = DEFAULT_RETRIES,
) -> dict[str, Any] | State:
    """Run any pond pipeline (`module:function`) with one task run per stage."""
    return run_pipeline(pipeline, params, config=config, force=force, retries=retries)
