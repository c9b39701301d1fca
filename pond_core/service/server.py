"""The pond service as a Ray Serve application: a FastAPI ingress whose replicas run stages.

Why Ray Serve: it is Ray's own way to run a long-lived HTTP service on a cluster. Its proxy
takes the requests, its controller keeps the replicas running (a replica that dies is started
again, on any node), and a replica is an ordinary Ray actor: it is a driver of the cluster
already (no `ray.init`, no Ray Client), so it holds the warm workers' pool and submits tasks
with no per-stage connection cost. See docs/service.md for the measurements behind the choice.

A replica builds, once: the service's settings (data root, catalog, executor=ray with warm
workers; S3 credentials from the node's environment), the catalog, the Ray executor and the
`StageService`; then resumes the submissions a killed predecessor left (service/submissions.py)
and serves the FastAPI app of service/app.py. The deployment's arguments (kept by Serve's
controller) hold the token's SHA-256 digest, never the token.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from ray import serve

from pond_core.service import logs
from pond_core.service.attempts import MAX_RUNNING, StageService
from pond_core.service.auth import TokenCheck
from pond_core.service.submissions import Submissions

log = logging.getLogger("pond.service")
APP_NAME = "pond"
DEPLOYMENT_NAME = "PondService"


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    """What every replica is built from (stored by Serve: no secret but the catalog URL's
    password, when the URL holds one; prefer POND_CATALOG_URL in the cluster's environment)."""

    ray_address: str | None
    data_root: str | None
    catalog_url: str | None = dataclasses.field(repr=False)
    token_digest: str = dataclasses.field(repr=False)
    version: str
    max_running: int = MAX_RUNNING
    persist: bool = True

    def __repr__(self) -> str:
        return f"ServiceConfig(data_root={self.data_root!r}, ray_address={self.ray_address!r})"


def _build_service(config: ServiceConfig) -> StageService:
    from pond_core.execute.executor_for import make_executor
    from pond_core.io.options import StorageOptions
    from pond_core.runner import open_catalog
    from pond_core.settings import Settings, url_password

    settings = Settings.resolve(
        job_id="pond-service", data_root=config.data_root, catalog_url=config.catalog_url, executor="ray",
        ray_address=config.ray_address or "auto", warm_workers=True,
    )
    storage = StorageOptions.from_env()
    secrets = [url_password(settings.catalog_url), storage.secret_access_key, storage.session_token]
    logs.install([s for s in secrets if s])
    catalog = open_catalog(settings)
    executor = make_executor(settings)
    submissions = Submissions(settings.data_root, storage) if config.persist else None
    return StageService(settings, storage, catalog, executor, submissions=submissions, max_running=config.max_running)


@serve.deployment(
    name=DEPLOYMENT_NAME, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256,
    graceful_shutdown_timeout_s=30, health_check_period_s=5, health_check_timeout_s=30,
)
@serve.ingress()
class PondService:
    """One replica: a driver of the cluster that runs clients' stages in its threads."""

    def __init__(self, config: ServiceConfig) -> None:
        self._config = config
        self.service = _build_service(config)
        resumed = self.service.resume_saved()
        log.info("pond service replica ready (data root %s; %d submission(s) resumed)", self.service.settings.data_root, len(resumed))

    def __serve_build_asgi_app__(self) -> Any:
        from pond_core.service.app import create_app

        return create_app(self.service, TokenCheck(self._config.token_digest), self._config.version)

    def __del__(self) -> None:
        service = getattr(self, "service", None)
        if service is None:
            return
        service.shutdown()
        service.executor.shutdown()
        service.catalog.close()


def application(config: ServiceConfig, replicas: int = 1) -> Any:
    """The Serve application `pond serve` deploys."""
    return PondService.options(num_replicas=replicas).bind(config)  # type: ignore[attr-defined]  # (the decorator makes it a Deployment)
