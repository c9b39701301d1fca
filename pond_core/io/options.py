"""StorageOptions: how pond reaches object storage, resolved once from the standard AWS settings.

The options travel to workers as a plain dict (`to_dict`), but never into plans, logs or
lineage: those get `to_public_dict()`, which has no secrets. `repr` hides them too.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pond_core.errors import PondConfigError

SECRET_FIELDS = ("access_key_id", "secret_access_key", "session_token")
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class StorageOptions:
    """Connection settings for s3:// paths (local paths need none).

    `url_style` is "path" (bucket in the URL path, what MinIO, Ceph and moto want) or "vhost"
    (bucket in the host name, AWS's default); when unset it is "path" for a custom endpoint
    and "vhost" for AWS itself.
    """

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    url_style: str | None = None
    use_ssl: bool | None = None
    anonymous: bool = False
    connect_timeout: float = 5.0
    request_timeout: float = 60.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.url_style not in (None, "path", "vhost"):
            raise PondConfigError(f"url_style must be 'path' or 'vhost', not {self.url_style!r}")
        if self.endpoint_url is not None and "://" not in self.endpoint_url:
            raise PondConfigError(
                f"endpoint_url must include a scheme (http:// or https://): {self.endpoint_url!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> StorageOptions:
        """Options from AWS_* variables and the profile's ~/.aws files; explicit overrides win."""
        env = os.environ if environ is None else environ
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise PondConfigError(f"unknown storage option(s): {', '.join(sorted(unknown))}")
        profile = overrides.get("profile") or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE")
        from_profile = _profile_settings(env, profile)
        from_env = _drop_none(
            {
                "endpoint_url": env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
                "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
                "access_key_id": env.get("AWS_ACCESS_KEY_ID"),
                "secret_access_key": env.get("AWS_SECRET_ACCESS_KEY"),
                "session_token": env.get("AWS_SESSION_TOKEN"),
                "profile": profile,
            }
        )
        if overrides.get("profile") or "AWS_ACCESS_KEY_ID" not in env:
            # A named profile's keys replace the environment's, as the AWS CLI does.
            for key in SECRET_FIELDS:
                if key in from_profile:
                    from_env.pop(key, None)
        merged = {**from_profile, **from_env, **_drop_none(overrides)}
        return cls(**merged)

    # --- derived settings -------------------------------------------------------------------
    @property
    def effective_region(self) -> str:
        return self.region or DEFAULT_REGION

    @property
    def effective_url_style(self) -> str:
        return self.url_style or ("path" if self.endpoint_url else "vhost")

    @property
    def effective_use_ssl(self) -> bool:
        if self.use_ssl is not None:
            return self.use_ssl
        return not (self.endpoint_url or "").startswith("http://")

    @property
    def endpoint_host(self) -> str | None:
        """host[:port] of a custom endpoint, as DuckDB's ENDPOINT wants it."""
        if not self.endpoint_url:
            return None
        return self.endpoint_url.split("://", 1)[1].rstrip("/")

    @property
    def has_credentials(self) -> bool:
        return bool(self.access_key_id and self.secret_access_key)

    def secrets(self) -> list[str]:
        """The secret values, so error text can be scrubbed of them."""
        return [v for v in (self.access_key_id, self.secret_access_key, self.session_token) if v]

    # --- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything, secrets included: for shipping to workers, never for logs or plans."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StorageOptions:
        return cls(**dict(data))

    def to_public_dict(self) -> dict[str, Any]:
        """JSON-able and safe to log: secrets become a flag saying whether they are set."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in SECRET_FIELDS}
        out["has_credentials"] = self.has_credentials
        out["has_session_token"] = bool(self.session_token)
        return out

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.to_public_dict().items())
        return f"StorageOptions({shown})"

    __str__ = __repr__


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _profile_settings(env: Mapping[str, str], profile: str | None) -> dict[str, Any]:
    """Keys, region, endpoint and addressing style for `profile` from the AWS config files."""
    name = profile or "default"
    home = Path(env.get("HOME", str(Path.home())))
    cred_path = Path(env.get("AWS_SHARED_CREDENTIALS_FILE", home / ".aws" / "credentials"))
    conf_path = Path(env.get("AWS_CONFIG_FILE", home / ".aws" / "config"))
    creds = _read_section(cred_path, name)
    conf = _read_section(conf_path, name if name == "default" else f"profile {name}")
    if profile and not creds and not conf and (cred_path.exists() or conf_path.exists()):
        raise PondConfigError(f"AWS profile {profile!r} not found in {cred_path} or {conf_path}")
    both = {**conf, **creds}
    s3_nested = _parse_nested(conf.get("s3", ""))
    out = {
        "access_key_id": both.get("aws_access_key_id"),
        "secret_access_key": both.get("aws_secret_access_key"),
        "session_token": both.get("aws_session_token"),
        "region": conf.get("region"),
        "endpoint_url": s3_nested.get("endpoint_url") or conf.get("endpoint_url"),
    }
    style = s3_nested.get("addressing_style")
    if style in ("path", "virtual"):
        out["url_style"] = "path" if style == "path" else "vhost"
    return _drop_none(out)


def _read_section(path: Path, section: str) -> dict[str, str]:
    if not path.is_file():
        return {}
    parser = configparser.RawConfigParser()
    try:
        parser.read(path)
    except configparser.Error as exc:
        raise PondConfigError(f"cannot parse AWS config file {path}: {type(exc).__name__}") from None
    return dict(parser.items(section)) if parser.has_section(section) else {}


def _parse_nested(block: str) -> dict[str, str]:
    """The indented `s3 =` sub-section of an AWS config profile."""
    out = {}
    for line in block.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out
