"""`StageService`: the service's state — one attempt per (run, stage), each on its own thread.

An attempt is `pond_core.runner.run_stage` with the service's settings (data root, catalog,
Ray) plus the request's run tunables, on the service's one long-lived executor (its warm Ray
workers are shared by every attempt), with a stop event of its own:

- Attach: a submission of a (run, stage) whose attempt is live (queued, running, cancelling)
  returns that attempt (`attached: true`); a client's retry after a network error therefore never
  starts a second attempt. Across processes the stage's lease in the catalog says the same: a
  second driver of a live stage is refused (PondRunBusyError).
- Committed: a stage already committed for the run returns `succeeded` from the submission
  itself (the runner finds its manifest in milliseconds).
- Cancel: sets the attempt's stop event; the runner stops the stage's tasks (the warm pool kills
  the workers running them) within its poll interval and the attempt ends `cancelled`.
- Busy: when another live driver holds the stage's lease (another replica, a `pond run` of the
  same run), the attempt waits for it to end, looking again every 2 s, then finds the stage
  committed (or resumes it): one stage never runs twice at once, and the answer stays right.
- Takeover: submissions are saved under the data root (service/submissions.py) until their
  attempt ends; a restarted service resumes them. A status for an attempt this process does not
  hold is `unknown` (or `succeeded`, when the stage is committed): the client submits again and
  the new attempt takes over the stale lease, resuming from the committed tasks.

Nothing here knows HTTP or Ray Serve (service/app.py and service/server.py do), so the logic is
the same under any front end.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from pond_core.checks import PondCheckError
from pond_core.errors import PondConfigError, PondError, PondInterruptedError, PondRunBusyError, is_retryable
from pond_core.execute.results import StageManifest, StageResult
from pond_core.execute.store import StageStore
from pond_core.io.options import StorageOptions
from pond_core.layout import RunLayout, check_run_id
from pond_core.plan.physical import PhysicalPlan, Stage
from pond_core.service import logs
from pond_core.service.protocol import AttemptState, ServiceError, StageRequest, StageStatus
from pond_core.service.submissions import Submissions
from pond_core.settings import Settings

if TYPE_CHECKING:
    from pond_core.catalog import Catalog
    from pond_core.execute.executors import Executor

log = logging.getLogger("pond.service")
COMMITTED_WAIT_SECONDS = 5.0  # a submission of a committed stage answers once the runner confirms it
MAX_RUNNING = 8  # attempts running at once per service process; more wait `queued`
KEEP_FINISHED_SECONDS = 24 * 3600.0  # a finished attempt's status and log stay this long
BUSY_RETRY_SECONDS = 2.0  # how often an attempt whose stage another driver holds looks again


class ServiceBusyError(PondConfigError):
    """The request conflicts with live work (e.g. dropping a run's intermediates while it runs)."""


@dataclasses.dataclass(eq=False)
class Attempt:
    """One attempt of a (run, stage): its request, state, log and outcome."""

    request: StageRequest
    plan: PhysicalPlan
    stage: Stage
    id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: AttemptState = AttemptState.QUEUED
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    logs: logs.LogBuffer = dataclasses.field(default_factory=logs.LogBuffer)
    result: StageResult | None = None
    error: ServiceError | None = None
    recomputed: tuple[str, ...] = ()
    upstream_results: dict[str, StageResult] = dataclasses.field(default_factory=dict)
    submitted_at: float = dataclasses.field(default_factory=time.time)
    running_at: float | None = None
    finished_at: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.request.run_id, self.stage.id)

    def status(self, log_offset: int = 0, attached: bool = False) -> StageStatus:
        lines, offset = self.logs.read(log_offset)
        return StageStatus(
            attempt=self.id, run_id=self.request.run_id, stage_id=self.stage.id, stage=self.stage.name, state=self.state,
            attached=attached, result=self.result, error=self.error, logs=tuple(lines), log_offset=offset,
            recomputed=self.recomputed, upstream_results=dict(self.upstream_results), submitted_at=self.submitted_at,
            running_at=self.running_at, finished_at=self.finished_at,
        )


def service_error(exc: BaseException) -> ServiceError:
    """What a client learns of an attempt's failure: class, message, retryable, checks."""
    checks = tuple(exc.results) if isinstance(exc, PondCheckError) else None
    message = str(exc) if isinstance(exc, PondError) else f"{type(exc).__name__}: {exc}"
    return ServiceError(type(exc).__name__, message, is_retryable(exc), checks)


