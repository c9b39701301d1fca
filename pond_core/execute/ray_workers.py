"""Warm pond workers on a Ray cluster: long-lived actors that every new driver reuses.

Ray starts fresh worker processes for every job (every `ray.init` of a new driver), and each
pays Python start-up and the imports of DuckDB, pyarrow and pond: 1-3 s before a driver's first
task runs. An Airflow stage task or a Prefect flow run is a new driver each time, so on a
running cluster that cost was paid per stage. Warm workers are detached actors, one per CPU of
each node, named by pond's version and a digest of the code and runtime environment
(`pond-worker-<version>-<env>-<node>-<slot>` in namespace `pond`): a new driver finds them by
name and its first task costs milliseconds. A driver whose pond or environment differs gets
workers of its own and never runs on another version's. A worker exits after
`worker_idle_seconds` without a task. Each keeps one DuckDB database for its tasks
(execute/task_db.py: nothing carries over from one task to the next).

Actors reserve no Ray resources (a warm worker holding CPUs would block every other job), so
the driver places tasks itself, as Ray would: on the node with the most free CPUs that has an
idle worker, the task's threads free and its memory unreserved by this driver's running tasks,
and never on the node a speculative copy must avoid. Retries with more memory wait for room
like Ray's reservations make them. Drivers running at once each account for their own tasks;
a worker runs one task at a time, so CPUs are never over-committed, memory can be (bounded by
pond's out-of-memory retries).

Stopping a task (speculation's loser, a cancelled run) kills its worker, as `ray.cancel(force=True)`
kills a task's: a replacement starts on demand. A worker that dies is a node lost when its
node is gone, else (most often the kernel's OOM killer) out of memory.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from pond_core.errors import PondNodeLostError, PondOutOfMemoryError
from pond_core.execute.results import TaskResult
from pond_core.execute.task_spec import TaskSpec

log = logging.getLogger("pond.ray")
NAMESPACE = "pond"
REFRESH_SECONDS = 5.0  # how stale the driver's list of nodes may get
RESPAWN_SECONDS = 10.0  # the longest wait for Ray to release a dead worker's name
OWNER_CHECK_SECONDS = 1.0  # how often a running task's worker checks that its driver is alive


def environment_digest() -> str:
    """What a worker must share with a driver to run its tasks: pond's version and code, Python,
    and the paths imports resolve from."""
    import pond_core

    package = os.path.dirname(os.path.abspath(pond_core.__file__))
    files = []
    for folder, _dirs, names in os.walk(package):
        for name in sorted(names):
            if name.endswith(".py"):
                st = os.stat(os.path.join(folder, name))
                files.append([os.path.relpath(os.path.join(folder, name), package), st.st_size, st.st_mtime_ns])
    identity = [pond_core.__version__, sys.version, sys.executable, sorted(files), os.environ.get("PYTHONPATH", "")]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:12]


class PondWorker:
    """The actor: runs one task at a time in a reused DuckDB database, and exits when idle."""

    def __init__(self, idle_seconds: float) -> None:
        from pond_core.execute.task_db import TaskDatabase

        self._db = TaskDatabase()
        self._idle_seconds = idle_seconds
        self._last = time.monotonic()
        self._busy = False
        threading.Thread(target=self._exit_when_idle, name="pond-worker-idle", daemon=True).start()

    def run(self, spec: TaskSpec, hooks: Sequence[Any], owner_job: str) -> TaskResult:
        import ray

        from pond_core.execute.ray_support import running_record

        node = ray.get_runtime_context().get_node_id()
        self._busy = True
        finished = threading.Event()
        threading.Thread(target=self._exit_if_owner_dies, args=(owner_job, finished), name="pond-worker-owner", daemon=True).start()
        try:
            with running_record(spec, node):
                from pond_core.execute.executors import run_hooked

                return dataclasses.replace(run_hooked(spec, hooks, self._db), node=node)
        finally:
            finished.set()
            self._busy, self._last = False, time.monotonic()

    def _exit_if_owner_dies(self, owner_job: str, finished: threading.Event) -> None:
        """A plain Ray task dies with the driver that submitted it; a detached actor would go on
        with a dead driver's task (an Airflow task killed, a driver lost), holding its CPUs and
        writing files nobody commits. So the worker exits, as Ray would kill the task's process."""
        import ray

        # A driver that is itself an actor (a replica of the pond service) is named "job:actor":
        # its job outlives it (Serve's controller owns it), so the actor's death is what counts.
        job, _, actor = owner_job.partition(":")
        gcs = ray._private.worker.global_worker.gcs_client  # type: ignore[attr-defined]  # (set once connected)
        while not finished.wait(OWNER_CHECK_SECONDS):
            try:
                jobs = gcs.get_all_job_info(job_or_submission_id=job, skip_submission_job_info_field=True,
                                            skip_is_running_tasks_field=True, timeout=10)
                actor_dead = bool(actor) and ray._private.state.state.actor_table(actor).get("State") == "DEAD"
            except Exception as exc:  # the GCS briefly unreachable: look again
                log.debug("pond worker: cannot look up job %s: %s", owner_job, exc)
                continue
            if (jobs and all(info.is_dead for info in jobs.values())) or actor_dead:
                log.warning("pond worker %d: the driver (job %s) of its task is gone: exiting", os.getpid(), owner_job)
                os._exit(1)

    def identity(self) -> dict[str, Any]:
        """Who serves the tasks (for tests and `pond` diagnostics)."""
        import ray

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "databases_opened": self._db.opened}

    def _exit_when_idle(self) -> None:
        while True:
            time.sleep(min(5.0, self._idle_seconds / 4))
            if not self._busy and time.monotonic() - self._last > self._idle_seconds:
                log.info("pond worker %d idle for %.0f s: exiting", os.getpid(), self._idle_seconds)
                os._exit(0)


