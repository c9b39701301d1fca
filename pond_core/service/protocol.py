"""The pond service's HTTP API as types: a stage request, an attempt's state and status, errors.

JSON exists only on the wire; both sides of it (the client in an orchestrator without Ray, the
service on the cluster) build and read these dataclasses, so one module says what a field means
and a round trip through JSON loses nothing. Nothing here imports Ray or an HTTP library.

A request carries only what is the client's to decide: the compiled plan, the run id, the stage
and per-run tunables (`RUN_TUNABLES`). Where data lives, which catalog records it, the executor
and every credential come from the service's own settings: a request naming one is refused
(`check_tunables`), so a client can neither redirect the service's writes nor leak a secret into
a request log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from pond_core.checks import CheckResult
from pond_core.errors import PondConfigError
from pond_core.execute.results import StageResult
from pond_core.settings import ALIASES, BY_NAME, unknown_setting
from pond_core.textenum import TextEnum

API_PREFIX = "/v1"

# The settings a client may choose per run: how tasks run, never where or with which secrets.
RUN_TUNABLES = ("memory_limit", "max_task_memory", "task_threads", "max_retries", "speculation", "sql_strict", "keep_intermediates")


class AttemptState(TextEnum):
    """Where one attempt of a (run, stage) is. `unknown`: this service holds no attempt for it
    (it never saw it, or it restarted): re-submit the same request to take the stage over."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        """The attempt ended: it will not change any more."""
        return self in (AttemptState.SUCCEEDED, AttemptState.FAILED, AttemptState.CANCELLED)

    @property
    def live(self) -> bool:
        """The attempt still runs (a submission of its (run, stage) attaches to it)."""
        return self in (AttemptState.QUEUED, AttemptState.RUNNING, AttemptState.CANCELLING)


def check_tunables(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run tunables of a request, parsed (sizes to bytes, flags to bools; old aliases
    renamed); a location, executor, secret or unknown setting is a PondConfigError naming it."""
    out: dict[str, Any] = {}
    for key, value in (settings or {}).items():
        name = ALIASES.get(key, key)
        if name not in BY_NAME:
            raise unknown_setting(key, list(RUN_TUNABLES), "pond service request")
        if name not in RUN_TUNABLES:
            raise PondConfigError(
                f"pond service request: setting {key!r} cannot be sent to the service; the service's own settings decide "
                f"where data lives, the catalog, the executor and every credential. A request may set only: {', '.join(RUN_TUNABLES)}"
            )
        if value is not None:
            out[name] = BY_NAME[name].parse(value, "pond service request:")
    return out


@dataclasses.dataclass(frozen=True)
class StageRequest:
    """`POST /v1/stages`: run (or attach to) one stage of a compiled plan for a run."""

    plan: Mapping[str, Any]  # PhysicalPlan.to_dict(): the service parses and checks it
    run_id: str
    stage: str  # a name or an id
    force: bool = False
    recompute_upstream: bool = True
    lineage_scope: str | None = None
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": dict(self.plan), "run_id": self.run_id, "stage": self.stage, "force": self.force,
            "recompute_upstream": self.recompute_upstream, "lineage_scope": self.lineage_scope, "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, d: Any) -> StageRequest:
        """A request body, checked field by field (a wrong one is a PondConfigError naming it)."""
        if not isinstance(d, Mapping):
            raise PondConfigError("pond service request: the body must be a JSON object")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise PondConfigError(f"pond service request: unknown field {unknown[0]!r}")
        plan = _field(d, "plan", Mapping)
        settings = _field(d, "settings", Mapping, default={})
        return cls(
            plan=plan, run_id=_field(d, "run_id", str), stage=_field(d, "stage", str),
            force=_field(d, "force", bool, default=False), recompute_upstream=_field(d, "recompute_upstream", bool, default=True),
            lineage_scope=_field(d, "lineage_scope", str, default=None), settings=check_tunables(settings),
        )


