"""PondSettings: what a pond connection resolves to, without importing Airflow.

The detached stage worker (`python -m pond_airflow.worker`) rebuilds its settings from these
values, so it starts without paying for Airflow's imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pond_core import api

if TYPE_CHECKING:
    from airflow.sdk import Connection


class PondSettings:
    """What a pond connection resolves to: pond settings by name, only those set.

    Attribute access reads a setting (None when unset); `repr` and `to_public_dict` hide the
    secrets.
    """

    def __init__(self, values: api.SettingValues | None = None, **settings: Any) -> None:
        parsed = _parse(settings, "PondHook")
        self.values = (values or api.SettingValues({})).merged(parsed)

    @classmethod
    def resolve(cls, conn: Connection | None, overrides: dict[str, Any] | None = None) -> PondSettings:
        raw: dict[str, Any] = {}
        if conn is not None:
            extra = conn.extra_dejson or {}
            raw = {key.removeprefix("extra__pond__"): value for key, value in extra.items()}
            if conn.password:
                raw["s3_secret_access_key"] = conn.password
            if conn.login and "s3_access_key_id" not in raw:
                raw["s3_access_key_id"] = conn.login
        stored = api.SettingValues.parse(raw, f"connection {conn.conn_id}" if conn is not None else "connection")
        return cls(stored, **(overrides or {}))

    def __getattr__(self, name: str) -> Any:
        if name != "values" and name in {s.name for s in api.surface(api.Surface.CONNECTION)}:
            return self.values.get(name)
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PondSettings) and dict(self.values.values) == dict(other.values.values)

    def __repr__(self) -> str:
        return f"PondSettings({self.values.public()!r})"

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
        return self.values.secrets()

    def to_public_dict(self) -> dict[str, Any]:
        return self.values.public()


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
