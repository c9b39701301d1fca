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

import collections
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
from collections.abc import Iterator, Sequence
from typing import Any

from pond_core.errors import PondNodeLostError, PondOutOfMemoryError
from pond_core.execute.batches import PondBatchInterruptedError, TaskOutcome, portable_error
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

    def run_batch(self, specs: Sequence[TaskSpec], hooks: Sequence[Any], owner_job: str) -> Iterator[TaskOutcome]:
        """Run small tasks one after another, yielding each one's outcome as it ends (a Ray
        streaming generator: the driver commits each task while the next runs). A task that
        fails is yielded as its error and the batch goes on: the driver retries that task alone."""
        import ray

        from pond_core.execute.executors import run_hooked
        from pond_core.execute.ray_support import running_record

        node = ray.get_runtime_context().get_node_id()
        self._busy = True
        finished = threading.Event()
        threading.Thread(target=self._exit_if_owner_dies, args=(owner_job, finished), name="pond-worker-owner", daemon=True).start()
        try:
            for spec in specs:
                try:
                    with running_record(spec, node):
                        yield TaskOutcome(dataclasses.replace(run_hooked(spec, hooks, self._db), node=node))
                except Exception as exc:
                    yield TaskOutcome(None, portable_error(exc))
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
    """Tasks waiting for a worker, run by one call: one task, or a batch of small ones."""

    items: list[tuple[TaskSpec, cf.Future[TaskResult]]]
    hooks: tuple[Any, ...]
    batch: bool

    @property
    def threads(self) -> int:
        return max(spec.threads for spec, _ in self.items)

    @property
    def reserved_bytes(self) -> int:  # a batch's tasks run one after another
        return max(spec.reserved_bytes for spec, _ in self.items)

    @property
    def avoid_node(self) -> str | None:
        return self.items[0][0].avoid_node if not self.batch else None


@dataclasses.dataclass
class _Running:
    """One worker call in flight: its tasks, and how many of them it has answered."""

    items: list[tuple[TaskSpec, cf.Future[TaskResult]]]
    node: _Node
    slot: str
    actor: Any
    threads: int
    reserved_bytes: int
    batch: bool
    answered: int = 0
    killed: bool = False  # pond kills its worker (then never given another call)
    since: float = dataclasses.field(default_factory=time.time)  # when its current task started (about)