@dataclasses.dataclass(frozen=True)
class CloseRunRequest:
    """`POST /v1/runs/{run_id}/close`: an orchestrator's verdict on a run (api.close_run)."""

    status: str  # "success" | "failed"
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "error": self.error}

    @classmethod
    def from_dict(cls, d: Any) -> CloseRunRequest:
        if not isinstance(d, Mapping):
            raise PondConfigError("pond service request: the body must be a JSON object")
        status = _field(d, "status", str)
        if status not in ("success", "failed"):
            raise PondConfigError(f"pond service request: status must be 'success' or 'failed', not {status!r}")
        return cls(status, _field(d, "error", str, default=None))


def _field(d: Mapping[str, Any], name: str, kind: type, *, default: Any = ...) -> Any:
    value = d.get(name, default)
    if value is ...:
        raise PondConfigError(f"pond service request: field {name!r} is missing")
    if value is None and default is None:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise PondConfigError(f"pond service request: field {name!r} must be {_KIND_WORDS.get(kind, kind.__name__)}, not {type(value).__name__}")
    return value


_KIND_WORDS: dict[type, str] = {str: "a string", bool: "true or false", Mapping: "a JSON object"}


@dataclasses.dataclass(frozen=True)
class ServiceError:
    """Why an attempt failed: the pond error's class name, its message, whether a retry may
    cure it (`PondTransientError`), and a failed check's results."""

    type: str
    message: str
    retryable: bool
    checks: tuple[CheckResult, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type, "message": self.message, "retryable": self.retryable,
            "checks": [c.to_dict() for c in self.checks] if self.checks is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ServiceError:
        checks = d.get("checks")
        return cls(
            str(d["type"]), str(d["message"]), bool(d["retryable"]),
            tuple(CheckResult.from_dict(c) for c in checks) if checks is not None else None,
        )


@dataclasses.dataclass(frozen=True)
class StageStatus:
    """One attempt of a (run, stage) on the service, with its log lines from `log_offset` asked.

    `log_offset` is where the next poll starts (lines before it were sent); `recomputed` are the
    upstream stages the attempt ran first (their results in `upstream_results`)."""

    attempt: str
    run_id: str
    stage_id: str
    stage: str
    state: AttemptState
    attached: bool = False
    result: StageResult | None = None
    error: ServiceError | None = None
    logs: tuple[str, ...] = ()
    log_offset: int = 0
    recomputed: tuple[str, ...] = ()
    upstream_results: Mapping[str, StageResult] = dataclasses.field(default_factory=dict)
    submitted_at: float = 0.0
    running_at: float | None = None
    finished_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt, "run_id": self.run_id, "stage_id": self.stage_id, "stage": self.stage,
            "state": self.state.value, "attached": self.attached,
            "result": self.result.to_dict() if self.result is not None else None,
            "error": self.error.to_dict() if self.error is not None else None,
            "logs": list(self.logs), "log_offset": self.log_offset, "recomputed": list(self.recomputed),
            "upstream_results": {sid: r.to_dict() for sid, r in self.upstream_results.items()},
            "submitted_at": self.submitted_at, "running_at": self.running_at, "finished_at": self.finished_at,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StageStatus:
        return cls(
            attempt=str(d["attempt"]), run_id=str(d["run_id"]), stage_id=str(d["stage_id"]), stage=str(d["stage"]),
            state=AttemptState(d["state"]), attached=bool(d.get("attached", False)),
            result=StageResult.from_dict(d["result"]) if d.get("result") else None,
            error=ServiceError.from_dict(d["error"]) if d.get("error") else None,
            logs=tuple(str(line) for line in d.get("logs") or ()), log_offset=int(d.get("log_offset") or 0),
            recomputed=tuple(d.get("recomputed") or ()),
            upstream_results={sid: StageResult.from_dict(r) for sid, r in (d.get("upstream_results") or {}).items()},
            submitted_at=float(d.get("submitted_at") or 0.0), running_at=_time(d.get("running_at")), finished_at=_time(d.get("finished_at")),
        )

    def with_logs(self, logs: Sequence[str], offset: int) -> StageStatus:
        return dataclasses.replace(self, logs=tuple(logs), log_offset=offset)


def _time(value: Any) -> float | None:
    return None if value is None else float(value)
