"""Cheap fingerprints of what a plan reads: file paths, sizes and modification times.

They key the stage cache and the pond run id, so a rerun over unchanged inputs is recognised
and a changed input is not. Only metadata is read (a listing and a stat per file), never data.
On object stores only sizes are listed: an overwrite of equal size is missed.
"""

from __future__ import annotations

import hashlib
import json
import re

from pond_core import api


def source_fingerprint(stage: api.Stage, storage: api.StorageOptions) -> str:
    """A digest of every file the stage reads from sources: path, size and mtime."""
    return _digest([[f.path, f.size, f.mtime_ns] for f in api.source_files(stage, storage)])


def plan_fingerprint(plan: api.PhysicalPlan, storage: api.StorageOptions) -> str:
    """A digest of the plan and of every source file it reads."""
    return _digest([plan.fingerprint, *[[s.id, source_fingerprint(s, storage)] for s in plan.stages]])


def run_id_for(plan: api.PhysicalPlan, storage: api.StorageOptions) -> str:
    """The pond run id of this plan over the current inputs.

    A rerun over unchanged inputs gets the same id, so it resumes that run (committed stages
    and partitions are kept); changed inputs get a new run.
    """
    name = (plan.pipeline or "session").rsplit(":", 1)[-1]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "run"
    return f"{slug}-{plan_fingerprint(plan, storage)[:16]}"


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
