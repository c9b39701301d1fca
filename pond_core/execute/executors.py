"""Executors: where partition tasks run. Both hand back `concurrent.futures.Future`s.

- `LocalExecutor` runs tasks on threads of this process. DuckDB releases the GIL, so tasks run
  truly in parallel, and a task costs a thread hand-off rather than a process start: the default
  on one machine (see bench/README.md for the measurement behind that choice).
- `RayExecutor` runs each task as a Ray task on a local Ray (started on demand) or the cluster
  at an address. A worker that dies is reported as a transient error, so the stage runner
  retries the task elsewhere.

Both take `task_hooks`: callables `hook(spec) -> context manager` entered around every task where
it runs (a thread here, or a Ray worker), e.g. an orchestrator shipping the task's log records
to its own API. A hook must pickle (a module-level function, or a partial of one over plain
data). `cancel_all()` stops every task the executor still has outstanding, so an orchestrator
that cancels a run stops its work too.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import logging
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pond_core.errors import PondConfigError, PondNodeLostError, PondOutOfMemoryError, PondTransientError
from pond_core.execute.results import TaskResult
from pond_core.execute.task import run_task
from pond_core.execute.task_spec import TaskSpec

if TYPE_CHECKING:
    from pond_core.settings import Settings

TaskHook = Callable[[TaskSpec], contextlib.AbstractContextManager[Any]]

NODE_ID_LABEL = "ray.io/node-id"  # a label Ray gives every node


class Executor(Protocol):
    name: str
    stops_running_tasks: bool  # cancel() stops a task that already runs (needed for speculation)

    def cores(self) -> int:
        """CPU cores available to tasks in total."""

    def memory_bytes(self) -> int:
        """Memory available to tasks in total."""

    def max_task_memory(self) -> int:
        """The most memory one task can be given: what the largest machine has."""

    def max_task_cores(self) -> int:
        """The most CPU cores one task can be given: what the largest machine has."""

    def machines(self) -> int:
        """How many machines run tasks (1: everything stays in one machine's memory and disk)."""

    def submit(self, spec: TaskSpec) -> cf.Future:
        """Start one task; the future's result is its TaskResult."""

    def cancel(self, futures: list[cf.Future]) -> None:
        """Stop tasks that have not finished (best effort)."""

    def cancel_all(self) -> None:
        """Stop every task submitted here that has not finished (best effort)."""

    def remove_dirs(self, paths: list[str]) -> None:
        """Remove these local directories on every machine that runs tasks (best effort): the
        spill directories of tasks whose process was killed before it could remove its own."""

    def shutdown(self) -> None:
        """Release workers; idempotent."""


def make_executor(settings: Settings, task_hooks: Sequence[TaskHook] = ()) -> Executor:
    """The executor the settings ask for: Ray (a local one, or the cluster at ray_address) or threads."""
    if settings.use_ray:
        return RayExecutor(settings.ray_address, settings.num_executors, task_hooks=task_hooks)
    return LocalExecutor(settings.num_executors, task_hooks=task_hooks)


class LocalExecutor:
    name = "local"
    stops_running_tasks = False

    def __init__(self, num_workers: int | None = None, task_hooks: Sequence[TaskHook] = ()) -> None:
        self._cores = num_workers or os.cpu_count() or 1
        self._pool = cf.ThreadPoolExecutor(max_workers=self._cores, thread_name_prefix="pond-task")
        self.task_hooks: list[TaskHook] = list(task_hooks)
        self._outstanding = _Outstanding()

    def cores(self) -> int:
        return self._cores

    def memory_bytes(self) -> int:
        return available_memory()

    def max_task_memory(self) -> int:
        return available_memory()

    def max_task_cores(self) -> int:
        return self._cores

    def machines(self) -> int:
        return 1

    def submit(self, spec: TaskSpec) -> cf.Future:
        return self._outstanding.track(self._pool.submit(run_hooked, spec, tuple(self.task_hooks)), None)

    def cancel(self, futures: list[cf.Future]) -> None:
        for f in futures:
            f.cancel()

    def cancel_all(self) -> None:
        # A task already running on a thread finishes; only queued ones are stopped.
        self.cancel([f for f, _ in self._outstanding.items()])

    def remove_dirs(self, paths: list[str]) -> None:
        _remove_dirs(paths)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


_ray_lock = threading.Lock()


class RayExecutor:
    name = "ray"
    stops_running_tasks = True  # ray.cancel(force=True) kills the task's worker

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        runtime_env: dict | None = None,
        task_hooks: Sequence[TaskHook] = (),
    ) -> None:
        import ray

        with _ray_lock:
            if not ray.is_initialized():
                if address:
                    _check_reachable(address)
                    _check_driver_is_a_node(address)
                try:
                    if address:
                        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
                    else:
                        ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env=runtime_env)
                except ConnectionError as exc:
                    raise PondConfigError(f"cannot connect to the Ray cluster at {address}: {exc}") from exc
                self._owns_ray = True
            else:
                self._owns_ray = False
        self._ray = ray
        self._remote = ray.remote(_ray_run_task)
        self._remote_remove_dirs = ray.remote(_remove_dirs)
        self.task_hooks: list[TaskHook] = list(task_hooks)
        self._outstanding = _Outstanding()

    def cores(self) -> int:
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def memory_bytes(self) -> int:
        return sum(self._task_node_memory()) or available_memory()

    def max_task_memory(self) -> int:
        return max(self._task_node_memory(), default=0) or available_memory()

    def max_task_cores(self) -> int:
        # A task runs on one node: asking for more CPUs than any node has never schedules.
        return max((int(n["Resources"]["CPU"]) for n in self._task_nodes()), default=0) or 1

    def machines(self) -> int:
        return max(1, len(self._task_nodes()))

    def _task_node_memory(self) -> list[int]:
        return [int(n["Resources"].get("memory", 0)) for n in self._task_nodes()]

    def _task_nodes(self) -> list[dict[str, Any]]:
        """Ray's entry of each alive node that runs tasks (a head started with no CPUs only
        schedules, so its memory is no task's)."""
        return [n for n in self._ray.nodes() if n.get("Alive") and n["Resources"].get("CPU")]

    def submit(self, spec: TaskSpec) -> cf.Future:
        # Pond retries (elsewhere, with more memory) itself, so Ray must not. SPREAD puts a
        # stage's tasks on all nodes rather than filling the driver's node first.
        options: dict[str, Any] = {
            "num_cpus": spec.threads, "max_retries": 0, "scheduling_strategy": "SPREAD",
            "name": f"{spec.stage_name}[{spec.partition}]",
        }
        if spec.memory_bytes:
            options["memory"] = spec.memory_bytes
        if spec.avoid_node and any(n["NodeID"] != spec.avoid_node for n in self._task_nodes()):
            # A straggler's node is often the reason it straggles; a copy there would race itself.
            options["label_selector"] = {NODE_ID_LABEL: f"!{spec.avoid_node}"}
        remote: Any = self._remote.options(**options)
        ref = remote.remote(spec, tuple(self.task_hooks))
        return self._outstanding.track(_RayFuture(ref, self._ray), ref)

    def cancel(self, futures: list[cf.Future]) -> None:
        for f in futures:
            ref = self._outstanding.pop(f)
            if ref is not None:
                self._ray.cancel(ref, force=True)

    def cancel_all(self) -> None:
        self.cancel([f for f, _ in self._outstanding.items()])

    def remove_dirs(self, paths: list[str], timeout: float = 30.0) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        refs = [
            self._remote_remove_dirs.options(num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(paths)
            for node in self._task_nodes()
        ]
        self._ray.wait(refs, num_returns=len(refs), timeout=timeout)  # a node that fails to answer keeps its leftovers

    def shutdown(self) -> None:
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns_ray = False


def run_hooked(spec: TaskSpec, hooks: Sequence[TaskHook] = ()) -> TaskResult:
    """Run one task inside its hooks' contexts."""
    with contextlib.ExitStack() as stack:
        for hook in hooks:
            stack.enter_context(hook(spec))
        return run_task(spec)


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable on Linux: no import cost), else psutil's."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return psutil.virtual_memory().available


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a `host:port` nobody answers at (ray.init would wait a long time)."""
    import socket

    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or address == "auto":
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as exc:
        raise PondConfigError(f"cannot reach the Ray cluster at {address}: {exc}") from exc


def _check_driver_is_a_node(address: str) -> None:
    """Fail fast when this machine runs no raylet. Ray attaches a `HEAD:PORT` driver to a raylet
    on the driver's own machine (found by its process); without one, `ray.init` waits 60 s and
    then blames a crashed Ray instance. Ray Client addresses (`ray://`) need no local node."""
    if address.startswith("ray://") or address == "auto":
        return
    import psutil

    if any(p.info["name"] == "raylet" for p in psutil.process_iter(["name"])):
        return
    raise PondConfigError(
        f"this machine is not a node of the Ray cluster at {address}, and Ray drives a cluster only from one of "
        f"its nodes. Join it without CPUs first: `ray start --address={address} --num-cpus=0` (a node that runs "
        f"no task), or connect through Ray Client with a ray://HEAD:10001 address"
    )


def _remove_dirs(paths: list[str]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _ray_run_task(spec: TaskSpec, hooks: Sequence[TaskHook] = ()) -> TaskResult:
    import ray

    node = ray.get_runtime_context().get_node_id()
    report = None
    if spec.running_record and spec.report_running_after is not None:
        report = threading.Timer(spec.report_running_after, _write_running_record, (spec, node))
        report.daemon = True
        report.start()
    try:
        return dataclasses.replace(run_hooked(spec, hooks), node=node)
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


class _Outstanding:
    """Futures not finished yet (and what cancels each), forgotten as they finish."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[cf.Future, Any] = {}

    def track(self, future: cf.Future, handle: Any) -> cf.Future:
        with self._lock:
            self._items[future] = handle
        future.add_done_callback(self.pop)
        return future

    def pop(self, future: cf.Future) -> Any:
        with self._lock:
            return self._items.pop(future, None)

    def items(self) -> list[tuple[cf.Future, Any]]:
        with self._lock:
            return list(self._items.items())


class _RayFuture(cf.Future):
    """A Future fed by a Ray object ref; a lost worker becomes a transient error."""

    def __init__(self, ref: Any, ray: Any) -> None:
        super().__init__()
        self.set_running_or_notify_cancel()
        inner = ref.future()
        inner.add_done_callback(lambda f: self._settle(f, ray))

    def _settle(self, inner: cf.Future, ray: Any) -> None:
        try:
            self.set_result(inner.result())
        except Exception as exc:  # unwrap Ray's wrappers to the task's own error
            self.set_exception(_unwrap_ray_error(exc, ray))


def _unwrap_ray_error(exc: BaseException, ray: Any) -> BaseException:
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