class WarmPool:
    """The driver's side: finds or starts warm workers and places its tasks on them."""

    def __init__(self, ray: Any, idle_seconds: float) -> None:
        self._ray = ray
        self._idle_seconds = idle_seconds
        self._prefix = f"pond-worker-{_version()}-{environment_digest()}"
        self._lock = threading.RLock()
        self._nodes: dict[str, _Node] = {}
        self._queue: collections.deque[_Queued] = collections.deque()
        self._running: dict[cf.Future[TaskResult], _Running] = {}  # every unanswered task of a call in flight
        self._stopped: set[cf.Future[TaskResult]] = set()  # tasks whose worker pond killed
        self._handles: dict[str, tuple[Any, float]] = {}  # slot -> (actor handle, when its last call ended)
        self._lost: set[str] = set()  # nodes known gone (Ray never reuses a node id)
        self._actor_class = ray.remote(PondWorker)
        self._job = _owner(ray)
        self._refreshed = 0.0
        self.calls = 0  # worker calls started (a batch is one): for tests and benchmarks
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
                node.alive = node_id in alive and node_id not in self._lost
            for node_id, info in alive.items():
                if node_id not in self._nodes and node_id not in self._lost:
                    cpus, memory = int(info["Resources"]["CPU"]), int(info["Resources"].get("memory", 0))
                    slots = [f"{self._prefix}-{node_id[:16]}-{i}" for i in range(cpus)]
                    self._nodes[node_id] = _Node(node_id, cpus, memory, cpus, memory, slots)

    def nodes(self) -> list[_Node]:
        with self._lock:
            return [n for n in self._nodes.values() if n.alive]

    def _actor(self, node: _Node, slot: str) -> Any:
        """The slot's worker: the running one of that name, or a new one pinned to the node.
        A named-actor lookup costs a round trip to Ray's GCS, so the handle is kept while it
        surely still names a live worker: until a call on it fails, and only while our last
        call on it ended less than half the idle time ago (a worker exits after
        `worker_idle_seconds` without a task, which matters to a long-lived driver)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        cached = self._handles.get(slot)
        if cached is not None and time.monotonic() - cached[1] < self._idle_seconds / 2:
            return cached[0]
        handle = self._actor_class.options(
            name=slot, namespace=NAMESPACE, get_if_exists=True, lifetime="detached", num_cpus=0, max_restarts=0,
            max_concurrency=1, scheduling_strategy=NodeAffinitySchedulingStrategy(node.id, soft=False),
        ).remote(self._idle_seconds)
        self._handles[slot] = (handle, time.monotonic())
        return handle

    # -- tasks -------------------------------------------------------------------------------

    def submit(self, spec: TaskSpec, hooks: Sequence[Any]) -> cf.Future[TaskResult]:
        return self._enqueue([spec], hooks, batch=False)[0]

    def submit_batch(self, specs: Sequence[TaskSpec], hooks: Sequence[Any]) -> list[cf.Future[TaskResult]]:
        """Small tasks run by one worker call, one after another, each with its own future."""
        return self._enqueue(specs, hooks, batch=len(specs) > 1)

    def _enqueue(self, specs: Sequence[TaskSpec], hooks: Sequence[Any], batch: bool) -> list[cf.Future[TaskResult]]:
        futures: list[cf.Future[TaskResult]] = []
        for _ in specs:
            future: cf.Future[TaskResult] = cf.Future()
            future.set_running_or_notify_cancel()
            futures.append(future)
        if time.monotonic() - self._refreshed > REFRESH_SECONDS:
            self.refresh()  # nodes added to (or lost from) the cluster meanwhile
        with self._lock:
            self._queue.append(_Queued(list(zip(specs, futures)), tuple(hooks), batch))
            self._dispatch()
        return futures

    def cancel(self, futures: Sequence[cf.Future[TaskResult]]) -> None:
        """Drop queued tasks; kill the workers of running ones (their futures get the error;
        the other unanswered tasks of a killed batch fail as interrupted, and run again)."""
        wanted = set(futures)
        dropped: list[cf.Future[TaskResult]] = []
        with self._lock:
            for queued in list(self._queue):
                keep = [(s, f) for s, f in queued.items if f not in wanted]
                dropped += [f for _, f in queued.items if f in wanted]
                if not keep:
                    self._queue.remove(queued)
                queued.items = keep
            victims = {id(r): r for f, r in self._running.items() if f in wanted}
            self._stopped.update(f for f in wanted if f in self._running)
            for running in victims.values():
                running.killed = True  # even if it ends before the kill lands, its worker is not reused
        for future in dropped:
            future.set_exception(cf.CancelledError("cancelled before it started"))
        for running in victims.values():
            try:
                self._ray.kill(running.actor, no_restart=True)
            except Exception as exc:  # already gone
                log.debug("pond worker %s: kill: %s", running.slot, exc)

    def running_since(self, future: cf.Future[TaskResult]) -> float | None:
        """When the task started running (about: its call's start or its batch-mate's answer),
        or None while it is queued or waits behind another task of its batch."""
        with self._lock:
            running = self._running.get(future)
            if running is None or running.answered >= len(running.items) or running.items[running.answered][1] is not future:
                return None
            return running.since

    def outstanding(self) -> list[cf.Future[TaskResult]]:
        with self._lock:
            return [f for q in self._queue for _, f in q.items] + list(self._running)

    def _dispatch(self) -> None:
        """Start queued calls, in order, while some node has an idle worker (called with the
        lock held). Calls that fit nowhere now stay queued, in order; the scan stops when every
        worker is busy, so a long queue costs nothing per finished task."""
        skipped: list[_Queued] = []
        while self._queue and any(n.alive and n.idle for n in self._nodes.values()):
            queued = self._queue.popleft()
            node = self._place(queued)
            if node is None:
                skipped.append(queued)
                continue
            self._start(queued, node)
        self._queue.extendleft(reversed(skipped))

    def _start(self, queued: _Queued, node: _Node) -> None:
        slot = node.idle.pop()
        threads, reserved = queued.threads, queued.reserved_bytes
        node.free_cpus -= threads
        node.free_memory -= reserved
        actor = self._actor(node, slot)
        running = _Running(queued.items, node, slot, actor, threads, reserved, queued.batch)
        self.calls += 1
        for _, future in queued.items:
            self._running[future] = running
        if queued.batch:
            stream = actor.run_batch.options(num_returns="streaming").remote([s for s, _ in queued.items], queued.hooks, self._job)
            threading.Thread(target=self._drain_batch, args=(running, stream), name="pond-warm-batch", daemon=True).start()
            return
        ((spec, _),) = queued.items
        ref = actor.run.remote(spec, queued.hooks, self._job)
        # Ray runs this callback on the thread that also handles its replies: it must not
        # wait for our lock (held by a submit that may be waiting for Ray to create an actor).
        ref.future().add_done_callback(lambda done, r=running: self._finished.put((r, done)))

    def _place(self, queued: _Queued) -> _Node | None:
        threads, reserved, avoid = queued.threads, queued.reserved_bytes, queued.avoid_node
        nodes = [n for n in self._nodes.values() if n.alive and n.idle and n.free_cpus >= threads]
        if avoid and any(n.id != avoid for n in self.nodes()):
            nodes = [n for n in nodes if n.id != avoid]
        fits = [n for n in nodes if n.free_memory >= reserved or n.free_memory == n.memory]
        return max(fits, key=lambda n: (n.free_cpus, n.free_memory), default=None)

    # -- results -----------------------------------------------------------------------------

    def _drain_batch(self, running: _Running, stream: Any) -> None:
        """Hand each task of a batch its outcome as the worker yields it; then free the worker."""
        error: BaseException | None = None
        try:
            for ref in stream:
                outcome: TaskOutcome = self._ray.get(ref)
                self._answer(running, outcome.result, outcome.error)
        except BaseException as exc:  # the worker died or was stopped mid-batch
            error = exc
        try:
            self._end_call(running, None if error is None else self._task_error(running, error))
        except BaseException as exc:  # never leave a future unanswered
            log.exception("pond: ending a batch of stage %s failed", running.items[0][0].stage_name)
            for _, future in running.items:
                if not future.done():
                    future.set_exception(exc)

    def _answer(self, running: _Running, result: TaskResult | None, error: BaseException | None) -> None:
        """The outcome of the call's next unanswered task."""
        _, future = running.items[running.answered]
        running.answered += 1
        running.since = time.time()  # the worker goes on with the next task
        with self._lock:
            self._running.pop(future, None)
            self._stopped.discard(future)
        if error is not None:
            future.set_exception(error)
        else:
            assert result is not None
            future.set_result(result)

    def _end_call(self, running: _Running, error: BaseException | None) -> None:
        """The call ended: give its worker back (or replace it if it died), and fail the
        tasks it never answered. Only the first of those can have run; the others fail as
        interrupted (retried without counting against them) or as the node's loss."""
        worker_died = running.killed or (error is not None and isinstance(error, (PondNodeLostError, PondOutOfMemoryError, cf.CancelledError)))
        unanswered = running.items[running.answered :]
        with self._lock:
            stopped = {f for _, f in unanswered if f in self._stopped}
            for _, future in unanswered:
                self._running.pop(future, None)
                self._stopped.discard(future)
            node = running.node
            node.free_cpus += running.threads
            node.free_memory += running.reserved_bytes
            if error is not None:  # whatever failed, the next call looks its worker up again
                self._handles.pop(running.slot, None)
            elif running.slot in self._handles:
                self._handles[running.slot] = (running.actor, time.monotonic())
            if not worker_died:
                node.idle.append(running.slot)
            self._dispatch()
        if worker_died:
            threading.Thread(target=self._respawn, args=(running.node, running.slot), daemon=True).start()
        for i, (_, future) in enumerate(unanswered):
            if future in stopped:
                future.set_exception(cf.CancelledError("the task's worker was stopped"))
            elif error is not None and (i == 0 or isinstance(error, PondNodeLostError)) and not isinstance(error, cf.CancelledError):
                future.set_exception(error)  # the task that ran when the worker died, or any task of a lost node
            else:  # pond stopped the worker for another task of the batch, or this one never ran
                why = _first_line(error) if error is not None else "the batch ended without answering it"
                future.set_exception(PondBatchInterruptedError(f"{future_where(running, i)}: its batch's worker stopped first: {why}"))

    def _settle_finished(self) -> None:
        while True:
            running, done = self._finished.get()
            try:
                self._settle(running, done)
            except BaseException as exc:  # never lose the settling thread
                log.exception("pond: settling task %s failed", running.items[0][0].stage_name)
                for _, future in running.items:
                    if not future.done():
                        future.set_exception(exc)

    def _settle(self, running: _Running, done: cf.Future[Any]) -> None:
        try:
            result = done.result()
        except BaseException as exc:
            self._end_call(running, self._task_error(running, exc))
            return
        self._answer(running, result, None)
        self._end_call(running, None)

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

        if isinstance(exc, getattr(self._ray.exceptions, "ActorUnschedulableError", ())):
            # Its worker is pinned to a node Ray no longer has: the node is lost, even while Ray
            # still lists it alive (it notices a dead node only after missed heartbeats).
            self._lost.add(running.node.id)
            self.refresh()
            return PondNodeLostError(f"the node of the task's worker is gone: {_first_line(exc)}")
        if not isinstance(exc, self._ray.exceptions.RayActorError):
            return unwrap_ray_error(exc, self._ray)
        unanswered = running.items[running.answered :]
        with self._lock:
            stopped = any(f in self._stopped for _, f in unanswered)
        if stopped:  # pond killed the worker (to cancel one of its tasks)
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


def future_where(running: _Running, unanswered_index: int) -> str:
    return running.items[running.answered + unanswered_index][0].where


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _version() -> str:
    import pond_core

    return pond_core.__version__.replace(".", "_")

