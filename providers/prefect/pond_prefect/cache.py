"""Caching and retrying stage task runs.

`StageCache` keys a stage task run on the stage's id (a hash of its definition, which includes
its upstream stages' ids), the pond run id (a hash of the plan and of every source file's
path, size and mtime) and a fingerprint of the stage's own source files taken when the task
starts. A rerun over unchanged inputs therefore finds the key and shows the stage as Cached
without touching data; a changed source file invalidates the key.

The run id is part of the key on purpose: a stage served from the cache must have its output
in the same pond run as the stages that read it, so one changed source re-runs every stage of
that run rather than mixing outputs of two runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext
from prefect.utilities.hashing import hash_objects

from pond_core import api
from pond_prefect.fingerprint import source_fingerprint

CACHE_VERSION = 1


@dataclass
class StageCache(CachePolicy):
    """Cache policy for the task of one pond stage (see the module docstring)."""

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        plan = api.PhysicalPlan.from_json(inputs["plan_json"])
        stage = plan.stage(inputs["stage_id"])
        sources = source_fingerprint(stage, inputs["config"].storage_options())
        return hash_objects("pond-stage", CACHE_VERSION, stage.id, inputs["run_id"], sources)


def retry_transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry a pond transient failure, never a data or SQL error.
    Prefect's engines hand the exception in the state's data: read it there, since
    `state.result()` in an async task (service mode) is a coroutine, not a raise."""
    if isinstance(state.data, BaseException):
        return api.is_retryable(state.data)
    try:
        state.result()
    except Exception as exc:
        return api.is_retryable(exc)
    return False
