"""PondServiceTrigger: wait in the triggerer for a stage that a pond service runs.

The deferring task has submitted the stage and exited; this trigger polls the service over
HTTP with the asyncio client (never blocking the triggerer's loop), writes the stage's log
lines as they come (Airflow files a trigger's log lines in the task's log), and fires one event
with the final status. Its state is the service's: a trigger re-created after a triggerer
restart polls the same attempt again (it re-logs the lines from the start). The token comes
from the connection when the trigger runs, never from its serialized form.

A service that does not answer (restarting, a network cut) is polled again for up to
`unavailable_timeout` seconds; then the event is a retryable failure, so Airflow's retry
re-submits the stage, which attaches to its attempt or resumes from the committed tasks.

Marking the deferred task failed (or success) makes Airflow call `on_kill`, which cancels the
stage on the service: its Ray tasks stop within seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from pond_airflow.hooks.pond import PondHook
from pond_airflow.service import TERMINAL, event, state_of
from pond_core import api

CANCEL_WAIT_SECONDS = 20.0


class PondServiceTrigger(BaseTrigger):
    """Poll a pond service for one stage attempt; fire one event with its final status.

    :param run_id: the pond run.
    :param stage_id: the stage's id in the plan.
    :param stage: the stage's name (for log lines).
    :param pond_conn_id: the connection naming the service (its password is the token).
    :param poll_interval: seconds between status requests.
    :param unavailable_timeout: seconds the service may not answer before the event says so.
    """

    def __init__(
        self,
        *,
        run_id: str,
        stage_id: str,
        stage: str,
        pond_conn_id: str = PondHook.default_conn_name,
        hook_params: dict[str, Any] | None = None,
        poll_interval: float = 1.0,
        unavailable_timeout: float = 600.0,
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self.stage_id = stage_id
        self.stage = stage
        self.pond_conn_id = pond_conn_id
        self.hook_params = dict(hook_params or {})
        self.poll_interval = poll_interval
        self.unavailable_timeout = unavailable_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "pond_airflow.triggers.service.PondServiceTrigger",
            {
                "run_id": self.run_id,
                "stage_id": self.stage_id,
                "stage": self.stage,
                "pond_conn_id": self.pond_conn_id,
                "hook_params": self.hook_params,
                "poll_interval": self.poll_interval,
                "unavailable_timeout": self.unavailable_timeout,
            },
        )

    async def _client(self) -> Any:
        return await PondHook(self.pond_conn_id, **self.hook_params).async_service_client()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        self.log.info("pond run %s: waiting for stage %s on the pond service", self.run_id, self.stage)
        async with await self._client() as client:
            offset, answered = 0, time.monotonic()
            while True:
                try:
                    status = await client.status(self.run_id, self.stage_id, log_offset=offset)
                except api.PondServiceUnavailableError as exc:
                    if time.monotonic() - answered > self.unavailable_timeout:
                        yield TriggerEvent(self._unavailable(str(exc)))
                        return
                    self.log.warning("pond service unavailable, polling again: %s", exc)
                    await asyncio.sleep(self.poll_interval)
                    continue
                answered = time.monotonic()
                for line in status.logs:
                    self.log.info("%s", line)
                offset = max(offset, status.log_offset)  # where the next poll starts
                state = state_of(status)
                if state in TERMINAL or state == "unknown":
                    # unknown: the service lost the attempt (it restarted); the task re-submits the
                    # same request, whose new attempt resumes from the committed tasks.
                    yield TriggerEvent(event(status))
                    return
                await asyncio.sleep(self.poll_interval)

    def _unavailable(self, message: str) -> dict[str, Any]:
        error = {"type": "PondServiceUnavailableError", "message": message, "retryable": True, "checks": None}
        return {"kind": "pond-service", "state": "failed", "run_id": self.run_id, "stage_id": self.stage_id, "stage": self.stage, "error": error}

    async def on_kill(self) -> None:
        """The deferred task was marked failed or success: stop the stage on the service."""
        async with await self._client() as client:
            status = await client.cancel(self.run_id, self.stage_id)
            self.log.info("pond run %s: stage %s cancelled on the pond service (%s)", self.run_id, self.stage, state_of(status))
            deadline = time.monotonic() + CANCEL_WAIT_SECONDS
            while state_of(status) not in TERMINAL | {"unknown"} and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                status = await client.status(self.run_id, self.stage_id, log_offset=1 << 30)  # the state, not the log
        if state_of(status) not in TERMINAL:
            self.log.warning("pond stage %s of run %s: the service did not confirm the cancel within %.0fs", self.stage, self.run_id, CANCEL_WAIT_SECONDS)
