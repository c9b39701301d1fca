"""Cheap fingerprints of what a plan reads: file paths, sizes and modification times.

They key the stage cache and the pond run id, so a rerun over unchanged inputs is recognised
and a changed input is not. Only metadata is read (a listing and a stat per file), never data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

from pond_core.io import StorageOptions, get_filesystem, resolve_paths
from pond_core.plan.physical import PhysicalPlan, Stage


def stage_sources(stage: Stage) -> list[tuple[tuple[str, ...], bool]]:
    """The source paths (as written) a stage reads directly, with their `recursive` flag."""
    return [(tuple(i.source.paths), i.source.recursive) for i in stage.inputs if i.source is not None]


def source_fingerprint(stage: Stage, storage: StorageOptions) -> str:
    """A digest of every file the stage reads from sources: path, size and mtime."""
    entries: list[list[object]] = []
    for paths, recursive in stage_sources(stage):
        for path in resolve_paths(list(paths), recursive, storage):
            entries.append([path, *_stat(path, storage)])
    return _digest(entries)


def plan_fingerprint(plan: PhysicalPlan, storage: StorageOptions) -> str:
    """A digest of the plan and of every source file it reads."""
    return _digest([plan.fingerprint, *[[s.id, source_fingerprint(s, storage)] for s in plan.stages]])


def run_id_for(plan: PhysicalPlan, storage: StorageOptions) -> str:
    """The pond run id of this plan over the current inputs.

    A rerun over unchanged inputs gets the same id, so it resumes that run (committed stages
    and partitions are kept); changed inputs get a new run.
    """
    name = (plan.pipeline or "session").rsplit(":", 1)[-1]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "run"
    return f"{slug}-{plan_fingerprint(plan, storage)[:16]}"


def _stat(path: str, storage: StorageOptions) -> tuple[int, int | None]:
    if "://" not in path:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    # Object stores: pond's listing gives sizes only; an overwrite of equal size is missed.
    info = get_filesystem(path, storage).list_files(path, recursive=False)
    return (info[0].size if info else -1), None


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
