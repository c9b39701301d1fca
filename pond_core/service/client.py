"""`ServiceClient` and `AsyncServiceClient`: an orchestrator's side of the pond service, on httpx.

    client = ServiceClient("http://pond-head:8000", token)
    client.submit(plan, "daily-2026-11-20", "write_revenue")
    status = client.wait("daily-2026-11-20", stage_id, on_log=print, submit_again={"plan": plan})

Importable without Ray (the client venv of an Airflow or Prefect worker has none). Every call
but `health()` sends `Authorization: Bearer <token>`; the token is never put in a message, a
log line or an exception.

Faults: a connection error, a timeout or a 5xx answer is retried here with backoff (every call
is idempotent on the service: submitting a (run, stage) again attaches to its live attempt), and
after `retry_seconds` becomes `PondServiceUnavailableError` (retryable). A 401 is
`PondServiceAuthError` at once; another 4xx is a `PondConfigError` with the service's message. A
failed stage is not an exception: `status().state` is `failed` and `.error` says why.

`wait(..., submit_again=...)` also survives the service restarting mid-stage: a status of
`unknown` (the service no longer knows the attempt) makes it submit the same request again, and
the new attempt takes over the stage's stale lease and resumes from the committed tasks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from pond_core.errors import PondConfigError
from pond_core.service.errors import PondServiceAuthError, PondServiceUnavailableError
from pond_core.service.protocol import API_PREFIX, AttemptState, CloseRunRequest, StageRequest, StageStatus, check_tunables

log = logging.getLogger("pond.service.client")

OnLog = Callable[[str], None]
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 2.0


@dataclasses.dataclass(frozen=True)
class _Call:
    """One HTTP request of the API, independent of sync or async transport."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    auth: bool = True


def _plan_json(plan: Any) -> dict[str, Any]:
    """A PhysicalPlan, its dict or its JSON text, as the dict the service reads."""
    if hasattr(plan, "to_dict"):
        return dict(plan.to_dict())
    if isinstance(plan, str):
        try:
            parsed = json.loads(plan)
        except json.JSONDecodeError as exc:
            raise PondConfigError(f"the plan given to the pond service client is not plan JSON: {exc}") from None
        plan = parsed
    if not isinstance(plan, Mapping):
        raise PondConfigError(f"the plan must be a PhysicalPlan, its dict or its JSON, not {type(plan).__name__}")
    return dict(plan)


def _submit_call(
    plan: Any, run_id: str, stage: str, *, force: bool = False, recompute_upstream: bool = True,
    lineage_scope: str | None = None, settings: Mapping[str, Any] | None = None,
) -> _Call:
    request = StageRequest(
        plan=_plan_json(plan), run_id=run_id, stage=stage, force=force, recompute_upstream=recompute_upstream,
        lineage_scope=lineage_scope, settings=check_tunables(settings),  # a refused setting fails here, before the network
    )
    return _Call("POST", f"{API_PREFIX}/stages", request.to_dict())


def _status_call(run_id: str, stage_id: str, log_offset: int) -> _Call:
    return _Call("GET", f"{API_PREFIX}/stages/{run_id}/{stage_id}", params={"log_offset": log_offset})


def _cancel_call(run_id: str, stage_id: str) -> _Call:
    return _Call("POST", f"{API_PREFIX}/stages/{run_id}/{stage_id}/cancel")


def _close_call(run_id: str, status: str, error: str | None) -> _Call:
    if status not in ("success", "failed"):
        raise PondConfigError(f"close_run: status must be 'success' or 'failed', not {status!r}")
    return _Call("POST", f"{API_PREFIX}/runs/{run_id}/close", CloseRunRequest(status, error).to_dict())


def _drop_call(run_id: str) -> _Call:
    return _Call("POST", f"{API_PREFIX}/runs/{run_id}/drop-intermediates")


_HEALTH = _Call("GET", f"{API_PREFIX}/health", auth=False)


