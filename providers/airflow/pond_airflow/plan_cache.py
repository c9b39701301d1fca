"""Compiled plans cached on disk, once per DAG-file version.

Airflow parses the DAG file again at every task's start, and each parse renders the pipeline
group by compiling the plan; the task then compiles it once more with the run's parameters.
Compiling means importing the pipeline and planning its SQL: 0.8-1.9 s of every task's start
at example size. A compiled plan depends only on the pipeline's code and its parameters, so
it is cached as JSON under a key of:

- the pipeline reference and its parameters (rendered: a run's own values are their own key);
- pond's version, and the pipeline module's source (a digest of its file), so an edited
  pipeline or an upgraded pond compiles afresh;
- the data root the plan was compiled for.

The cache lives in `$AIRFLOW_HOME/pond/plans` (or `POND_AIRFLOW_PLAN_CACHE`). Entries are
written to a temporary file and renamed into place, so concurrent parses and tasks never read
half a file; a broken entry is a miss, and a cache that cannot be written only costs time. A
pipeline whose module has no source file (nothing to digest) is compiled every time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

from pond_core import api

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
T = TypeVar("T")


def cache_dir() -> str:
    explicit = os.environ.get("POND_AIRFLOW_PLAN_CACHE")
    if explicit:
        return explicit
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return os.path.join(home, "pond", "plans")


def compile_cached(pipeline: str, params: dict[str, Any], data_root: str | None = None) -> api.PhysicalPlan:
    """`api.compile_pipeline(pipeline, params)`, served from the cache when the key matches."""
    return cached(
        "plan", pipeline, params, {"data_root": data_root},
        build=lambda: api.compile_pipeline(pipeline, params, data_root=data_root), dump=lambda p: p.to_json(), load=api.PhysicalPlan.from_json,
    )


def cached(
    kind: str, pipeline: str, params: dict[str, Any], extra: dict[str, Any], *,
    build: Callable[[], T], dump: Callable[[T], str], load: Callable[[str], T],
) -> T:
    """What `build()` makes for this pipeline and parameters (a compiled plan, or what the DAG
    renders from it), from the cache when the key matches; `extra` joins the key. An entry
    that does not load is a miss, rebuilt and rewritten."""
    key = plan_key(pipeline, params, {"kind": kind, **extra})
    if key is None:
        return build()
    path = os.path.join(cache_dir(), key[:2], f"{key}.{kind}.json")
    try:
        with open(path) as f:
            return load(f.read())
    except FileNotFoundError:
        pass
    except Exception as exc:  # a broken entry is a miss; the build rewrites it
        log.warning("pond plan cache: ignoring unreadable %s (%s)", path, exc)
    value = build()
    _write(path, dump(value))
    return value


def plan_key(pipeline: str, params: dict[str, Any], extra: dict[str, Any] | None = None) -> str | None:
    """The cache key (see the module docstring); None when the pipeline's source is unknown."""
    source = module_digest(pipeline)
    if source is None:
        return None
    parts = {
        "format": CACHE_FORMAT,
        "pipeline": pipeline,
        "params": params,
        "pond": _pond_version(),
        "source": source,
        **(extra or {}),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()


def _pond_version() -> str:
    from pond_core import __version__  # pond_core's package root imports nothing heavy

    return __version__


def module_digest(pipeline: str) -> str | None:
    """A digest of the source file of the pipeline's module (`module:function`)."""
    module = pipeline.partition(":")[0]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    origin = getattr(spec, "origin", None)
    if not origin or not os.path.isfile(origin):
        return None
    with open(origin, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _write(path: str, text: str) -> None:
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)  # atomic: a reader sees the old entry, none, or this one whole
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        log.warning("pond plan cache: cannot write %s (%s); compiling each time", path, exc)
