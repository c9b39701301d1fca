"""PondHook: an Airflow connection of type `pond` turned into a pond Session.

Each setting resolves as: explicit hook argument > connection extra > pond's own default
(its POND_* environment, then built-in values). A missing `pond_default` connection means
"pond's defaults"; any other missing connection id is an error, as in the DuckDB provider.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

if TYPE_CHECKING:
    from airflow.sdk import Connection
    from pond_core.catalog import Catalog
    from pond_core.session import Session

SETTINGS = (
    "ray_address",
    "executor",
    "storage_root",
    "catalog_url",
    "task_cpus",
    "task_memory",
    "max_retries",
    "max_task_memory",
    "speculation",
    "s3_endpoint_url",
    "s3_region",
    "s3_access_key_id",
    "s3_secret_access_key",
)
_INTS = ("task_cpus", "max_retries")


@dataclasses.dataclass(frozen=True)
class PondSettings:
    """What a pond connection resolves to; `repr` and `to_public_dict` hide the secrets."""

    ray_address: str | None = None
    executor: str | None = None
    storage_root: str | None = None
    catalog_url: str | None = dataclasses.field(default=None, repr=False)
    task_cpus: int | None = None
    task_memory: str | None = None
    max_retries: int | None = None
    max_task_memory: str | None = None
    speculation: bool | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = dataclasses.field(default=None, repr=False)
    s3_secret_access_key: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def resolve(cls, conn: Connection | None, overrides: dict[str, Any] | None = None) -> PondSettings:
        values: dict[str, Any] = {}
        if conn is not None:
            extra = conn.extra_dejson or {}
            for name in SETTINGS:
                value = extra.get(name, extra.get(f"extra__pond__{name}"))
                if value not in (None, ""):
                    values[name] = value
            if conn.password:
                values["s3_secret_access_key"] = conn.password
            if conn.login and "s3_access_key_id" not in values:
                values["s3_access_key_id"] = conn.login
        for name, value in (overrides or {}).items():
            if name not in SETTINGS:
                raise TypeError(f"PondHook got an unknown setting {name!r}; known: {', '.join(SETTINGS)}")
            if value is not None:
                values[name] = value
        for name in _INTS:
            if name in values:
                values[name] = int(values[name])
        if isinstance(values.get("speculation"), str):  # from a connection's JSON or URI: "on", "false", ...
            values["speculation"] = values["speculation"].strip().lower() in ("1", "true", "yes", "on")
        return cls(**values)

    def storage_options(self) -> dict[str, Any]:
        opts = {
            "endpoint_url": self.s3_endpoint_url,
            "region": self.s3_region,
            "access_key_id": self.s3_access_key_id,
            "secret_access_key": self.s3_secret_access_key,
        }
        return {k: v for k, v in opts.items() if v is not None}

    def init_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `pond_core.init` (secrets included: never log them)."""
        kwargs = {
            "data_root": self.storage_root,
            "ray_address": self.ray_address,
            "executor": self.executor,
            "catalog_url": self.catalog_url,
            "task_threads": self.task_cpus,
            "memory_limit": self.task_memory,
            "max_retries": self.max_retries,
            "max_task_memory": self.max_task_memory,
            "speculation": self.speculation,
        }
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        kwargs["storage_options"] = self.storage_options()
        return kwargs

    def secrets(self) -> list[str]:
        from sqlalchemy.engine import make_url

        out = [v for v in (self.s3_access_key_id, self.s3_secret_access_key) if v]
        if self.catalog_url:
            password = make_url(self.catalog_url).password
            if password:
                out.append(str(password))
        return out

    def to_public_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("s3_access_key_id", "s3_secret_access_key", "catalog_url")}
        if self.catalog_url:
            from sqlalchemy.engine import make_url

            out["catalog_url"] = make_url(self.catalog_url).render_as_string(hide_password=True)
        out["s3_credentials"] = bool(self.s3_access_key_id and self.s3_secret_access_key)
        return out


class PondHook(BaseHook):
    """Interact with pond: open Sessions and the catalog from a `pond` connection.

    :param pond_conn_id: the connection; a missing `pond_default` means pond's defaults.
    :param overrides: any of the connection's settings (ray_address, executor, storage_root,
        catalog_url, task_cpus, task_memory, max_retries, max_task_memory, speculation, s3_endpoint_url, s3_region,
        s3_access_key_id, s3_secret_access_key); they win over the connection.
    """

    conn_name_attr = "pond_conn_id"
    default_conn_name = "pond_default"
    conn_type = "pond"
    hook_name = "Pond"

    def __init__(self, pond_conn_id: str = default_conn_name, **overrides: Any) -> None:
        super().__init__()
        self.pond_conn_id = pond_conn_id
        self.overrides = {k: v for k, v in overrides.items() if v is not None}
        PondSettings.resolve(None, self.overrides)  # reject unknown settings early
        self._settings: PondSettings | None = None

    def _connection(self) -> Connection | None:
        try:
            return self.get_connection(self.pond_conn_id)
        except AirflowNotFoundException:
            if self.pond_conn_id == self.default_conn_name:
                self.log.info("No connection %s: using pond's defaults", self.pond_conn_id)
                return None
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

    def get_conn(self, job_id: str | None = None, **init_kwargs: Any) -> Session:
        """A new pond Session; the caller shuts it down (it is also a context manager)."""
        import pond_core

        kwargs = {**self.settings.init_kwargs(), **init_kwargs}
        return pond_core.init(job_id=job_id, **kwargs)

    def catalog(self, session: Session | None = None) -> Catalog:
        from pond_core.pipeline import open_catalog

        if session is not None:
            return open_catalog(session)
        from pond_core.catalog import Catalog
        from pond_core.config import resolve_config

        config = resolve_config(data_root=self.settings.storage_root, catalog_url=self.settings.catalog_url, job_id="catalog")
        return Catalog(config.catalog_url or Catalog.default_url(config.data_root))

    def test_connection(self) -> tuple[bool, str]:
        """Open the catalog and write a probe under the storage root."""
        try:
            from pond_core.io import get_filesystem, join_path

            with self.get_conn(job_id="airflow-connection-test") as session:
                fs = get_filesystem(session.config.data_root, session.storage)
                probe = join_path(session.config.data_root, "jobs", "airflow-connection-test", "probe")
                fs.write_bytes(probe, b"ok")
                fs.delete(probe)
                self.catalog(session).ping()
            return True, f"pond storage root {session.config.data_root} and its catalog are reachable"
        except Exception as exc:
            return False, scrub(str(exc), self.settings)


def _mask(settings: PondSettings) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    for secret in settings.secrets():
        mask_secret(secret)


def scrub(text: str, settings: PondSettings) -> str:
    for secret in settings.secrets():
        text = text.replace(secret, "***")
    return text
