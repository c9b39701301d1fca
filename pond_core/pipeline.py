"""Pipelines as durable units: importable definitions, compiled plans, idempotent stage runs.

A pipeline is a plain function addressed as `module:function`. It takes a planning session
first and its parameters as keywords, and returns a DataFrame (its result is kept as files) or
`df.sink_parquet(...)` (a dataset write), or a smallpond `LogicalPlan` (its root's result is
kept as files, or written where its `DataSinkNode` says; each node's `output_name` names its
stage):

    def daily_sales(sp, ds: str):
        orders = sp.read_parquet(f"/data/orders/dt={ds}/*.parquet")
        return orders.repartition(4, hash_by="customer").sink_parquet("/data/sales", partition_by="dt", mode="overwrite_partitions")

`compile_pipeline` touches no data and starts no cluster; `pond_core.runner.run_plan` runs
the plan it returns.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from pond_core.dataframe import DataFrame, Sink
from pond_core.errors import PondConfigError
from pond_core.io import StorageOptions
from pond_core.plan.compile import compile_plan
from pond_core.plan.logical import Node
from pond_core.plan.physical import FILES, PhysicalPlan, SinkOutput, StageOutput
from pond_core.session import Session
from pond_core.settings import Settings


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
    storage: StorageOptions | None = None,
) -> PhysicalPlan:
    """Build the pipeline's physical plan; reads no data, starts no executor. `storage`: the
    credentials of an s3:// data root (default: the environment's)."""
    params = dict(params or {})
    func = load_pipeline(ref)
    name = pipeline_name(ref)
    check_params(func, params, name)
    planner = Session(Settings.resolve(data_root=data_root, job_id="planning"), storage or StorageOptions.from_env())
    result = func(planner, **params)
    output: StageOutput
    if isinstance(result, Sink):
        root, output = result.node, SinkOutput(result.spec)
    elif isinstance(result, DataFrame):
        root, output = result._node, FILES
    elif _is_logical_plan(result):
        root, output = _logical_plan_root(result, planner, name)
    else:
        raise PondConfigError(
            f"pipeline {name} must return a DataFrame, df.sink_parquet(...) or a smallpond LogicalPlan, got {type(result).__name__}"
        )
    return compile_plan(root, output, pipeline=name, params=params)


def _is_logical_plan(result: Any) -> bool:
    from pond_core.compat.smallpond.logical.node import LogicalPlan

    return isinstance(result, LogicalPlan)


def _logical_plan_root(plan: Any, planner: Session, name: str) -> tuple[Node, StageOutput]:
    """A smallpond LogicalPlan's one result, compiled to pond's logical plan."""
    from pond_core.compat.smallpond.logical.planner import Planner

    targets = Planner(planner).compile(plan)
    if len(targets) != 1:
        raise PondConfigError(f"pipeline {name} returned a LogicalPlan with {len(targets)} results (a RootNode); a pipeline has one result")
    return targets[0].node, targets[0].output