class _Base:
    """What both clients share: the URL, the token's header, and reading answers."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0, retry_seconds: float = 30.0) -> None:
        if not url or "://" not in url:
            raise PondConfigError(f"the pond service URL must look like http://host:port, not {url!r}")
        self.url = url.rstrip("/")
        self._token = token or ""
        self.timeout = timeout
        self.retry_seconds = retry_seconds

    def __repr__(self) -> str:  # never the token
        return f"{type(self).__name__}({self.url!r})"

    def _headers(self, call: _Call) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if call.auth else {}

    def _answer(self, call: _Call, response: httpx.Response) -> Any:
        """The JSON of a 2xx answer; a 4xx as the error it stands for (5xx are retried before)."""
        if response.status_code == 401:
            raise PondServiceAuthError(
                f"the pond service at {self.url} refused the token (HTTP 401: {_message(response)}); check the token of the "
                "Airflow connection (its password) or of the Prefect block (service_token)"
            )
        if response.status_code >= 400:
            raise PondConfigError(f"the pond service at {self.url} refused {call.method} {call.path} (HTTP {response.status_code}): {_message(response)}")
        return response.json()

    def _unavailable(self, call: _Call, why: str) -> PondServiceUnavailableError:
        return PondServiceUnavailableError(f"the pond service at {self.url} did not answer {call.method} {call.path} for {self.retry_seconds:.0f} s: {why}")


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, Mapping) and isinstance(body.get("error"), str):
        return body["error"]
    return str(body)[:300]


def _retryable(response: httpx.Response) -> bool:
    return response.status_code >= 500


def _backoff(attempt: int) -> float:
    return min(MAX_BACKOFF, FIRST_BACKOFF * 2**attempt) * (0.5 + random.random() / 2)


class ServiceClient(_Base):
    """The pond service from a synchronous caller (an Airflow hook, a Prefect sync task)."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0, retry_seconds: float = 30.0) -> None:
        super().__init__(url, token, timeout, retry_seconds)
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, call: _Call) -> Any:
        deadline = time.monotonic() + self.retry_seconds
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, json=call.body, params=call.params, headers=self._headers(call))
                if not _retryable(response):
                    return self._answer(call, response)
                why = f"HTTP {response.status_code}: {_message(response)}"
            except httpx.TransportError as exc:
                why = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise self._unavailable(call, why)
            log.info("pond service %s %s: %s; trying again", call.method, call.path, why)
            time.sleep(_backoff(attempt))
            attempt += 1

    def submit(
        self, plan: Any, run_id: str, stage: str, *, force: bool = False, recompute_upstream: bool = True,
        lineage_scope: str | None = None, settings: Mapping[str, Any] | None = None,
    ) -> StageStatus:
        """Run `stage` of `plan` for `run_id` on the service, or attach to its live attempt."""
        call = _submit_call(plan, run_id, stage, force=force, recompute_upstream=recompute_upstream, lineage_scope=lineage_scope, settings=settings)
        return StageStatus.from_dict(self._call(call))

    def status(self, run_id: str, stage_id: str, *, log_offset: int = 0) -> StageStatus:
        return StageStatus.from_dict(self._call(_status_call(run_id, stage_id, log_offset)))

    def wait(
        self, run_id: str, stage_id: str, *, poll_interval: float = 0.2, on_log: OnLog | None = None,
        submit_again: Mapping[str, Any] | None = None, log_offset: int = 0,
    ) -> StageStatus:
        """Poll until the attempt finishes (succeeded, failed or cancelled), handing each new log
        line to `on_log`. `submit_again`: submit's keywords (at least `plan`; run_id and stage
        default to this call's) to re-submit when the service no longer knows the attempt;
        without it an `unknown` status is returned."""
        while True:
            status = self.status(run_id, stage_id, log_offset=log_offset)
            log_offset = _deliver(status, on_log, log_offset)
            if status.state.finished:
                return status
            if status.state is AttemptState.UNKNOWN:
                if submit_again is None:
                    return status
                log.info("pond service: no live attempt of %s/%s; submitting it again", run_id, stage_id)
                self.submit(**{"run_id": run_id, "stage": stage_id, **submit_again})
                log_offset = 0  # a new attempt's log starts over
                continue
            time.sleep(poll_interval)

    def cancel(self, run_id: str, stage_id: str) -> StageStatus:
        return StageStatus.from_dict(self._call(_cancel_call(run_id, stage_id)))

    def close_run(self, run_id: str, status: str, error: str | None = None) -> None:
        self._call(_close_call(run_id, status, error))

    def drop_intermediates(self, run_id: str) -> None:
        self._call(_drop_call(run_id))

    def health(self) -> dict[str, Any]:
        return dict(self._call(_HEALTH))


