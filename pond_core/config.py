"""Session settings: explicit argument > environment (`POND_*`, then smallpond's `SP_*`) > default."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import uuid
from typing import Any, Callable

from pond_core.errors import PondConfigError

EXECUTORS = ("auto", "local", "ray")


def from_env(name: str) -> str | None:
    for prefix in ("POND_", "SP_"):
        value = os.environ.get(prefix + name)
        if value not in (None, ""):
            return value
    return None


def setting(name: str, explicit: Any, cast: Callable[[str], Any] = str, default: Any = None) -> Any:
    if explicit is not None:
        return explicit
    raw = from_env(name)
    if raw is None:
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise PondConfigError(f"environment variable POND_{name} (or SP_{name}) = {raw!r} is invalid: {exc}") from exc


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 1 << 10, "m": 1e6, "mb": 1e6, "mib": 1 << 20, "g": 1e9, "gb": 1e9, "gib": 1 << 30, "t": 1e12, "tb": 1e12, "tib": 1 << 40}


def parse_bytes(value: int | str | None) -> int | None:
    """'4GB', '512MiB' or an integer number of bytes."""
    if value is None or isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match or match.group(2).lower() not in _UNITS:
        raise PondConfigError(f"cannot read {value!r} as a size; use bytes or a unit such as '4GB' or '512MiB'")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _bool(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


@dataclasses.dataclass(frozen=True)
class SessionConfig:
    job_id: str
    job_time: dt.datetime
    job_name: str
    data_root: str
    num_executors: int | None
    ray_address: str | None
    bind_numa_node: bool
    platform: str | None
    executor: str
    memory_limit: int | None
    task_threads: int | None
    max_retries: int
    spill_dir: str | None
    catalog_url: str | None
    keep_intermediates: bool
    max_task_memory: int | None = None
    speculation: bool | None = None

    @property
    def use_ray(self) -> bool:
        return self.executor == "ray" or (self.executor == "auto" and self.ray_address is not None)


def resolve_config(
    job_id: str | None = None,
    job_time: dt.datetime | None = None,
    job_name: str | None = None,
    data_root: str | None = None,
    num_executors: int | None = None,
    ray_address: str | None = None,
    bind_numa_node: bool | None = None,
    platform: str | None = None,
    executor: str | None = None,
    memory_limit: int | str | None = None,
    task_threads: int | None = None,
    max_retries: int | None = None,
    spill_dir: str | None = None,
    catalog_url: str | None = None,
    keep_intermediates: bool | None = None,
    max_task_memory: int | str | None = None,
    speculation: bool | None = None,
) -> SessionConfig:
    executor = setting("EXECUTOR", executor, str, "auto")
    if executor not in EXECUTORS:
        raise PondConfigError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    num = setting("NUM_EXECUTORS", num_executors, int)
    if num is not None and num < 1:
        raise PondConfigError(f"num_executors must be >= 1, got {num}")
    retries = setting("MAX_RETRIES", max_retries, int, 2)
    if retries < 0:
        raise PondConfigError(f"max_retries must be >= 0, got {retries}")
    job_time = setting("JOB_TIME", job_time, dt.datetime.fromisoformat, None) or dt.datetime.now(dt.timezone.utc)
    root = setting("DATA_ROOT", data_root, str, os.path.join(os.path.expanduser("~"), ".pond", "data"))
    return SessionConfig(
        job_id=str(setting("JOB_ID", job_id, str, None) or _new_job_id(job_time)),
        job_time=job_time,
        job_name=setting("JOB_NAME", job_name, str, "pond"),
        data_root=root if "://" in root else os.path.abspath(os.path.expanduser(root)),
        num_executors=num,
        ray_address=setting("RAY_ADDRESS", ray_address, str, None),
        bind_numa_node=setting("BIND_NUMA_NODE", bind_numa_node, _bool, False),
        platform=setting("PLATFORM", platform, str, None),
        executor=executor,
        memory_limit=parse_bytes(setting("MEMORY_LIMIT", memory_limit, str, None)),
        task_threads=setting("TASK_THREADS", task_threads, int, None),
        max_retries=retries,
        spill_dir=setting("SPILL_DIR", spill_dir, str, None),
        catalog_url=setting("CATALOG_URL", catalog_url, str, None),
        keep_intermediates=setting("KEEP_INTERMEDIATES", keep_intermediates, _bool, False),
        max_task_memory=parse_bytes(setting("MAX_TASK_MEMORY", max_task_memory, str, None)),
        speculation=setting("SPECULATION", speculation, _bool, None),
    )


def _new_job_id(job_time: dt.datetime) -> str:
    return f"{job_time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
