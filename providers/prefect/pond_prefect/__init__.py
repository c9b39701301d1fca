"""prefect-pond: run pond pipelines as Prefect 3 flows.

    from prefect import flow
    from pond_prefect import run_pipeline

    @flow
    def daily(ds: str):
        return run_pipeline("pond_core.examples:daily_revenue", {"ds": ds, ...}, config="prod")

Importing this package is cheap (Prefect loads it at start-up through the `prefect.collections`
entry point to register the `PondConfig` block); the rest loads on first use.
"""

from __future__ import annotations

from typing import Any

from pond_prefect.blocks import PondConfig

__version__ = "0.1.0"

_LAZY = {
    "run_pipeline": "pond_prefect.flows",
    "pond_pipeline": "pond_prefect.flows",
    "run_sql": "pond_prefect.flows",
    "sql_pipeline": "pond_prefect.sql",
    "stage_task": "pond_prefect.stages",
    "run_pond_stage": "pond_prefect.stages",
    "run_service_stage": "pond_prefect.service",
    "StageCache": "pond_prefect.cache",
    "retry_transient_only": "pond_prefect.cache",
    "PrefectTaskLogs": "pond_prefect.worker_logs",
    "backfill": "pond_prefect.backfills",
    "BackfillReport": "pond_prefect.backfills",
    "asset_key": "pond_prefect.assets",
}

__all__ = ["PondConfig", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pond_prefect' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