class AsyncServiceClient(_Base):
    """The pond service from asyncio (Airflow's triggerer, Prefect async tasks): the same
    methods as ServiceClient, awaited; waiting holds no thread."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0, retry_seconds: float = 30.0) -> None:
        super().__init__(url, token, timeout, retry_seconds)
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncServiceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(self, call: _Call) -> Any:
        deadline = time.monotonic() + self.retry_seconds
        attempt = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path, json=call.body, params=call.params, headers=self._headers(call))
                if not _retryable(response):
                    return self._answer(call, response)
                why = f"HTTP {response.status_code}: {_message(response)}"
            except httpx.TransportError as exc:
                why = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise self._unavailable(call, why)
            log.info("pond service %s %s: %s; trying again", call.method, call.path, why)
            await asyncio.sleep(_backoff(attempt))
            attempt += 1

    async def submit(
        self, plan: Any, run_id: str, stage: str, *, force: bool = False, recompute_upstream: bool = True,
        lineage_scope: str | None = None, settings: Mapping[str, Any] | None = None,
    ) -> StageStatus:
        call = _submit_call(plan, run_id, stage, force=force, recompute_upstream=recompute_upstream, lineage_scope=lineage_scope, settings=settings)
        return StageStatus.from_dict(await self._call(call))

    async def status(self, run_id: str, stage_id: str, *, log_offset: int = 0) -> StageStatus:
        return StageStatus.from_dict(await self._call(_status_call(run_id, stage_id, log_offset)))

    async def wait(
        self, run_id: str, stage_id: str, *, poll_interval: float = 0.2, on_log: OnLog | None = None,
        submit_again: Mapping[str, Any] | None = None, log_offset: int = 0,
    ) -> StageStatus:
        """As ServiceClient.wait, with asyncio.sleep between polls."""
        while True:
            status = await self.status(run_id, stage_id, log_offset=log_offset)
            log_offset = _deliver(status, on_log, log_offset)
            if status.state.finished:
                return status
            if status.state is AttemptState.UNKNOWN:
                if submit_again is None:
                    return status
                log.info("pond service: no live attempt of %s/%s; submitting it again", run_id, stage_id)
                await self.submit(**{"run_id": run_id, "stage": stage_id, **submit_again})
                log_offset = 0
                continue
            await asyncio.sleep(poll_interval)

    async def cancel(self, run_id: str, stage_id: str) -> StageStatus:
        return StageStatus.from_dict(await self._call(_cancel_call(run_id, stage_id)))

    async def close_run(self, run_id: str, status: str, error: str | None = None) -> None:
        await self._call(_close_call(run_id, status, error))

    async def drop_intermediates(self, run_id: str) -> None:
        await self._call(_drop_call(run_id))

    async def health(self) -> dict[str, Any]:
        return dict(await self._call(_HEALTH))


def _deliver(status: StageStatus, on_log: OnLog | None, offset: int) -> int:
    """Hand the status's new log lines to `on_log`; the offset to ask from next."""
    if on_log is not None:
        for line in status.logs:
            on_log(line)
    return max(offset, status.log_offset)
