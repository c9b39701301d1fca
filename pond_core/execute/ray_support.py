"""What both ways of running a task on Ray share: Ray's errors as pond's, and the running
record a long task writes so a speculative copy can be placed away from its node."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from pond_core.errors import PondNodeLostError, PondOutOfMemoryError, PondTransientError
from pond_core.execute.task_spec import TaskSpec


@contextlib.contextmanager
def running_record(spec: TaskSpec, node: str) -> Iterator[None]:
    """While the task runs: after `report_running_after` seconds, say which node it runs on."""
    report = None
    if spec.running_record and spec.report_running_after is not None:
        report = threading.Timer(spec.report_running_after, _write_running_record, (spec, node))
        report.daemon = True
        report.start()
    try:
        yield
    finally:
        if report is not None:
            report.cancel()


def _write_running_record(spec: TaskSpec, node: str) -> None:
    """Say where this attempt runs (best effort: without it a copy may land on the same node)."""
    import json

    from pond_core.io.filesystems import get_filesystem

    record = {"node": node, "host": os.uname().nodename, "pid": os.getpid()}
    try:
        fs = get_filesystem(spec.running_record, spec.storage)
        fs.write_bytes(spec.running_record, json.dumps(record).encode())
    except Exception as exc:  # the task itself must not fail for this
        logging.getLogger("pond.task").warning("%s: could not write its running record: %s", spec.where, exc)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def unwrap_ray_error(exc: BaseException, ray: Any) -> BaseException:
    exceptions = ray.exceptions
    if isinstance(exc, exceptions.RayTaskError):
        cause = exc.as_instanceof_cause()
        inner = getattr(exc, "cause", None)
        return inner if isinstance(inner, Exception) else cause
    if isinstance(exc, (exceptions.NodeDiedError, exceptions.LocalRayletDiedError)):
        return PondNodeLostError(f"the node running the task died ({type(exc).__name__}): {_first_line(exc)}")
    if isinstance(exc, exceptions.OutOfMemoryError):
        return PondOutOfMemoryError(f"Ray's memory monitor killed the task's worker: {_first_line(exc)}")
    if isinstance(exc, exceptions.WorkerCrashedError):
        # Ray cannot tell why the process died; by far the most common cause is the kernel's
        # OOM killer, so the retry gets more memory (bounded, so a crashing task still ends).
        return PondOutOfMemoryError(f"the task's worker process died (most often the kernel's OOM killer): {_first_line(exc)}")
    if isinstance(exc, exceptions.TaskCancelledError):
        return cf.CancelledError(str(exc))
    if isinstance(exc, exceptions.RayError):
        return PondTransientError(f"Ray error: {type(exc).__name__}: {exc}")
    return exc
