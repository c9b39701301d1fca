"""Ship log records written inside partition tasks to the Prefect task run that owns them.

A partition task runs on a Ray worker (another process, maybe another machine) or on a pond
thread of the flow process; neither carries Prefect's run context, so Prefect drops their logs.
`PrefectTaskLogs` is a pond executor task hook: around each partition task it attaches Prefect's
API log handler to the root logger, stamps each record with the flow and task run ids, and in a
worker process drains the log queue before the task returns (else the worker's batch is lost,
as prefect-ray's are).

Records pass if their logger lets them through: `pond.*` loggers are set to `level`; set your
own logger's level (or log under `pond.`) for INFO lines from a UDF.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

TASK_LOGGER = "pond.task"


@dataclasses.dataclass(frozen=True)
class PrefectTaskLogs:
    """A picklable hook: `hook(spec)` is a context manager around one partition task."""

    flow_run_id: str
    task_run_id: str
    api_url: str | None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    level: int = logging.INFO
    driver_pid: int = dataclasses.field(default_factory=os.getpid)

    @classmethod
    def for_current_task_run(cls, level: int = logging.INFO) -> PrefectTaskLogs:
        from prefect.context import TaskRunContext
        from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL

        ctx = TaskRunContext.get()
        if ctx is None:
            raise RuntimeError("PrefectTaskLogs.for_current_task_run() must be called inside a Prefect task run")
        return cls(
            flow_run_id=str(ctx.task_run.flow_run_id),
            task_run_id=str(ctx.task_run.id),
            api_url=PREFECT_API_URL.value(),
            api_key=PREFECT_API_KEY.value(),
            level=level,
        )

    def __call__(self, spec: Any) -> contextlib.AbstractContextManager[None]:
        return self._ship(spec)

    @contextlib.contextmanager
    def _ship(self, spec: Any) -> Iterator[None]:
        from prefect.logging.handlers import APILogHandler, APILogWorker
        from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL, temporary_settings

        in_worker = os.getpid() != self.driver_pid
        updates: dict[Any, Any] = {PREFECT_API_URL: self.api_url}
        if self.api_key:
            updates[PREFECT_API_KEY] = self.api_key
        handler = APILogHandler(level=self.level)
        # In the flow process, tasks of other stages log concurrently on other threads.
        handler.addFilter(_Stamp(self.flow_run_id, self.task_run_id, None if in_worker else threading.get_ident()))
        handler.setFormatter(logging.Formatter(f"[{spec.stage_name} p{spec.partition} a{spec.attempt}] %(message)s"))
        pond_logger = logging.getLogger("pond")
        if pond_logger.getEffectiveLevel() > self.level:
            pond_logger.setLevel(self.level)
        root = logging.getLogger()
        log = logging.getLogger(TASK_LOGGER)
        started = time.time()
        with temporary_settings(updates=updates):
            root.addHandler(handler)
            try:
                yield
                log.info("done in %.2fs on %s pid %d", time.time() - started, os.uname().nodename, os.getpid())
            except BaseException as exc:
                log.error("failed after %.2fs on %s pid %d: %s: %s", time.time() - started, os.uname().nodename, os.getpid(), type(exc).__name__, exc)
                raise
            finally:
                root.removeHandler(handler)
                if in_worker:
                    APILogWorker.drain_all(timeout=5)


class _Stamp(logging.Filter):
    def __init__(self, flow_run_id: str, task_run_id: str, thread: int | None) -> None:
        super().__init__()
        self.flow_run_id = flow_run_id
        self.task_run_id = task_run_id
        self.thread = thread

    def filter(self, record: logging.LogRecord) -> bool:
        if self.thread is not None and record.thread != self.thread:
            return False
        if record.name.startswith("prefect"):
            return False  # Prefect's own loggers already reach the API, or must not loop into it
        record.flow_run_id = self.flow_run_id
        record.task_run_id = self.task_run_id
        return True
