"""The service's HTTP API: a FastAPI app over a `StageService` (routes, token, errors).

Every route but `GET /v1/health` needs `Authorization: Bearer <token>`; a missing or wrong one
is a 401 `{"error": ...}` that never repeats what was sent. Errors are JSON `{"error": message}`:
400 for a bad request (a PondConfigError: bad plan, unknown stage, a refused setting), 409 for a
conflict with live work, 500 for a failure inside the service (the client retries 5xx). A failed
*stage* is not an HTTP error: it is a StageStatus whose state is `failed`.

Handlers run the service's blocking calls on Starlette's thread pool, so polling clients never
wait behind a submission.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from pond_core.errors import PondConfigError, PondError
from pond_core.service.attempts import ServiceBusyError, StageService
from pond_core.service.auth import TokenCheck, refusal
from pond_core.service.protocol import API_PREFIX, CloseRunRequest, StageRequest

log = logging.getLogger("pond.service")


def create_app(service: StageService, tokens: TokenCheck, version: str) -> FastAPI:
    app = FastAPI(title="pond service", version=version, docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def require_token(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        if request.url.path.endswith(f"{API_PREFIX}/health"):
            return await call_next(request)
        header = request.headers.get("authorization")
        if not tokens.accepts(header):
            log.warning("pond service: refused %s %s from %s: %s", request.method, request.url.path, _client(request), refusal(header))
            return JSONResponse({"error": refusal(header)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.get(f"{API_PREFIX}/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": version}

    @app.post(f"{API_PREFIX}/stages")
    async def submit(request: Request) -> Any:
        return await _answer(lambda body: service.submit(StageRequest.from_dict(body)).to_dict(), await _body(request))

    @app.get(f"{API_PREFIX}/stages/{{run_id}}/{{stage_id}}")
    async def status(run_id: str, stage_id: str, log_offset: int = 0) -> Any:
        return await _answer(lambda _: service.status(run_id, stage_id, max(0, log_offset)).to_dict())

    @app.post(f"{API_PREFIX}/stages/{{run_id}}/{{stage_id}}/cancel")
    async def cancel(run_id: str, stage_id: str) -> Any:
        return await _answer(lambda _: service.cancel(run_id, stage_id).to_dict())

    @app.post(f"{API_PREFIX}/runs/{{run_id}}/close")
    async def close_run(run_id: str, request: Request) -> Any:
        def close(body: Any) -> dict[str, Any]:
            verdict = CloseRunRequest.from_dict(body)
            service.close_run(run_id, verdict.status, verdict.error)
            return {"run_id": run_id, "status": verdict.status}

        return await _answer(close, await _body(request))

    @app.post(f"{API_PREFIX}/runs/{{run_id}}/drop-intermediates")
    async def drop_intermediates(run_id: str) -> Any:
        def drop(_: Any) -> dict[str, Any]:
            service.drop_intermediates(run_id)
            return {"run_id": run_id, "dropped": True}

        return await _answer(drop)

    return app


class _BadBody(Exception):
    pass


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError) as exc:
        return _BadBody(f"the body is not JSON: {exc}")


async def _answer(handle: Callable[[Any], Any], body: Any = None) -> Any:
    """Run `handle(body)` on the thread pool; a pond error becomes its HTTP answer."""
    if isinstance(body, _BadBody):
        return JSONResponse({"error": str(body)}, status_code=400)
    try:
        return await run_in_threadpool(handle, body)
    except ServiceBusyError as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    except PondConfigError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except PondError as exc:
        log.warning("pond service: request failed: %s", exc)
        return JSONResponse({"error": str(exc)}, status_code=500)
    except Exception as exc:
        log.exception("pond service: request failed inside the service")
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)


def _client(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "?"
