"""The public surface of pond_core for orchestrator integrations (and anyone building on pond).

The Airflow provider and the Prefect integration import only this module (a test checks it):
compile a pipeline, describe its stages, run a stage or a plan, read results and lineage,
settings, storage, a run's layout and clean-up, task hooks. Everything here is a stable name;
what it refers to lives in the module that owns it.

Names load on first use, so reading settings (Airflow's provider metadata does) imports
neither DuckDB nor SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # The same names, typed: mypy checks provider code against them. A test keeps this block
    # and _EXPORTS naming the same objects.
    from pond_core.catalog import Catalog
    from pond_core.checks import CheckResult, PondCheckError, render_checks
    from pond_core.dataframe import DataFrame
    from pond_core.errors import PondConfigError, PondError, PondInterruptedError, PondRunBusyError, PondTransientError, is_retryable
    from pond_core.execute.executor_for import make_executor
    from pond_core.execute.executors import Executor, TaskHook
    from pond_core.execute.results import StageManifest, StageResult
    from pond_core.execute.task_spec import TaskSpec
    from pond_core.io.filesystems import get_filesystem
    from pond_core.io.fs import FileSystem, join_path
    from pond_core.io.options import StorageOptions
    from pond_core.layout import RunLayout, check_run_id
    from pond_core.lineage import LineageDataset, LineageRecord, stage_dataset, stage_lineage, with_assertions
    from pond_core.named_sql import check_named_inputs, named_sql, sql_pipeline, sql_pipeline_params
    from pond_core.pipeline import compile_pipeline, load_pipeline, pipeline_name
    from pond_core.plan.physical import (
        ExchangeOutput,
        FilesOutput,
        PhysicalPlan,
        PythonStep,
        SinkOutput,
        SourceInput,
        SqlStep,
        Stage,
        UpstreamInput,
    )
    from pond_core.plan.sql import bind_named_inputs
    from pond_core.ray_extra import require_ray
    from pond_core.runner import PlanResult, close_run, open_catalog, run_plan, run_stage, upstream_to_recompute
    from pond_core.service.client import AsyncServiceClient, ServiceClient
    from pond_core.service.errors import PondServiceAuthError, PondServiceUnavailableError
    from pond_core.service.protocol import RUN_TUNABLES, AttemptState, ServiceError, StageStatus
    from pond_core.session import Session, init
    from pond_core.settings import SETTINGS, Kind, Setting, Settings, SettingValues, Surface, parse_bytes, surface
    from pond_core.stage_text import human_bytes, sql_head, stage_markdown, stage_sql
    from pond_core.stages import SourceFile, StageDescription, describe_stage, drop_intermediates, run_stored, source_files

_EXPORTS = {
    # settings
    "SETTINGS": "pond_core.settings",
    "Kind": "pond_core.settings",
    "Setting": "pond_core.settings",
    "SettingValues": "pond_core.settings",
    "Settings": "pond_core.settings",
    "Surface": "pond_core.settings",
    "parse_bytes": "pond_core.settings",
    "surface": "pond_core.settings",
    # sessions and DataFrames
    "DataFrame": "pond_core.dataframe",
    "Session": "pond_core.session",
    "init": "pond_core.session",
    "named_sql": "pond_core.named_sql",
    "check_named_inputs": "pond_core.named_sql",
    "bind_named_inputs": "pond_core.plan.sql",
    # plans
    "PhysicalPlan": "pond_core.plan.physical",
    "Stage": "pond_core.plan.physical",
    "ExchangeOutput": "pond_core.plan.physical",
    "FilesOutput": "pond_core.plan.physical",
    "SinkOutput": "pond_core.plan.physical",
    "SourceInput": "pond_core.plan.physical",
    "UpstreamInput": "pond_core.plan.physical",
    "SqlStep": "pond_core.plan.physical",
    "PythonStep": "pond_core.plan.physical",
    "compile_pipeline": "pond_core.pipeline",
    "load_pipeline": "pond_core.pipeline",
    "pipeline_name": "pond_core.pipeline",
    "StageDescription": "pond_core.stages",
    "describe_stage": "pond_core.stages",
    "source_files": "pond_core.stages",
    "sql_pipeline": "pond_core.named_sql",
    "sql_pipeline_params": "pond_core.named_sql",
    "stage_sql": "pond_core.stage_text",
    "stage_markdown": "pond_core.stage_text",
    "sql_head": "pond_core.stage_text",
    "human_bytes": "pond_core.stage_text",
    "SourceFile": "pond_core.stages",
    # running
    "run_plan": "pond_core.runner",
    "run_stage": "pond_core.runner",
    "close_run": "pond_core.runner",
    "upstream_to_recompute": "pond_core.runner",
    "open_catalog": "pond_core.runner",
    "PlanResult": "pond_core.runner",
    "StageManifest": "pond_core.execute.results",
    "StageResult": "pond_core.execute.results",
    "Executor": "pond_core.execute.executors",
    "TaskHook": "pond_core.execute.executors",
    "make_executor": "pond_core.execute.executor_for",
    "TaskSpec": "pond_core.execute.task_spec",
    # a run's storage
    "RunLayout": "pond_core.layout",
    "check_run_id": "pond_core.layout",
    "drop_intermediates": "pond_core.stages",
    "run_stored": "pond_core.stages",
    "StorageOptions": "pond_core.io.options",
    "FileSystem": "pond_core.io.fs",
    "get_filesystem": "pond_core.io.filesystems",
    "join_path": "pond_core.io.fs",
    # lineage and the catalog
    "LineageDataset": "pond_core.lineage",
    "LineageRecord": "pond_core.lineage",
    "stage_dataset": "pond_core.lineage",
    "stage_lineage": "pond_core.lineage",
    "Catalog": "pond_core.catalog",
    # checks before publish
    "CheckResult": "pond_core.checks",
    "PondCheckError": "pond_core.checks",
    "render_checks": "pond_core.checks",
    "with_assertions": "pond_core.lineage",
    # the pond service (a thin client: no Ray needed)
    "ServiceClient": "pond_core.service.client",
    "AsyncServiceClient": "pond_core.service.client",
    "StageStatus": "pond_core.service.protocol",
    "AttemptState": "pond_core.service.protocol",
    "ServiceError": "pond_core.service.protocol",
    "RUN_TUNABLES": "pond_core.service.protocol",
    "require_ray": "pond_core.ray_extra",
    "PondServiceAuthError": "pond_core.service.errors",
    "PondServiceUnavailableError": "pond_core.service.errors",
    # errors
    "PondError": "pond_core.errors",
    "PondConfigError": "pond_core.errors",
    "PondInterruptedError": "pond_core.errors",
    "PondRunBusyError": "pond_core.errors",
    "PondTransientError": "pond_core.errors",
    "is_retryable": "pond_core.errors",
}

__all__ = sorted(_EXPORTS)


if not TYPE_CHECKING:
    # Hidden from type checkers, so a name missing from the block above is an error there,
    # not an `Any`.

    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'pond_core.api' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)

