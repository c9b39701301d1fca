"""PondSettings: what a pond connection resolves to, without importing Airflow.

The detached stage worker (`python -m pond_airflow.worker`) rebuilds its settings from these
values, so it starts without paying for Airflow's imports.

A connection whose extra names a `service_url` is a pond service's (docs/service.md): its
password is the service's token (not an S3 secret), and only per-run tunables may sit next to
it, because the service owns where data and the catalog live and how stages execute. Those
two values are kept apart from the pond settings (`PondSettings.service`) so they never
reach a local Session.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from pond_core import api

if TYPE_CHECKING:
    from airflow.sdk import Connection


class PondSettings:
    """What a pond connection resolves to: pond settings by name, only those set.

    Attribute access reads a setting (None when unset); `repr` and `to_public_dict` hide the
    secrets.
    """

    def __init__(self, values: api.SettingValues | None = None, service: ServiceTarget | None = None, **settings: Any) -> None:
        settings = dict(settings)
        url, token = settings.pop("service_url", None), settings.pop("service_token", None)
        if url:
            service = ServiceTarget(str(url), token if token is not None else (service.token if service else None))
        parsed = _parse(settings, "PondHook")
        self.values = (values or api.SettingValues({})).merged(parsed)
        self.service = service
        if service is not None:
            service.check(self.values)

    @classmethod
    def resolve(cls, conn: Connection | None, overrides: dict[str, Any] | None = None) -> PondSettings:
        raw: dict[str, Any] = {}
        service: ServiceTarget | None = None
        if conn is not None:
            extra = conn.extra_dejson or {}
            raw = {key.removeprefix("extra__pond__"): value for key, value in extra.items()}
            raw.pop("service_token", None)  # a secret: only ever the connection's password
            url = raw.pop("service_url", None)
            if url:
                service = ServiceTarget(str(url), conn.password or None)
            elif conn.password:
                raw["s3_secret_access_key"] = conn.password
            if conn.login and "s3_access_key_id" not in raw and service is None:
                raw["s3_access_key_id"] = conn.login
        stored = api.SettingValues.parse(raw, f"connection {conn.conn_id}" if conn is not None else "connection")
        return cls(stored, service, **(overrides or {}))

    def __getattr__(self, name: str) -> Any:
        if name != "values" and name in {s.name for s in api.surface(api.Surface.CONNECTION)}:
            return self.values.get(name)
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PondSettings) and dict(self.values.values) == dict(other.values.values) and self.service == other.service

    def __repr__(self) -> str:
        service = f", service={self.service.url!r}" if self.service is not None else ""
        return f"PondSettings({self.values.public()!r}{service})"

    def storage_options(self) -> dict[str, Any]:
        """The S3 settings as StorageOptions fields (secrets included: never log them)."""
        return self.values.storage_overrides()

    def init_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `init()` (secrets included: never log them)."""
        return self.values.init_kwargs()

    def session_settings(self, **overrides: Any) -> api.Settings:
        """The resolved session settings these values give (pond's defaults fill the rest)."""
        kwargs = {k: v for k, v in self.init_kwargs().items() if k != "storage_options"}
        return api.Settings.resolve(**{**kwargs, **overrides})

    def storage(self) -> api.StorageOptions:
        return api.StorageOptions.from_env(**self.storage_options())

    def secrets(self) -> list[str]:
        token = self.service.token if self.service is not None else None
        return self.values.secrets() + ([token] if token else [])

    def service_settings(self) -> dict[str, Any]:
        """The run tunables set on the connection, as the service takes them (`settings` of a
        stage request); everything else is the service's own."""
        return {k: v for k, v in self.values.values.items() if k in api.RUN_TUNABLES}

    def to_public_dict(self) -> dict[str, Any]:
        return self.values.public()


@dataclasses.dataclass(frozen=True)
class ServiceTarget:
    """The pond service a connection names: its URL and token (the token never in a repr)."""

    url: str
    token: str | None = dataclasses.field(default=None, repr=False)

    def check(self, values: api.SettingValues) -> None:
        """Only run tunables may sit next to a service URL: the rest is the service's."""
        if not self.url.startswith(("http://", "https://")):
            raise api.PondConfigError(f"service_url must be an http:// or https:// URL, got {self.url!r}")
        owned = sorted(k for k in values.values if k not in api.RUN_TUNABLES)
        if owned:
            raise api.PondConfigError(
                f"a pond connection naming a service ({self.url}) may set only run tunables "
                f"({', '.join(api.RUN_TUNABLES)}); {', '.join(owned)} belong{'s' if len(owned) == 1 else ''} to the "
                "service's own settings (where data, the catalog and executors are): remove them from the connection"
            )


def _parse(settings: dict[str, Any], source: str) -> api.SettingValues:
    try:
        return api.SettingValues.parse(settings, source)
    except api.PondConfigError as exc:
        if "unknown setting" in str(exc):
            raise TypeError(str(exc)) from None
        raise


def scrub(text: str, settings: PondSettings) -> str:
    """`text` without any secret of the settings."""
    for secret in settings.secrets():
        text = text.replace(secret, "***")
    return text
