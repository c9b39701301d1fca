"""`PondConfig`: where and how pond runs, saved as a Prefect block.

    PondConfig(storage_root="s3://lake/pond", ray_address="ray://head:10001",
               catalog_url="postgresql+psycopg://pond:***@db/pond",
               s3_endpoint_url="http://minio:9000", s3_secret_access_key="...").save("prod")
    pond_pipeline(..., config="prod")

Unset fields fall back to pond's own settings (`POND_*` and the `AWS_*` environment), so an
empty `PondConfig()` behaves exactly like `pond_core.init()`. Secrets are `SecretStr`: the UI,
the API and `repr` show them masked, and they reach only the pond session that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Optional

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

if TYPE_CHECKING:
    from pond_core.io import StorageOptions


class PondConfig(Block):
    """Connection settings for running pond pipelines from Prefect."""

    _block_type_name = "Pond Config"
    _block_type_slug = "pond-config"
    _description = "Storage root, catalog, Ray cluster and S3 settings for pond pipelines."
    _documentation_url = "https://github.com/pond/pond/blob/main/docs/prefect.md"  # type: ignore[assignment]

    storage_root: Optional[str] = Field(default=None, description="pond's data root: a local or shared path, or s3://bucket/prefix.")
    executor: Optional[Literal["auto", "local", "ray"]] = Field(default=None, description="auto: Ray when a ray_address is set, else in-process threads; unset: POND_EXECUTOR, else auto.")
    ray_address: Optional[str] = Field(default=None, description="Ray cluster address (ray://host:10001, or 'auto' for a local cluster).")
    catalog_url: Optional[SecretStr] = Field(default=None, description="SQLAlchemy URL of the catalog; default: SQLite under the storage root.")
    memory_limit: Optional[str] = Field(default=None, description="Memory per partition task, e.g. '4GB'.")
    task_threads: Optional[int] = Field(default=None, description="DuckDB threads per partition task.")
    max_retries: Optional[int] = Field(default=None, description="Retries of a transient partition-task failure inside a stage; unset: POND_MAX_RETRIES, else 2.")
    max_task_memory: Optional[str] = Field(default=None, description="A task that runs out of memory is retried with twice the memory up to this, e.g. '64GB'; default: the largest node's.")
    speculation: Optional[bool] = Field(default=None, description="Speculative copies of straggling tasks (first to finish wins); default: on with Ray, off in-process.")
    s3_endpoint_url: Optional[str] = Field(default=None, description="S3-compatible endpoint, e.g. http://minio:9000.")
    s3_region: Optional[str] = None
    s3_access_key_id: Optional[SecretStr] = None
    s3_secret_access_key: Optional[SecretStr] = None
    s3_session_token: Optional[SecretStr] = None
    s3_url_style: Optional[Literal["path", "vhost"]] = None
    s3_use_ssl: Optional[bool] = None
    s3_anonymous: bool = False

    def storage_options(self) -> "StorageOptions":
        from pond_core.io import StorageOptions

        overrides = {
            "endpoint_url": self.s3_endpoint_url,
            "region": self.s3_region,
            "access_key_id": _reveal(self.s3_access_key_id),
            "secret_access_key": _reveal(self.s3_secret_access_key),
            "session_token": _reveal(self.s3_session_token),
            "url_style": self.s3_url_style,
            "use_ssl": self.s3_use_ssl,
        }
        if self.s3_anonymous:
            overrides["anonymous"] = True
        return StorageOptions.from_env(**{k: v for k, v in overrides.items() if v is not None})

    @property
    def uses_ray(self) -> bool:
        """Whether pond will run on Ray, with unset fields taken from POND_* as pond does."""
        from pond_core.config import resolve_config

        return resolve_config(executor=self.executor, ray_address=self.ray_address).use_ray

    def init_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `pond_core.init` (secrets included: never log them)."""
        kwargs: dict[str, Any] = {
            "data_root": self.storage_root,
            "executor": self.executor,
            "ray_address": self.ray_address,
            "catalog_url": _reveal(self.catalog_url),
            "memory_limit": self.memory_limit,
            "task_threads": self.task_threads,
            "max_retries": self.max_retries,
            "max_task_memory": self.max_task_memory,
            "speculation": self.speculation,
            "storage_options": self.storage_options(),
        }
        return {k: v for k, v in kwargs.items() if v is not None}


def _reveal(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def resolve_config(config: PondConfig | str | None) -> PondConfig:
    """A PondConfig from itself, a saved block's name, or None (pond's defaults)."""
    if config is None:
        return PondConfig()
    if isinstance(config, PondConfig):
        return config
    return PondConfig.load(config)  # type: ignore[return-value]
