"""PondStageTrigger: wait, without blocking the triggerer, for a detached pond worker.

Every storage read runs in a thread (`asyncio.to_thread`). The trigger holds no state that
matters across triggerer restarts: the outcome and the heartbeat live in pond storage, so a
trigger re-created elsewhere picks up where this one stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from pond_airflow.hooks.pond import PondHook


class PondStageTrigger(BaseTrigger):
    """Poll a pond worker's status file; fire one event with its outcome.

    :param state_prefix: where the worker reports (see `pond_airflow.worker`).
    :param data_root: the pond storage root holding it.
    :param heartbeat_timeout: seconds without a new heartbeat after which the worker is
        presumed lost (a transient failure, so Airflow retries and the stage resumes).
    """

    def __init__(
        self,
        *,
        state_prefix: str,
        data_root: str,
        pond_conn_id: str = PondHook.default_conn_name,
        hook_params: dict[str, Any] | None = None,
        poll_interval: float = 5.0,
        heartbeat_timeout: float = 60.0,
    ) -> None:
        super().__init__()
        self.state_prefix = state_prefix
        self.data_root = data_root
        self.pond_conn_id = pond_conn_id
        self.hook_params = dict(hook_params or {})
        self.poll_interval = poll_interval
        self.heartbeat_timeout = heartbeat_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "pond_airflow.triggers.stage.PondStageTrigger",
            {
                "state_prefix": self.state_prefix,
                "data_root": self.data_root,
                "pond_conn_id": self.pond_conn_id,
                "hook_params": self.hook_params,
                "poll_interval": self.poll_interval,
                "heartbeat_timeout": self.heartbeat_timeout,
            },
        )

    async def _state(self) -> Any:
        from pond_airflow.worker import state_files

        settings = await PondHook(self.pond_conn_id, **self.hook_params).asettings()
        return await asyncio.to_thread(state_files, self.data_root, self.state_prefix, settings.storage_options())

    async def run(self) -> AsyncIterator[TriggerEvent]:
        state = await self._state()
        beat, seen_at = None, time.monotonic()
        while True:
            status = await asyncio.to_thread(state.status)
            if status is not None:
                yield TriggerEvent(status)
                return
            current = await asyncio.to_thread(state.heartbeat)
            if current != beat:
                beat, seen_at = current, time.monotonic()
            elif time.monotonic() - seen_at > self.heartbeat_timeout:
                yield TriggerEvent(
                    {
                        "status": "lost",
                        "error": f"the pond worker sent no heartbeat for {self.heartbeat_timeout:.0f}s (killed, or its machine went away)",
                        "retryable": True,
                    }
                )
                return
            await asyncio.sleep(self.poll_interval)

    async def on_kill(self) -> None:
        """The task was killed by a user: tell the worker to stop, and wait until it has."""
        state = await self._state()
        await asyncio.to_thread(state.cancel)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if await asyncio.to_thread(state.status) is not None:
                return
            await asyncio.sleep(0.5)
        self.log.warning("pond worker at %s did not confirm the cancel within 20s", self.state_prefix)
