"""PondHook: an Airflow connection of type `pond` turned into pond settings and sessions.

The connection's fields are pond's own settings (`pond_core.api.SETTINGS`, surface
CONNECTION), under their pond names: `data_root`, `executor`, `ray_address`, `catalog_url`,
`memory_limit`, `task_threads`, ... and the `s3_*` settings; the connection's login and
password are the S3 access key id and secret. Each setting resolves as: explicit hook
argument > connection extra > pond's own default (its POND_* environment, then built-in
values). A missing `pond_default` connection means "pond's defaults"; any other missing
connection id is an error, as in the DuckDB provider.

When the connection's extra names a `service_url`, the hook is a thin client of that pond
service (docs/airflow.md, "Service mode"): the password is the service's token, and
`service_client()` / `async_service_client()` talk to it over HTTP; no Ray, no storage and no
catalog are needed where the task runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from pond_airflow.settings import PondSettings, ServiceTarget, scrub
from pond_core import api

__all__ = ["PondHook", "PondSettings", "ServiceTarget", "scrub"]

if TYPE_CHECKING:
    from airflow.sdk import Connection


class PondHook(BaseHook):
    """Interact with pond: settings, sessions and the catalog from a `pond` connection.

    :param pond_conn_id: the connection; a missing `pond_default` means pond's defaults.
    :param overrides: any of the connection's settings (see the module docstring); they win
        over the connection.
    """

    conn_name_attr = "pond_conn_id"
    default_conn_name = "pond_default"
    conn_type = "pond"
    hook_name = "Pond"

    def __init__(self, pond_conn_id: str = default_conn_name, **overrides: Any) -> None:
        super().__init__()
        self.pond_conn_id = pond_conn_id
        self.overrides = {k: v for k, v in overrides.items() if v is not None}
        PondSettings(**self.overrides)  # reject unknown settings early
        self._settings: PondSettings | None = None

    def _connection(self) -> Connection | None:
        try:
            return self.get_connection(self.pond_conn_id)
        except AirflowNotFoundException:
            if self.pond_conn_id == self.default_conn_name:
                return None  # pond's defaults, as documented; not worth a log line per task
            raise

    @property
    def settings(self) -> PondSettings:
        if self._settings is None:
            self._settings = PondSettings.resolve(self._connection(), self.overrides)
            _mask(self._settings)
        return self._settings

    async def asettings(self) -> PondSettings:
        """The settings, read without blocking an event loop (for triggers)."""
        if self._settings is None:
            try:
                conn = await self.aget_connection(self.pond_conn_id)
            except AirflowNotFoundException:
                if self.pond_conn_id != self.default_conn_name:
                    raise
                conn = None
            self._settings = PondSettings.resolve(conn, self.overrides)
            _mask(self._settings)
        return self._settings

    @property
    def service(self) -> ServiceTarget | None:
        """The pond service the connection names, or None (stages then run where the task runs)."""
        return self.settings.service

    def service_client(self) -> api.ServiceClient:
        """A client of the connection's pond service (see `service`)."""
        target = self._target(self.settings)
        return api.ServiceClient(target.url, target.token or "")

    async def async_service_client(self) -> api.AsyncServiceClient:
        """An asyncio client of the connection's pond service, for triggers."""
        target = self._target(await self.asettings())
        return api.AsyncServiceClient(target.url, target.token or "")

    def _local(self, what: str) -> None:
        """A connection naming a service has no local data root or catalog to open."""
        if self.service is not None:
            raise api.PondConfigError(
                f"pond connection {self.pond_conn_id} names a pond service ({self.service.url}): {what} lives on the service; "
                "use hook.service_client() (or the pond operators, which do)"
            )

    def _target(self, settings: PondSettings) -> ServiceTarget:
        if settings.service is None:
            raise api.PondConfigError(f"pond connection {self.pond_conn_id} names no pond service (set its extra service_url)")
        return settings.service

    def session_settings(self, **overrides: Any) -> api.Settings:
        return self.settings.session_settings(**overrides)

    def get_conn(self, job_id: str | None = None, **init_kwargs: Any) -> api.Session:
        """A new pond Session; the caller shuts it down (it is also a context manager)."""
        self._local("a pond Session")
        kwargs = {**self.settings.init_kwargs(), **init_kwargs}
        return api.init(job_id=job_id, **kwargs)

    def catalog(self) -> api.Catalog:
        self._local("pond's catalog")
        return api.open_catalog(self.session_settings(job_id="catalog"))

    def test_connection(self) -> tuple[bool, str]:
        """Open the catalog and write a probe under the data root; with a service, ask it
        about a stage that does not exist (which needs the token)."""
        if self.service is not None:
            return self._test_service()
        try:
            settings = self.session_settings(job_id="airflow-connection-test")
            layout = api.RunLayout(settings.data_root, "airflow-connection-test")
            fs = api.get_filesystem(settings.data_root, self.settings.storage())
            probe = api.join_path(layout.run_root, "probe")
            fs.write_bytes(probe, b"ok")
            fs.delete(probe)
            with api.open_catalog(settings) as catalog:
                catalog.ping()
            return True, f"pond data root {settings.data_root} and its catalog are reachable"
        except Exception as exc:
            return False, scrub(str(exc), self.settings)


    def _test_service(self) -> tuple[bool, str]:
        try:
            client = self.service_client()
            version = client.health().get("version")
            client.status("airflow-connection-test", "none")  # 401 on a wrong token
            return True, f"pond service {self.settings.service.url if self.settings.service else ''} (pond {version}) accepts the token"
        except Exception as exc:
            return False, scrub(str(exc), self.settings)


def _mask(settings: PondSettings) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    for secret in settings.secrets():
        mask_secret(secret)
