"""Stages run by a pond service, seen from an Airflow task: the request, the wait, the outcome.

In service mode (a connection with `service_url`, docs/airflow.md) a task sends the compiled
plan, the pond run id, the stage, `force` and the run tunables; the service runs the stage on
its cluster through pond's ordinary runner. The task (or, when deferrable, the triggerer) polls
the stage's status, writes its log lines into the task log, and turns the final status into
what Airflow should do: a result for XCom, a retryable error (only when the service says the
failure is retryable), a failure without retry, or a checks failure naming the checks.

The final status travels as plain JSON (a trigger event), so the same code reads it whether the
task waited itself or a trigger waited for it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from pond_core import api

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


@dataclasses.dataclass(frozen=True)
class StageRequest:
    """One stage of one pond run, as the service takes it (`POST /v1/stages`)."""

    plan: api.PhysicalPlan
    run_id: str
    stage: str
    force: bool
    lineage_scope: str | None
    settings: dict[str, Any]

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `ServiceClient.submit` (also its `submit_again`)."""
        return {
            "plan": self.plan, "run_id": self.run_id, "stage": self.stage, "force": self.force,
            "recompute_upstream": True, "lineage_scope": self.lineage_scope, "settings": self.settings,
        }


def state_of(status: api.StageStatus) -> str:
    state = status.state
    return str(getattr(state, "value", state))


def event(status: api.StageStatus) -> dict[str, Any]:
    """The final status as a trigger event / plain JSON, without its log lines (already logged)."""
    payload = dict(status.to_dict())
    payload["state"] = state_of(status)
    payload.pop("logs", None)
    payload["kind"] = "pond-service"
    return payload


def run(client: api.ServiceClient, request: StageRequest, log: logging.Logger | Any, poll_interval: float, on_attempt: Any = None) -> dict[str, Any]:
    """Submit `request`, write the stage's log lines to `log` while it runs, return its final
    status as an event (see `event`). `on_attempt(run_id, stage_id)` is called once the service
    has the attempt (the task's on_kill cancels that one); `on_attempt(None, None)` when done."""
    status = submitted(client, request, log)
    if on_attempt is not None:
        on_attempt(request.run_id, status.stage_id)
    try:
        final = client.wait(
            request.run_id, status.stage_id, poll_interval=poll_interval, on_log=lambda line: log.info("%s", line),
            submit_again=request.kwargs(),
        )
    finally:
        if on_attempt is not None:
            on_attempt(None, None)
    return event(final)


def submitted(client: api.ServiceClient, request: StageRequest, log: logging.Logger | Any) -> api.StageStatus:
    """Submit `request` and say so in the task log; return the service's first status."""
    status = client.submit(**request.kwargs())
    log.info(
        "pond run %s: stage %s %s on the pond service (attempt %s, %s)", request.run_id, request.stage,
        "attached to the running attempt" if status.attached else "submitted", status.attempt, state_of(status),
    )
    return status


@dataclasses.dataclass(frozen=True)
class Failure:
    """A stage that did not succeed, as the task reports it."""

    message: str
    retryable: bool
    checks: Sequence[api.CheckResult] | None

    @classmethod
    def of(cls, payload: dict[str, Any], stage: str, run_id: str) -> Failure:
        error = payload.get("error") or {}
        state = payload.get("state")
        what = f"{error.get('type')}: {error.get('message')}" if error else "no error reported"
        if state == "cancelled":
            what = error.get("message") or "the stage was cancelled on the pond service"
        checks = error.get("checks")
        return cls(
            message=f"pond stage {stage} of run {run_id} {state} on the pond service: {what}",
            retryable=bool(error.get("retryable")) and state == "failed",
            checks=[api.CheckResult.from_dict(c) for c in checks] if checks else None,
        )


def recomputed_note(stage: str, recomputed: list[str], run_id: str) -> str:
    """The log line for upstream stages the service ran first (their outputs were gone)."""
    many = len(recomputed) > 1
    return (
        f"pond stage {stage}: the service recomputed upstream stage{'s' if many else ''} {', '.join(recomputed)} first: "
        f"{'their' if many else 'its'} output{'s' if many else ''} of pond run {run_id} {'were' if many else 'was'} gone "
        "(dropped when the run's final stage finished, or cleaned), as when this task is cleared alone"
    )
