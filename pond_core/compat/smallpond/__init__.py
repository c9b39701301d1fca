"""smallpond's top-level module, backed by pond: `import smallpond; sp = smallpond.init()`.

Run an unchanged smallpond script with `pond smallpond SCRIPT.py ARGS...` (the import resolves
here for that run), or import `pond_core.compat.smallpond as smallpond`. See docs/smallpond.md.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pond_core.compat.smallpond.dataframe import DataFrame, Session
from pond_core.udfs import UDF, udf

__version__ = "0.15.0+pond"

__all__ = ["UDF", "DataFrame", "Session", "init", "udf"]


def init(
    job_id: str | None = None,
    job_time: float | dt.datetime | None = None,
    job_name: str | None = None,
    data_root: str | None = None,
    num_executors: int | None = None,
    ray_address: str | None = None,
    bind_numa_node: bool | None = None,
    platform: str | None = None,
    _remove_output_root: bool = True,
    **kwargs: Any,
) -> Session:
    """Start a smallpond session on pond. pond's own `init()` keywords (executor,
    memory_limit, catalog_url, storage_options, ...) are accepted too; others are an error."""
    return Session(
        job_id=job_id, job_time=job_time, job_name=job_name, data_root=data_root, num_executors=num_executors,
        ray_address=ray_address, bind_numa_node=bind_numa_node, platform=platform,
        _remove_output_root=_remove_output_root, **kwargs,
    )
