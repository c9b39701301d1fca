"""`PondConfig`: where and how pond runs, saved as a Prefect block.

    PondConfig(data_root="s3://lake/pond", ray_address="ray://head:10001",
               catalog_url="postgresql+psycopg://pond:***@db/pond",
               s3_endpoint_url="http://minio:9000", s3_secret_access_key="...").save("prod")
    pond_pipeline(..., config="prod")

The block's fields are pond's connection settings, generated from their one declaration
(`pond_core.api.SETTINGS`, surface CONNECTION): the same names, types and descriptions as the
Airflow connection form and `init()`. Unset fields fall back to pond's own settings (`POND_*`
and the `AWS_*` environment), so an empty `PondConfig()` behaves exactly like
`pond_core.init()`. Secrets are `SecretStr`: the UI, the API and `repr` show them masked, and
they reach only the pond session that needs them. Blocks saved with the older field names
(`storage_root`, `task_cpus`, `task_memory`) still load.

Service mode: with `service_url` (and the `service_token` secret) set, stages run on the pond
service on the cluster (`pond_prefect.service`). The service's own settings then decide where
data lives, the catalog, the executor and every credential; of this block only the run
tunables (`api.RUN_TUNABLES`: memory_limit, max_retries, ...) travel with each stage.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Literal

import pydantic
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from pond_core import api

_KIND_TYPES: dict[api.Kind, Any] = {
    api.Kind.TEXT: str,
    api.Kind.INTEGER: int,
    api.Kind.BOOLEAN: bool,
    api.Kind.SIZE: str,  # '4GB', as a user writes it
    api.Kind.TIMESTAMP: str,
}


def _annotation(setting: api.Setting) -> Any:
    if setting.secret:
        return SecretStr | None
    if setting.kind is api.Kind.CHOICE:
        return Literal[setting.choices] | None
    return _KIND_TYPES[setting.kind] | None


def _fields() -> dict[str, Any]:
    return {
        s.name: (_annotation(s), Field(default=None, title=s.label, description=s.doc))
        for s in api.surface(api.Surface.CONNECTION)
    }


if TYPE_CHECKING:
    _Fields = Block
else:
    # A base holding one field per connection setting; PondConfig adds the block's metadata.
    _Fields = pydantic.create_model("_PondConfigFields", __base__=Block, __module__=__name__, **_fields())


class PondConfig(_Fields):
    """Connection settings for running pond pipelines from Prefect."""

    _block_type_name = "Pond Config"
    _block_type_slug = "pond-config"
    _description = "Data root, catalog, Ray cluster and S3 settings for pond pipelines."
    _documentation_url = "https://github.com/pond/pond/blob/main/docs/prefect.md"  # type: ignore[assignment]

    @pydantic.model_validator(mode="before")
    @classmethod
    def _renamed_fields(cls, data: Any) -> Any:
        """Read blocks saved under the older names."""
        if isinstance(data, dict):
            data = dict(data)
            for old, new in ((a, s.name) for s in api.surface(api.Surface.CONNECTION) for a in s.aliases):
                if old in data and new not in data:
                    data[new] = data.pop(old)
        return data

    def values(self) -> api.SettingValues:
        """The fields that are set, as pond settings (secrets revealed: never log them)."""
        raw = {}
        for setting in api.surface(api.Surface.CONNECTION):
            value = getattr(self, setting.name)
            raw[setting.name] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return api.SettingValues.parse(raw, "PondConfig")

    def storage_options(self) -> api.StorageOptions:
        return api.StorageOptions.from_env(**self.values().storage_overrides())

    def settings(self, **overrides: Any) -> api.Settings:
        """Resolved session settings: these fields, then pond's POND_* environment and defaults."""
        kwargs = {k: v for k, v in self.values().init_kwargs().items() if k != "storage_options"}
        return api.Settings.resolve(**{**kwargs, **overrides})

    @property
    def uses_ray(self) -> bool:
        """Whether pond will run on Ray, with unset fields taken from POND_* as pond does."""
        return self.settings(job_id="probe").use_ray

    def service_target(self) -> ServiceTarget | None:
        """The pond service stages run on, if `service_url` is set here or in POND_SERVICE_URL;
        None runs them in the flow process, as before. A URL without a token is an error."""
        values = self.values().values
        url = values.get("service_url") or _env("service_url")
        if not url:
            return None
        token = values.get("service_token") or _env("service_token")
        if not token:
            raise api.PondConfigError(
                f"PondConfig: service_url is {url} but no service_token is set (block field service_token, or POND_SERVICE_TOKEN); "
                "the pond service refuses calls without its token"
            )
        return ServiceTarget(str(url), str(token))

    def run_tunables(self) -> dict[str, Any]:
        """The fields a stage request to the service may carry (how tasks run, never where)."""
        return {k: v for k, v in self.values().values.items() if k in api.RUN_TUNABLES and v is not None}

    def ignored_by_service(self) -> list[str]:
        """Fields set here that the service ignores: its own settings decide them."""
        return sorted(k for k, v in self.values().values.items() if v is not None and k not in api.RUN_TUNABLES and not k.startswith("service_"))

    def init_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `pond_core.init` (secrets included: never log them)."""
        return self.values().init_kwargs()


@dataclasses.dataclass(frozen=True)
class ServiceTarget:
    """Where the pond service is and the token it wants (never in `repr`, logs or errors)."""

    url: str
    token: str = dataclasses.field(repr=False)

    def client(self) -> api.ServiceClient:
        return api.ServiceClient(self.url, self.token)

    def async_client(self) -> api.AsyncServiceClient:
        return api.AsyncServiceClient(self.url, self.token)


def load_config(config: PondConfig | str | None) -> PondConfig:
    """A PondConfig from itself, a saved block's name, or None (pond's defaults)."""
    if config is None:
        return PondConfig()
    if isinstance(config, PondConfig):
        return config
    return PondConfig.load(config)  # type: ignore[return-value]


def _env(name: str) -> str | None:
    """A setting's POND_<NAME> / SP_<NAME> environment value (unset fields fall back to it)."""
    setting = next(s for s in api.SETTINGS if s.name == name)
    return next((os.environ[e] for e in setting.env_names if os.environ.get(e)), None)
