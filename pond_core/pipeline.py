"""Pipelines as durable units: importable definitions, compiled plans, idempotent stage runs.

A pipeline is a plain function addressed as `module:function`. It takes a planning session
first and its parameters as keywords, and returns a DataFrame (its result is kept as files) or
`df.sink_parquet(...)` (a dataset write):

    def daily_sales(sp, ds: str):
        orders = sp.read_parquet(f"/data/orders/dt={ds}/*.parquet")
        return orders.repartition(4, hash_by="customer").sink_parquet("/data/sales", partition_by="dt", mode="overwrite_partitions")

`compile_pipeline` touches no data and starts no cluster. `run_stage` runs one stage for one
run id and is idempotent; `run_pipeline` runs them all. Every run and stage is recorded in the
catalog with its lineage.
"""

from __future__ import annotations

import importlib
import inspect
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from pond_core.config import resolve_config
from pond_core.dataframe import DataFrame, Sink
from pond_core.errors import PondConfigError, PondError
from pond_core.execute import stage as stage_runner
from pond_core.io import StorageOptions
from pond_core.lineage import LineageRecorder
from pond_core.plan.compile import compile_plan
from pond_core.execute.scheduler import run_dag
from pond_core.plan.physical import PhysicalPlan, Stage, StageOutput
from pond_core.session import Session

if TYPE_CHECKING:
    from pond_core.catalog import Catalog


def load_pipeline(ref: str | Callable[..., Any]) -> Callable[..., Any]:
    """The function behind `module:function` (or the function itself)."""
    if callable(ref):
        return ref
    module_name, sep, attr = str(ref).partition(":")
    if not sep or not module_name or not attr:
        raise PondConfigError(f"pipeline {ref!r} must be written module:function, e.g. flows.daily:daily_sales")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PondConfigError(f"pipeline {ref!r}: cannot import module {module_name!r}: {exc}") from exc
    func = getattr(module, attr, None)
    if not callable(func):
        raise PondConfigError(f"pipeline {ref!r}: module {module_name!r} has no function {attr!r}")
    return func


def pipeline_name(ref: str | Callable[..., Any]) -> str:
    if callable(ref):
        return f"{ref.__module__}:{ref.__qualname__}"
    return str(ref)


def check_params(func: Callable[..., Any], params: dict[str, Any], name: str) -> None:
    signature = inspect.signature(func)
    accepted = list(signature.parameters)[1:]  # the first one is the session
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    unknown = sorted(set(params) - set(accepted))
    if unknown and not takes_any:
        raise PondConfigError(f"pipeline {name} takes no parameter {', '.join(unknown)} (it takes: {', '.join(accepted) or 'none'})")
    missing = [
        p.name for p in list(signature.parameters.values())[1:]
        if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in params
    ]
    if missing:
        raise PondConfigError(f"pipeline {name} needs parameter {', '.join(missing)}")


def compile_pipeline(
    ref: str | Callable[..., Any],
    params: dict[str, Any] | None = None,
    *,
    data_root: str | None = None,
) -> PhysicalPlan:
    """Build the pipeline's physical plan; reads no data, starts no executor."""
    params = dict(params or {})
    func = load_pipeline(ref)
    name = pipeline_name(ref)
    check_params(func, params, name)
    planner = Session(resolve_config(data_root=data_root, job_id="planning"), StorageOptions.from_env())
    result = func(planner, **params)
    if isinstance(result, Sink):
        root, output = result.node, StageOutput(kind="sink", sink=result.spec)
    elif isinstance(result, DataFrame):
        root, output = result._node, StageOutput(kind="files")
    else:
        raise PondConfigError(f"pipeline {name} must return a DataFrame or df.sink_parquet(...), got {type(result).__name__}")
    return compile_plan(root, output, pipeline=name, params=params)


def open_catalog(session: Session) -> "Catalog":
    from pond_core.catalog import Catalog  # SQLAlchemy and Alembic: not needed to compile

    return Catalog(session.config.catalog_url or Catalog.default_url(session.config.data_root))


def run_stage(
    plan: PhysicalPlan,
    stage_id: str,
    run_id: str,
    *,
    session: Session | None = None,
    catalog: "Catalog | None" = None,
    force: bool = False,
    progress: stage_runner.Progress | None = None,
    stop: threading.Event | None = None,
    **init_kwargs: Any,
) -> dict[str, Any]:
    """Run one stage for one run; return at once if that stage is already committed. Setting
    `stop` (from another thread) stops the stage's tasks and fails it with PondInterruptedError."""
    from pond_core.session import init

    own_session, own_catalog = session is None, catalog is None
    session = session or init(job_id=run_id, **init_kwargs)
    catalog = catalog or open_catalog(session)
    try:
        catalog.start_run(run_id, plan.pipeline or "session", plan.params, plan.fingerprint, session.executor().name)
        recorder = LineageRecorder(catalog, plan, run_id)
        ctx = session.stage_context(run_id, progress=progress, recorder=recorder, stop=stop)
        return stage_runner.run_stage(plan, stage_id, ctx, force=force)
    finally:
        if own_catalog:
            catalog.close()
        if own_session:
            session.shutdown()


def run_pipeline(
    plan: PhysicalPlan,
    run_id: str,
    *,
    session: Session | None = None,
    catalog: "Catalog | None" = None,
    progress: stage_runner.Progress | None = None,
    on_stage: Callable[[str, dict[str, Any]], None] | None = None,
    **init_kwargs: Any,
) -> dict[str, Any]:
    """Run every stage, each as soon as its inputs are committed (independent stages at once);
    committed stages are skipped, so a rerun resumes."""
    from pond_core.session import init

    own_session, own_catalog = session is None, catalog is None
    session = session or init(job_id=run_id, keep_intermediates=True, **init_kwargs)
    catalog = catalog or open_catalog(session)
    started = time.time()
    stop = threading.Event()  # set by run_dag when this thread is interrupted (Ctrl-C)

    def run_one(stage: Stage) -> dict[str, Any]:
        result = run_stage(plan, stage.id, run_id, session=session, catalog=catalog, progress=progress, stop=stop)
        if on_stage:
            on_stage(stage.name, result)
        return result

    try:
        results = run_dag(plan, run_one, stop=stop)
    except PondError as exc:
        catalog.finish_run(run_id, "failed", error=str(exc))
        raise
    else:
        catalog.finish_run(run_id, "success")
    finally:
        if own_catalog:
            catalog.close()
        if own_session:
            session.shutdown()
    return {"run_id": run_id, "pipeline": plan.pipeline, "seconds": round(time.time() - started, 3), "stages": results}