class StageService:
    """Attempts of this service process, the executor and catalog they share."""

    def __init__(
        self, settings: Settings, storage: StorageOptions, catalog: Catalog, executor: Executor, *,
        submissions: Submissions | None = None, max_running: int = MAX_RUNNING,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.catalog = catalog
        self.executor = executor
        self.submissions = submissions
        self._attempts: dict[tuple[str, str], Attempt] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_running)
        self._closing = False

    # -- requests ----------------------------------------------------------------------------

    def submit(self, request: StageRequest) -> StageStatus:
        """Start an attempt of the request's stage, or return the live one (attached)."""
        check_run_id(request.run_id)
        plan, stage = _read_plan(request)
        with self._lock:
            if self._closing:
                raise ServiceBusyError("the pond service is shutting down; submit again in a moment")
            live = self._attempts.get((request.run_id, stage.id))
            if live is not None and live.state.live:
                return live.status(attached=True)
            self._forget_old()
            attempt = Attempt(request, plan, stage)
            self._attempts[attempt.key] = attempt
        if self.submissions is not None:
            self.submissions.save(request, stage.id)
        threading.Thread(target=self._run, args=(attempt,), name=f"pond-attempt-{attempt.id}", daemon=True).start()
        if not request.force and self._store(request.run_id).manifest(stage.id) is not None:
            attempt.done.wait(COMMITTED_WAIT_SECONDS)  # committed: the answer is `succeeded` at once
        return attempt.status()

    def status(self, run_id: str, stage_id: str, log_offset: int = 0) -> StageStatus:
        attempt = self._find(run_id, stage_id)
        if attempt is not None:
            return attempt.status(log_offset)
        manifest = self._committed(run_id, stage_id)
        if manifest is not None:  # committed by an attempt this process no longer holds
            result = manifest.result
            return StageStatus(
                attempt="", run_id=run_id, stage_id=manifest.stage_id, stage=result.stage, state=AttemptState.SUCCEEDED,
                result=result, submitted_at=result.started_at, running_at=result.started_at, finished_at=result.finished_at,
            )
        return StageStatus(attempt="", run_id=run_id, stage_id=stage_id, stage="", state=AttemptState.UNKNOWN)

    def cancel(self, run_id: str, stage_id: str) -> StageStatus:
        attempt = self._find(run_id, stage_id)
        if attempt is None:
            return self.status(run_id, stage_id)
        with self._lock:
            if attempt.state.live:
                attempt.state = AttemptState.CANCELLING
                attempt.stop.set()
        return attempt.status(attempt.logs.end)

    def close_run(self, run_id: str, status: str, error: str | None) -> None:
        check_run_id(run_id)
        self.catalog.finish_run(run_id, status, error=error)

    def drop_intermediates(self, run_id: str) -> None:
        from pond_core.stages import drop_intermediates

        check_run_id(run_id)
        with self._lock:
            live = [a.stage.name for a in self._attempts.values() if a.request.run_id == run_id and a.state.live]
        if live:
            raise ServiceBusyError(f"run {run_id} still runs stage(s) {', '.join(sorted(live))}: its intermediates stay until they end")
        drop_intermediates(run_id, self.settings, self.storage)

    def resume_saved(self) -> list[StageStatus]:
        """Submit again every submission a previous service process left unfinished."""
        if self.submissions is None:
            return []
        resumed = []
        for request in self.submissions.load():
            try:
                status = self.submit(dataclasses.replace(request, force=False))  # resume what the first attempt began
            except PondError as exc:
                log.warning("pond service: cannot resume stage %s of run %s: %s", request.stage, request.run_id, exc)
                continue
            log.info("pond service: resumed stage %s of run %s (attempt %s)", status.stage, status.run_id, status.attempt)
            resumed.append(status)
        return resumed

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop every live attempt (their submissions stay saved: the next service resumes them)."""
        with self._lock:
            self._closing = True
            live = [a for a in self._attempts.values() if a.state.live]
        for attempt in live:
            attempt.stop.set()
        deadline = time.monotonic() + timeout
        for attempt in live:
            attempt.done.wait(max(0.0, deadline - time.monotonic()))

    # -- attempts ----------------------------------------------------------------------------

    def _find(self, run_id: str, stage_id: str) -> Attempt | None:
        with self._lock:
            attempt = self._attempts.get((run_id, stage_id))
            if attempt is None:  # a stage name instead of its id
                named = [a for (r, _), a in self._attempts.items() if r == run_id and a.stage.name == stage_id]
                attempt = max(named, key=lambda a: a.submitted_at, default=None)
            return attempt

    def _forget_old(self) -> None:
        """Drop attempts that finished over KEEP_FINISHED_SECONDS ago (called with the lock
        held): a status of their stage then comes from its manifest, or is `unknown`."""
        cutoff = time.time() - KEEP_FINISHED_SECONDS
        for key in [k for k, a in self._attempts.items() if a.finished_at is not None and a.finished_at < cutoff]:
            del self._attempts[key]

    def _store(self, run_id: str) -> StageStore:
        return StageStore.of(RunLayout(self.settings.data_root, run_id), self.storage)

    def _committed(self, run_id: str, stage_id: str) -> StageManifest | None:
        try:
            check_run_id(run_id)
            return self._store(run_id).manifest(stage_id)
        except PondError:
            return None

    def _run(self, attempt: Attempt) -> None:
        logs.tag_thread(attempt.logs)
        try:
            with self._slots:
                self._run_stage(attempt)
        except BaseException as exc:
            self._finish(attempt, exc)
        else:
            self._finish(attempt, None)
        finally:
            logs.tag_thread(None)

    def _run_stage(self, attempt: Attempt) -> None:
        from pond_core.runner import run_stage, upstream_to_recompute

        request = attempt.request
        with self._lock:
            if attempt.stop.is_set():
                raise PondInterruptedError(f"stage {attempt.stage.name} was cancelled before it started")
            attempt.state, attempt.running_at = AttemptState.RUNNING, time.time()
        settings = self.settings.replace(job_id=request.run_id, **request.settings)
        if request.recompute_upstream:
            upstream = upstream_to_recompute(attempt.plan, attempt.stage.id, request.run_id, settings=settings, storage=self.storage)
            attempt.recomputed = tuple(s.name for s in upstream)
            if upstream:
                log.warning("stage %s of run %s: recomputing upstream %s first: their outputs are gone", attempt.stage.name, request.run_id, ", ".join(attempt.recomputed))
        waiting = False
        while True:
            try:
                manifest = run_stage(
                    attempt.plan, attempt.stage.id, request.run_id, settings=settings, storage=self.storage, executor=self.executor,
                    catalog=self.catalog, force=request.force and not waiting, recompute_upstream=request.recompute_upstream,
                    stop=attempt.stop, lineage_scope=request.lineage_scope, on_stage=_collect_upstream(attempt),
                )
                break
            except PondRunBusyError as exc:  # another live driver (a replica, a `pond run`) holds the stage
                if not waiting:
                    log.info("%s; waiting for it to end", exc)
                    waiting = True
                if attempt.stop.wait(BUSY_RETRY_SECONDS):
                    raise PondInterruptedError(f"stage {attempt.stage.name} was cancelled while another driver ran it") from None
        attempt.result = manifest.result

    def _finish(self, attempt: Attempt, error: BaseException | None) -> None:
        with self._lock:
            if error is None:
                attempt.state = AttemptState.SUCCEEDED
            elif attempt.stop.is_set() and isinstance(error, PondInterruptedError):
                attempt.state = AttemptState.CANCELLED
                attempt.error = service_error(error)
            else:
                attempt.state = AttemptState.FAILED
                attempt.error = service_error(error)
                if not isinstance(error, PondError):
                    log.error("pond service: attempt %s of stage %s failed inside pond", attempt.id, attempt.stage.name, exc_info=error)
            attempt.finished_at = time.time()
            closing = self._closing
        if self.submissions is not None and not (closing and attempt.state is AttemptState.CANCELLED):
            try:
                self.submissions.remove(*attempt.key)
            except Exception as exc:  # the next service would resume a finished stage: harmless (it is committed)
                log.warning("pond service: cannot remove the saved submission of %s: %s", attempt.stage.name, exc)
        attempt.done.set()


def _read_plan(request: StageRequest) -> tuple[PhysicalPlan, Stage]:
    """The request's plan and stage; one that cannot be read is a PondConfigError (HTTP 400)."""
    try:
        plan = PhysicalPlan.from_dict(request.plan)
    except PondConfigError:
        raise
    except (PondError, KeyError, TypeError, ValueError) as exc:
        raise PondConfigError(f"pond service request: the plan cannot be read: {exc}") from None
    try:
        return plan, plan.stage(request.stage)
    except KeyError as exc:
        raise PondConfigError(f"pond service request: {exc.args[0]}") from None


def _collect_upstream(attempt: Attempt) -> Callable[[Stage, StageManifest], None]:
    def on_stage(stage: Stage, manifest: StageManifest) -> None:
        if stage.id != attempt.stage.id:
            attempt.upstream_results[stage.id] = manifest.result

    return on_stage
