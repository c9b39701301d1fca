"""Cancelling a flow run cancels its pond work.

Prefect stops a cancelled flow run by signalling its process, and only when a runner or worker
started it; partition tasks already on Ray keep running either way. `CancelGuard` closes both
gaps: a watcher thread polls the flow run's state and, once it is Cancelling or Cancelled,
cancels every executor the run's stages registered; leaving the guard with an exception (the
runner's termination signal, Ctrl-C) does the same.

In service mode a stage registers its attempt on the pond service instead of an executor
(`pond_prefect.service.ServiceStageCancel`): cancelling it asks the service to stop the stage,
whose Ray tasks stop within seconds. One watcher thread serves the whole flow run, however many
stages wait.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import Any, Protocol
from uuid import UUID

log = logging.getLogger("pond_prefect")


class Cancellable(Protocol):
    """What a running stage registers: a pond executor, or its attempt on the pond service."""

    def cancel_all(self) -> Any: ...


class CancelGuard:
    def __init__(self, flow_run_id: UUID | str | None, poll_seconds: float = 1.0) -> None:
        self.flow_run_id = flow_run_id
        self.poll_seconds = poll_seconds
        self.cancelled = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._executors: set[Cancellable] = set()
        self._thread: threading.Thread | None = None

    def register(self, executor: Cancellable) -> None:
        with self._lock:
            self._executors.add(executor)
        if self.cancelled.is_set():
            executor.cancel_all()

    def unregister(self, executor: Cancellable) -> None:
        with self._lock:
            self._executors.discard(executor)

    def cancel_all(self, reason: str) -> None:
        first = not self.cancelled.is_set()
        self.cancelled.set()
        with self._lock:
            executors = list(self._executors)
        if first:
            log.warning("cancelling pond work of flow run %s (%s): %d stage(s) running", self.flow_run_id, reason, len(executors))
        for executor in executors:
            try:
                executor.cancel_all()
            except Exception as exc:  # best effort: one executor failing must not spare the others
                log.warning("could not cancel an executor: %s", exc)

    def __enter__(self) -> CancelGuard:
        if self.flow_run_id is not None:
            # The watcher needs this context's Prefect settings (the API URL) to read the state.
            context = contextvars.copy_context()
            self._thread = threading.Thread(target=context.run, args=(self._watch,), name="pond-cancel-watch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._stop.set()
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.cancel_all(f"{exc_type.__name__}")
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            while not self._stop.wait(self.poll_seconds):
                try:
                    state = client.read_flow_run(self.flow_run_id).state  # type: ignore[arg-type]
                except Exception as exc:  # the API may blip; keep watching
                    log.debug("cancel watcher: cannot read flow run state: %s", exc)
                    continue
                if state is not None and (state.is_cancelling() or state.is_cancelled()):
                    self.cancel_all(f"flow run is {state.name}")
                    return
