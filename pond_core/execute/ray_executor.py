"""RayExecutor: partition tasks on a Ray cluster (or a local Ray started on demand).

Two ways to run a task: as a plain Ray task (a new driver pays Ray's worker start: Ray does
not share worker processes between jobs), or on pond's warm workers (execute/ray_workers.py:
long-lived actors that every new driver finds and reuses). Warm is the default when connecting
to a cluster by address, where each orchestrator task is a new driver. A worker that dies is a
transient error, so the stage retries the task elsewhere.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pond_core.errors import PondConfigError
from pond_core.execute.executors import TaskHook, _Outstanding, _remove_dirs, available_memory, run_hooked
from pond_core.execute.ray_support import running_record, unwrap_ray_error
from pond_core.execute.results import TaskResult
from pond_core.execute.task_spec import TaskSpec

if TYPE_CHECKING:
    from pond_core.execute.ray_workers import WarmPool

NODE_ID_LABEL = "ray.io/node-id"  # a label Ray gives every node


_ray_lock = threading.Lock()


class RayExecutor:
    name = "ray"
    stops_running_tasks = True  # ray.cancel(force=True) (or killing a warm worker) stops a running task

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        runtime_env: dict | None = None,
        task_hooks: Sequence[TaskHook] = (),
        warm: bool = False,
        idle_seconds: float = 600.0,
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
                    raise PondConfigError(connection_error(address, exc)) from exc
                self._owns_ray = True
            else:
                self._owns_ray = False
        self._ray = ray
        self._remote = ray.remote(_ray_run_task)
        self._remote_remove_dirs = ray.remote(_remove_dirs)
        self.task_hooks: list[TaskHook] = list(task_hooks)
        self._outstanding = _Outstanding()
        self._largest_node_memory: int | None = None
        self._warm: WarmPool | None = None
        if warm:
            from pond_core.execute.ray_workers import WarmPool

            self._warm = WarmPool(ray, idle_seconds)

    def cores(self) -> int:
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def memory_bytes(self) -> int:
        return sum(self._task_node_memory()) or available_memory()

    def max_task_memory(self) -> int:
        return max(self._task_node_memory(), default=0) or available_memory()

    def _largest_node(self) -> int:
        if self._largest_node_memory is None:
            self._largest_node_memory = self.max_task_memory()
        return self._largest_node_memory

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
        if self._warm is not None:
            return self._warm.submit(spec, tuple(self.task_hooks))
        # Pond retries (elsewhere, with more memory) itself, so Ray must not. SPREAD puts a
        # stage's tasks on all nodes rather than filling the driver's node first.
        options: dict[str, Any] = {
            "num_cpus": spec.threads, "max_retries": 0, "scheduling_strategy": "SPREAD",
            "name": f"{spec.stage_name}[{spec.partition}]",
        }
        if spec.memory_bytes:
            # The DuckDB limit plus what it does not bound, but never more than a node has (a
            # task at max_task_memory would otherwise never be scheduled).
            options["memory"] = min(spec.reserved_bytes, max(spec.memory_bytes, self._largest_node()))
        if spec.avoid_node and any(n["NodeID"] != spec.avoid_node for n in self._task_nodes()):
            # A straggler's node is often the reason it straggles; a copy there would race itself.
            options["label_selector"] = {NODE_ID_LABEL: f"!{spec.avoid_node}"}
        remote: Any = self._remote.options(**options)
        ref = remote.remote(spec, tuple(self.task_hooks))
        return self._outstanding.track(_RayFuture(ref, self._ray), ref)

    @property
    def batches_tasks(self) -> bool:
        """Small tasks share a worker call on warm workers (execute/batches.py); plain Ray tasks
        each pay their own call (Ray would run a batch's tasks at once, beyond its one reservation)."""
        return self._warm is not None

    def submit_batch(self, specs: list[TaskSpec]) -> list[cf.Future]:
        """Run `specs` one after another in one warm worker call; one future per task."""
        if self._warm is None:
            return [self.submit(spec) for spec in specs]
        return list(self._warm.submit_batch(specs, tuple(self.task_hooks)))

    def running_since(self, future: cf.Future) -> float | None:
        """When a batched task started (None: not yet), for speculation on stragglers."""
        return self._warm.running_since(future) if self._warm is not None else None

    def cancel(self, futures: list[cf.Future]) -> None:
        if self._warm is not None:
            self._warm.cancel(futures)
            return
        for f in futures:
            ref = self._outstanding.pop(f)
            if ref is not None:
                self._ray.cancel(ref, force=True)

    def cancel_all(self) -> None:
        if self._warm is not None:
            self._warm.cancel(self._warm.outstanding())
            return
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


def _ray_run_task(spec: TaskSpec, hooks: Sequence[TaskHook] = ()) -> TaskResult:
    import ray

    node = ray.get_runtime_context().get_node_id()
    with running_record(spec, node):
        return dataclasses.replace(run_hooked(spec, hooks), node=node)


def connection_error(address: str | None, exc: BaseException) -> str:
    """What went wrong connecting to a Ray cluster, and what to do about it."""
    causes: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(causes) < 10:
        causes.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = " ".join(f"{type(c).__name__}: {c}" for c in causes)
    if any(type(c).__name__ == "AuthenticationError" for c in causes) or "InvalidAuthToken" in text or "auth token" in text.lower():
        return (
            f"cannot connect to the Ray cluster at {address}: the cluster requires token authentication "
            "(Ray 2.60 turns it on by default for `ray start`) and this driver has no valid token. Give the "
            "driver the cluster's token: copy the head's ~/.ray/auth_token to this machine's ~/.ray/auth_token, "
            "or set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to it, with RAY_AUTH_MODE=token; or start the cluster "
            "with RAY_AUTH_MODE=disabled. See docs/deployment.md"
        )
    return f"cannot connect to the Ray cluster at {address}: {exc}"


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
            self.set_exception(unwrap_ray_error(exc, ray))