@dataclasses.dataclass
class _Node:
    id: str
    cpus: int
    memory: int
    free_cpus: int
    free_memory: int
    idle: list[str] = dataclasses.field(default_factory=list)  # slot names not running our task
    alive: bool = True


@dataclasses.dataclass
class _Queued:
    spec: TaskSpec
    hooks: tuple[Any, ...]
    future: cf.Future[TaskResult]


@dataclasses.dataclass
class _Running:
    spec: TaskSpec
    node: _Node
    slot: str
    actor: Any
    future: cf.Future[TaskResult]


class WarmPool:
    """The driver's side: finds or starts warm workers and places its tasks on them."""

    def __init__(self, ray: Any, idle_seconds: float) -> None:
        self._ray = ray
        self._idle_seconds = idle_seconds
        self._prefix = f"pond-worker-{_version()}-{environment_digest()}"
        self._lock = threading.RLock()
        self._nodes: dict[str, _Node] = {}
        self._queue: list[_Queued] = []
        self._running: dict[cf.Future[TaskResult], _Running] = {}
        self._stopped: set[cf.Future[TaskResult]] = set()  # tasks whose worker pond killed
        self._actor_class = ray.remote(PondWorker)
        self._job = _owner(ray)
        self._refreshed = 0.0
        self._finished: queue.SimpleQueue[tuple[_Running, cf.Future[Any]]] = queue.SimpleQueue()
        threading.Thread(target=self._settle_finished, name="pond-warm-settle", daemon=True).start()
        self.refresh()

    # -- cluster -----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Learn the alive nodes that run tasks (new ones, and which died)."""
        alive = {n["NodeID"]: n for n in self._ray.nodes() if n.get("Alive") and n["Resources"].get("CPU")}
        self._refreshed = time.monotonic()
        with self._lock:
            for node_id, node in self._nodes.items():
                node.alive = node_id in alive
            for node_id, info in alive.items():
                if node_id not in self._nodes:
                    cpus, memory = int(info["Resources"]["CPU"]), int(info["Resources"].get("memory", 0))
                    slots = [f"{self._prefix}-{node_id[:16]}-{i}" for i in range(cpus)]
                    self._nodes[node_id] = _Node(node_id, cpus, memory, cpus, memory, slots)

    def nodes(self) -> list[_Node]:
        with self._lock:
            return [n for n in self._nodes.values() if n.alive]

    def _actor(self, node: _Node, slot: str) -> Any:
        """The slot's worker: the running one of that name, or a new one pinned to the node."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return self._actor_class.options(
            name=slot, namespace=NAMESPACE, get_if_exists=True, lifetime="detached", num_cpus=0, max_restarts=0,
            max_concurrency=1, scheduling_strategy=NodeAffinitySchedulingStrategy(node.id, soft=False),
        ).remote(self._idle_seconds)

    # -- tasks -------------------------------------------------------------------------------

    def submit(self, spec: TaskSpec, hooks: Sequence[Any]) -> cf.Future[TaskResult]:
        future: cf.Future[TaskResult] = cf.Future()
        future.set_running_or_notify_cancel()
        if time.monotonic() - self._refreshed > REFRESH_SECONDS:
            self.refresh()  # nodes added to (or lost from) the cluster meanwhile
        with self._lock:
            self._queue.append(_Queued(spec, tuple(hooks), future))
            self._dispatch()
        return future

    def cancel(self, futures: Sequence[cf.Future[TaskResult]]) -> None:
        """Drop queued tasks; kill the workers of running ones (their futures get the error)."""
        wanted = set(futures)
        with self._lock:
            for queued in [q for q in self._queue if q.future in wanted]:
                self._queue.remove(queued)
                queued.future.set_exception(cf.CancelledError("cancelled before it started"))
            victims = [r for f, r in self._running.items() if f in wanted]
            self._stopped.update(r.future for r in victims)
        for running in victims:
            try:
                self._ray.kill(running.actor, no_restart=True)
            except Exception as exc:  # already gone
                log.debug("pond worker %s: kill: %s", running.slot, exc)

    def outstanding(self) -> list[cf.Future[TaskResult]]:
        with self._lock:
            return [q.future for q in self._queue] + list(self._running)

    def _dispatch(self) -> None:
        """Place queued tasks while some node has room (called with the lock held)."""
        for queued in list(self._queue):
            node = self._place(queued.spec)
            if node is None:
                continue
            self._queue.remove(queued)
            slot = node.idle.pop()
            node.free_cpus -= queued.spec.threads
            node.free_memory -= queued.spec.reserved_bytes
            actor = self._actor(node, slot)
            running = _Running(queued.spec, node, slot, actor, queued.future)
            self._running[queued.future] = running
            ref = actor.run.remote(queued.spec, queued.hooks, self._job)
            # Ray runs this callback on the thread that also handles its replies: it must not
            # wait for our lock (held by a submit that may be waiting for Ray to create an actor).
            ref.future().add_done_callback(lambda done, r=running: self._finished.put((r, done)))

    def _place(self, spec: TaskSpec) -> _Node | None:
        nodes = [n for n in self._nodes.values() if n.alive and n.idle and n.free_cpus >= spec.threads]
        if spec.avoid_node and any(n.id != spec.avoid_node for n in self.nodes()):
            nodes = [n for n in nodes if n.id != spec.avoid_node]
        fits = [n for n in nodes if n.free_memory >= spec.reserved_bytes or n.free_memory == n.memory]
        return max(fits, key=lambda n: (n.free_cpus, n.free_memory), default=None)

    def _settle_finished(self) -> None:
        while True:
            running, done = self._finished.get()
            try:
                self._settle(running, done)
            except BaseException as exc:  # never lose the settling thread
                log.exception("pond: settling task %s failed", running.spec.stage_name)
                if not running.future.done():
                    running.future.set_exception(exc)

    def _settle(self, running: _Running, done: cf.Future[Any]) -> None:
        error: BaseException | None = None
        result: TaskResult | None = None
        try:
            result = done.result()
        except BaseException as exc:
            error = self._task_error(running, exc)
        worker_died = error is not None and isinstance(error, (PondNodeLostError, PondOutOfMemoryError, cf.CancelledError))
        with self._lock:
            self._running.pop(running.future, None)
            self._stopped.discard(running.future)
            node = running.node
            node.free_cpus += running.spec.threads
            node.free_memory += running.spec.reserved_bytes
            if not worker_died:
                node.idle.append(running.slot)
            self._dispatch()
        if worker_died:
            threading.Thread(target=self._respawn, args=(running.node, running.slot), daemon=True).start()
        if error is not None:
            running.future.set_exception(error)
        else:
            assert result is not None
            running.future.set_result(result)

    def _respawn(self, node: _Node, slot: str) -> None:
        """Give a dead worker's slot back once Ray has released its name (a new worker of that
        name then starts on demand)."""
        deadline = time.monotonic() + RESPAWN_SECONDS
        while time.monotonic() < deadline:
            try:
                self._ray.get_actor(slot, namespace=NAMESPACE)
            except ValueError:
                break
            time.sleep(0.1)
        with self._lock:
            node.idle.append(slot)
            self._dispatch()

    def _task_error(self, running: _Running, exc: BaseException) -> BaseException:
        from pond_core.execute.ray_support import unwrap_ray_error

        if not isinstance(exc, self._ray.exceptions.RayActorError):
            return unwrap_ray_error(exc, self._ray)
        if running.future in self._stopped:
            return cf.CancelledError("the task's worker was stopped")
        self.refresh()
        # Unreachable (its node's raylet is gone) or dead with its node: a lost node.
        unreachable = isinstance(exc, getattr(self._ray.exceptions, "ActorUnavailableError", ()))
        if unreachable or not running.node.alive or "its node" in str(exc):
            running.node.alive = running.node.alive and not unreachable
            return PondNodeLostError(f"the node running the task died: {_first_line(exc)}")
        # Ray cannot tell why the process died; by far the most common cause is the kernel's
        # OOM killer, so the retry gets more memory (bounded, so a crashing task still ends).
        return PondOutOfMemoryError(f"the task's worker process died (most often the kernel's OOM killer): {_first_line(exc)}")


def _owner(ray: Any) -> str:
    """This driver as its tasks' workers watch it: its job id, and ":<actor id>" when the driver
    is an actor (a pond service replica)."""
    context = ray.get_runtime_context()
    actor = context.get_actor_id()
    return f"{context.get_job_id()}:{actor}" if actor else context.get_job_id()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _version() -> str:
    import pond_core

    return pond_core.__version__.replace(".", "_")

