"""Reading what a flow run left in Prefect, through Prefect's API only."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import Artifact, Log, TaskRun


def task_runs(flow_run_id: UUID) -> dict[str, TaskRun]:
    """The flow run's task runs by name."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name: r for r in runs}


def artifacts(flow_run_id: UUID) -> list[Artifact]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))


def logs(flow_run_id: UUID, until: Callable[[list[Log]], bool] = lambda _: True, timeout: float = 15.0) -> list[Log]:
    """The flow run's logs, polled until `until(logs)` holds (logs arrive in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            found = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)
        if until(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def events(
    name: str, flow_run_id: UUID, since: Any, until: Callable[[list[dict[str, Any]]], bool] = lambda _: True, timeout: float = 15.0
) -> list[dict[str, Any]]:
    """Events named `name` related to a flow run, via POST /events/filter, polled until `until(events)`."""
    deadline = time.monotonic() + timeout
    body = {
        "filter": {
            "event": {"name": [name]},
            "related": {"id": [f"prefect.flow-run.{flow_run_id}"]},
            "occurred": {"since": since.isoformat()},
            "order": "ASC",
        },
        "limit": 50,
    }
    while True:
        with get_client(sync_client=True) as client:
            response = client.request("POST", "/events/filter", json=body)
            response.raise_for_status()
            found = response.json()["events"]
        if until(found) or time.monotonic() > deadline:
            return found
        time.sleep(1.0)
