"""How each stage's task run ends, as the flow run's page shows it.

Prefect leaves the task run of a stage whose upstream failed `Pending` / `NotReady` under the
name it was created with (`join_customers_orders-738`): it resolves a task run's name only once
its inputs resolve, which a failed upstream prevents. A grey bar with a random suffix tells
nobody what happened, so after the stages settle the driver names each such task run after its
stage and ends it `Cancelled`, saying which upstream stage failed.

A stage served from Prefect's cache did no work and its task run never ran, so it has no
artifact of its own: the driver writes its stage artifact onto the Cached task run, saying
that the output was committed earlier and where.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.futures import PrefectFuture
from prefect.states import Cancelled, State

from pond_core import api
from pond_core.api import PhysicalPlan, Stage
from pond_prefect.artifacts import stage_artifact_key, stage_done_markdown


@dataclass(frozen=True)
class StageOutcome:
    """What a stage's task run ended as, and its result when it completed (fresh or Cached)."""

    state: State
    result: dict[str, Any] | None
    task_run_id: UUID | None

    @property
    def state_name(self) -> str:
        return self.state.name or str(self.state.type)

    @property
    def cached(self) -> bool:
        return self.state.name == "Cached"


class StageRunLike(Protocol):
    """A stage's task run as `settle` reads it: a PrefectFuture, or service mode's StageRun."""

    @property
    def state(self) -> State: ...

    @property
    def task_run_id(self) -> UUID | None: ...


def settle(plan: PhysicalPlan, futures: dict[str, PrefectFuture] | dict[str, StageRunLike]) -> dict[str, StageOutcome]:
    """Every stage's outcome, with stages that could not run ended as Cancelled under their names."""
    outcomes: dict[str, StageOutcome] = {}
    for stage in plan.stages:
        future = futures[stage.id]
        state = future.state
        if not state.is_final() and future.task_run_id is not None:
            state = _cancel_not_run(stage, future.task_run_id, _blocking_upstream(plan, stage, outcomes))
        result = state.result(raise_on_failure=False) if state.is_completed() else None
        outcomes[stage.id] = StageOutcome(state, result if isinstance(result, dict) else None, future.task_run_id)
    return outcomes


def _blocking_upstream(plan: PhysicalPlan, stage: Stage, outcomes: dict[str, StageOutcome]) -> str:
    """The upstream stage that kept `stage` from running (plan order puts upstreams first)."""
    for sid in stage.depends_on:
        outcome = outcomes.get(sid)
        if outcome is not None and not outcome.state.is_completed():
            return plan.stage(sid).name
    return "an upstream stage"


def _cancel_not_run(stage: Stage, task_run_id: UUID, upstream: str) -> State:
    """Rename the task run to its stage and end it Cancelled. Prefect 3 records a task run's own
    updates from events, asynchronously: one still in flight (the engine's NotReady, carrying
    the suffixed name) can land after this PATCH and undo it, so the rename is checked and
    applied again until it holds (a few seconds at most)."""
    state: State = Cancelled(message=f"not run: upstream stage {upstream} did not complete")
    with get_client(sync_client=True) as client:
        for _ in range(_RENAME_TRIES):
            try:
                client.request("PATCH", "/task_runs/{id}", path_params={"id": task_run_id}, json={"name": stage.name}).raise_for_status()
                client.set_task_run_state(task_run_id, state, force=True)
                if all(_holds(client, task_run_id, stage.name) for _ in range(2)):  # two reads apart: settled
                    break
            except (PrefectHTTPStatusError, ObjectNotFound) as exc:
                if isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code != 404:
                    raise
                time.sleep(_RENAME_SETTLE_SECONDS)  # the task run's creation event is not recorded yet
    return state


def _holds(client: Any, task_run_id: UUID, name: str) -> bool:
    time.sleep(_RENAME_SETTLE_SECONDS)
    run = client.read_task_run(task_run_id)
    return bool(run.name == name and run.state is not None and run.state.is_cancelled())


_RENAME_TRIES = 20
_RENAME_SETTLE_SECONDS = 0.5


def write_cached_artifact(plan: PhysicalPlan, stage: Stage, outcome: StageOutcome, flow_run_id: UUID | None) -> None:
    """The stage artifact of a Cached stage, on its own task run (see the module docstring)."""
    from prefect.client.schemas.actions import ArtifactCreate

    result = outcome.result or {}
    note = (
        f"**Cached**: no work in this flow run; the output was committed by an earlier run of pond run "
        f"`{result.get('run_id')}`.\n\n" + stage_done_markdown(result)
    )
    artifact = ArtifactCreate(
        key=stage_artifact_key(plan, stage), type="markdown", data=api.stage_markdown(plan, stage, note),
        description=f"pond stage {stage.name} (Cached)", flow_run_id=flow_run_id, task_run_id=outcome.task_run_id,
    )
    with get_client(sync_client=True) as client:
        client.create_artifact(artifact)
