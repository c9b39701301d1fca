"""`run_plan`: the one way to run a physical plan, used by sessions, the CLI, Airflow and Prefect.

    result = run_plan(plan, "daily-2026-11-20", settings={"data_root": "/data/pond"})
    result.stages["write_daily_revenue"].rows

A run is named by its run id: its stage outputs live under the run's layout, so running the
same run id again skips committed stages and committed partitions (that is resume). Stages run
as a DAG, independent ones at once. `stages=[name]` runs only those stages (their upstream
stages must be committed): what an orchestrator does, one stage per task.

Unless `record=False`, the run and its stages are recorded in the catalog with their lineage;
the run is marked finished when its final stage commits (or failed, when a whole-plan run
fails; an orchestrator running single stages decides itself when a failure is final, see
`close_run`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pond_core import stage_text
from pond_core.errors import PondRunBusyError
from pond_core.execute.context import NoEvents, Progress, RunContext, StageEvents, TaskLimits
from pond_core.execute.executor_for import make_executor
from pond_core.execute.executors import Executor, TaskHook
from pond_core.execute.results import StageManifest, StageResult
from pond_core.execute.scheduler import run_dag
from pond_core.execute.stage_run import StageRun
from pond_core.execute.store import StageStore
from pond_core.io.options import StorageOptions
from pond_core.layout import RunLayout, check_run_id
from pond_core.plan.physical import PhysicalPlan, Stage
from pond_core.recorder import CatalogRecorder
from pond_core.settings import Settings

if TYPE_CHECKING:
    from pond_core.catalog import Catalog

OnStage = Callable[[Stage, StageManifest], None]
log = logging.getLogger("pond.stage")


@dataclasses.dataclass(frozen=True)
class PlanResult:
    """The stages a run_plan call ran (or found committed), by name in plan order."""

    run_id: str
    pipeline: str | None
    seconds: float
    manifests: dict[str, StageManifest]

    @property
    def stages(self) -> dict[str, StageResult]:
        return {name: m.result for name, m in self.manifests.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "pipeline": self.pipeline, "seconds": self.seconds,
            "stages": {name: r.to_dict() for name, r in self.stages.items()},
        }


def resolve_settings(settings: Settings | Mapping[str, Any] | None, run_id: str) -> Settings:
    """Settings for a run: given, or resolved from keywords / the environment for `run_id`."""
    if isinstance(settings, Settings):
        return settings
    return Settings.resolve(**{"job_id": run_id, **dict(settings or {})})


def task_limits(settings: Settings) -> TaskLimits:
    return TaskLimits(
        max_retries=settings.max_retries, memory_limit=settings.memory_limit, max_task_memory=settings.max_task_memory,
        speculation=settings.speculation, task_threads=settings.task_threads,
    )


def run_plan(
    plan: PhysicalPlan,
    run_id: str,
    *,
    settings: Settings | Mapping[str, Any] | None = None,
    storage: StorageOptions | None = None,
    executor: Executor | None = None,
    task_hooks: Sequence[TaskHook] = (),
    catalog: Catalog | None = None,
    record: bool = True,
    stages: Sequence[str] | None = None,
    force: bool | Collection[str] = False,
    progress: Progress | None = None,
    on_stage: OnStage | None = None,
    stop: threading.Event | None = None,
    lineage_scope: str | None = None,
    finish_run: bool = True,
) -> PlanResult:
    """Run (or resume) `plan` as `run_id`; return every stage it ran or found committed.

    settings: a Settings, or keywords for Settings.resolve (data_root=, executor=, ...).
    storage: S3 settings (default: the AWS environment). executor: run on this executor
    (the caller shuts it down); default: one made from the settings for this call.
    catalog / record: where the run is recorded (default: the settings' catalog), or not at all.
    stages: names or ids to run (default: all). force: True, or the names/ids of stages to
    run anew even if committed. stop: set from another thread to stop the run's tasks.
    lineage_scope: where intermediate datasets are recorded (`pond://<scope>/<stage>`; default
    the pipeline): an orchestrator passes its pipeline instance, e.g. an Airflow DAG and group.
    finish_run: mark the run finished when its final stage commits; a session, whose run is its
    job, leaves it running and finishes it at shutdown (a failure is recorded either way).
    """
    check_run_id(run_id)  # it names the run's folder and reaches SQL inside paths
    resolved = resolve_settings(settings, run_id)
    selected = [plan.stage(ref) for ref in stages] if stages is not None else list(plan.stages)
    forced = _forced(plan, force)
    started = time.time()
    stop = stop or threading.Event()
    _check_sink_buckets(selected, storage)
    with contextlib.ExitStack() as scope:
        run_executor = executor or scope.enter_context(_owned_executor(resolved, task_hooks))
        events = scope.enter_context(
            _recording(plan, run_id, resolved, run_executor, catalog, record, stages is None, lineage_scope, storage)
        )
        ctx = RunContext(
            run_id=run_id,
            layout=RunLayout(resolved.data_root, run_id, resolved.spill_dir),
            executor=run_executor,
            storage=storage or StorageOptions.from_env(),
            limits=task_limits(resolved),
            events=events,
            progress=progress,
            stop=stop,
        )

        def run_one(stage: Stage) -> StageManifest:
            stage_run = StageRun(plan, stage, ctx, force=stage.id in forced)
            committed = stage_run.reusable()  # same definition, same inputs (else StageRun says why it reruns)
            if committed is not None:
                log.info("%s", stage_text.finish_line(stage, committed.result, reused=True))
                manifest = committed
            else:
                log.info("%s", stage_text.start_line(plan, stage))
                manifest = stage_run.run()
                log.info("%s", stage_text.finish_line(stage, manifest.result))
            if on_stage is not None:
                on_stage(stage, manifest)
            return manifest

        manifests = run_dag(selected, run_one, stop=stop)
        if finish_run and isinstance(events, CatalogRecorder) and (plan.final.name in manifests or _all_succeeded(plan, events)):
            events.finish_run("success")  # also when a stage of a finished run was run again
    return PlanResult(run_id, plan.pipeline, round(time.time() - started, 3), manifests)


def _check_sink_buckets(stages: Sequence[Stage], storage: StorageOptions | None) -> None:
    """A missing sink bucket or a sink path too long for its storage fails the run before any
    upstream stage spends its time (one HEAD request per S3 sink; a sink's own prepare() checks
    the rest when its stage starts)."""
    from pond_core.io import get_filesystem
    from pond_core.io.fs import is_s3
    from pond_core.io.sink import check_sink_path
    from pond_core.plan.physical import SinkOutput

    for stage in stages:
        if isinstance(stage.output, SinkOutput) and stage.output.sink.table is None:
            check_sink_path(stage.output.sink.path)
        if isinstance(stage.output, SinkOutput) and is_s3(stage.output.sink.path):
            fs = get_filesystem(stage.output.sink.path, storage or StorageOptions.from_env())
            check = getattr(fs, "check_bucket", None)
            if check is not None:
                check(stage.output.sink.path)


def run_stage(plan: PhysicalPlan, stage: str, run_id: str, *, recompute_upstream: bool = False, **options: Any) -> StageManifest:
    """Run one stage (a name or an id) of `plan` for `run_id`; see run_plan for the options.
    A committed stage returns at once. Its upstream stages must be committed for the run,
    unless `recompute_upstream`: then upstream stages whose outputs are gone (dropped when the
    run finished, or cleaned) run first, from their own committed inputs. That is what makes an
    orchestrator's "clear this task" work on a finished run (docs/airflow.md)."""
    target = plan.stage(stage)
    selected = [target.name]
    if recompute_upstream:
        resolved = resolve_settings(options.get("settings"), run_id)
        selected = [s.name for s in upstream_to_recompute(plan, target.name, run_id, settings=resolved, storage=options.get("storage"))] + selected
        options["settings"] = resolved
    return run_plan(plan, run_id, stages=selected, **options).manifests[target.name]


def upstream_to_recompute(
    plan: PhysicalPlan, stage: str, run_id: str, *, settings: Settings | None = None, storage: StorageOptions | None = None
) -> list[Stage]:
    """The upstream stages run_stage(recompute_upstream=True) would run first, in plan order:
    an orchestrator says so in its log before it runs the stage."""
    resolved = resolve_settings(settings, run_id)
    return missing_upstream(plan, plan.stage(stage), StageStore.of(RunLayout(resolved.data_root, run_id), storage))


def missing_upstream(plan: PhysicalPlan, stage: Stage, store: StageStore) -> list[Stage]:
    """The stages `stage` needs whose committed outputs are gone, in plan order: each upstream
    stage without a manifest, and, recursively, what that one needs."""
    needed: set[str] = set()
    todo = list(stage.depends_on)
    while todo:
        sid = todo.pop()
        if sid in needed or store.manifest(sid) is not None:
            continue
        needed.add(sid)
        todo.extend(plan.stage(sid).depends_on)
    return [s for s in plan.stages if s.id in needed]


_OPENING = threading.Lock()  # Alembic's upgrade keeps global state: one catalog opens at a time per process


def open_catalog(settings: Settings) -> Catalog:
    from pond_core.catalog import Catalog  # SQLAlchemy and Alembic: not needed to compile
    from pond_core.catalog.engine import check_catalog_url

    if settings.catalog_url:  # an explicit URL must name what exists; the default is created
        check_catalog_url(settings.catalog_url)
    with _OPENING:  # sessions in threads (and Prefect's threaded task runs) open catalogs at once
        return Catalog(settings.resolved_catalog_url)


def close_run(run_id: str, status: str, *, settings: Settings, error: str | None = None) -> None:
    """Mark a run finished in the catalog: what an orchestrator does when a failed stage will
    not be retried (run_plan records success itself when the final stage commits)."""
    with open_catalog(settings) as catalog:
        catalog.finish_run(run_id, status, error=error)


def _all_succeeded(plan: PhysicalPlan, events: CatalogRecorder) -> bool:
    return all(events.catalog.stage_result(events.run_id, s.id) is not None for s in plan.stages)


def _forced(plan: PhysicalPlan, force: bool | Collection[str]) -> set[str]:
    if force is True:
        return {s.id for s in plan.stages}
    if not force:
        return set()
    assert not isinstance(force, bool)
    return {plan.stage(ref).id for ref in force}


@contextlib.contextmanager
def _owned_executor(settings: Settings, task_hooks: Sequence[TaskHook]) -> Iterator[Executor]:
    # Started here, on the caller's thread: a Ray that cannot start fails before any stage.
    executor = make_executor(settings, task_hooks)
    try:
        yield executor
    finally:
        executor.shutdown()


@contextlib.contextmanager
def _recording(
    plan: PhysicalPlan, run_id: str, settings: Settings, executor: Executor, catalog: Catalog | None, record: bool, whole: bool,
    lineage_scope: str | None = None, storage: StorageOptions | None = None,
) -> Iterator[StageEvents]:
    """The run's catalog recorder (or nobody); a whole-plan run that fails is marked failed."""
    if not record:
        yield NoEvents()
        return
    own = catalog is None
    catalog = catalog or open_catalog(settings)
    try:
        # A session's actions are many plans of one run (its job): no one plan fingerprints it.
        fingerprint = plan.fingerprint if plan.pipeline else None
        catalog.start_run(run_id, plan.pipeline or "session", plan.params, fingerprint, executor.name)
        recorder = CatalogRecorder(catalog, plan, run_id, lineage_scope, storage)
        try:
            yield recorder
        except BaseException as exc:
            if whole and not isinstance(exc, PondRunBusyError):  # the live driver finishes the run
                recorder.finish_run("failed", _describe(exc))
            raise
    finally:
        if own:
            catalog.close()


def _describe(exc: BaseException) -> str:
    from pond_core.errors import PondError

    if isinstance(exc, PondError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"
