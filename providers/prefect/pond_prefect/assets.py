"""pond datasets as Prefect assets.

Each stage materialises its output dataset (`stage_dataset`: a sink's path, or
`pond://<pipeline>/<stage>` for an intermediate), and a sink each partition it wrote
(`<dataset>/dt=2026-11-20`). Upstream assets are the stage's source datasets (the folder, not
the day's glob: one asset across days) and its upstream stages' datasets. Prefect emits the events of a stage that ran; for a stage served from the cache
it emits none, so `emit_cached` records the same lineage, marked `pond.cached`.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from prefect.assets import Asset, AssetProperties
from prefect.context import AssetContext
from prefect.events import emit_event

from pond_core import api
from pond_core.api import PhysicalPlan, Stage

MATERIALIZED_BY = "pond"
_RESTRICTED = re.compile(r"[\s#?&%\"'<>\[\]{}|\\^`\x00]")
_MAX_KEY = 512


def asset_key(uri: str) -> str:
    """A valid Prefect asset key for a pond dataset URI or path."""
    key = uri if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", uri) else "file://" + os.path.abspath(uri)
    scheme, rest = key.split("://", 1)
    key = f"{scheme.lower()}://{_RESTRICTED.sub('_', rest).rstrip('/')}"
    if len(key) > _MAX_KEY:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        key = f"{key[: _MAX_KEY - 17]}~{digest}"
    return key


def stage_asset(plan: PhysicalPlan, stage: Stage) -> Asset:
    uri = api.stage_dataset(plan, stage)
    return Asset(key=asset_key(uri), properties=AssetProperties(name=uri, description=_describe(stage)))


def source_dataset(path: str) -> str:
    """The dataset a source path reads from: the folder above its first partition (`k=v`) or
    wildcard component, so `/shop/orders/dt=2026-11-20/*.parquet` is `/shop/orders`, the same
    asset every day, as in Airflow."""
    parts = path.split("/")
    for i, part in enumerate(parts):
        if i > 0 and parts[i - 1] and ("=" in part or set("*?[{") & set(part)):
            return "/".join(parts[:i])
    return path


def source_assets(stage: Stage) -> list[Asset]:
    keys = dict.fromkeys(asset_key(source_dataset(p)) for i in stage.sources for p in i.source.paths)
    return [Asset(key=k) for k in keys]


def upstream_assets(plan: PhysicalPlan, stage: Stage) -> list[Asset]:
    return source_assets(stage) + [stage_asset(plan, plan.stage(sid)) for sid in stage.depends_on]


def partition_assets(plan: PhysicalPlan, stage: Stage, result: dict[str, Any]) -> list[Asset]:
    """One asset per dataset partition a sink stage wrote (none for unpartitioned output)."""
    sink = result.get("sink") or {}
    base = api.stage_dataset(plan, stage).rstrip("/")
    keys = [p if isinstance(p, str) else p.get("key", "") for p in sink.get("partitions") or []]
    return [Asset(key=asset_key(f"{base}/{k}")) for k in keys if k]


def metadata(result: dict[str, Any]) -> dict[str, Any]:
    """What an asset event carries: counts and the run, never data or credentials."""
    return {
        "pond.run_id": result.get("run_id"),
        "pond.stage": result.get("stage"),
        "rows": result.get("rows"),
        "bytes": result.get("bytes"),
        "files": result.get("files"),
        "partitions": result.get("npartitions"),
        "schema": [f"{n} {t}" for n, t in result.get("schema") or []],
    }


def add_partitions_to_current_task(plan: PhysicalPlan, stage: Stage, result: dict[str, Any]) -> None:
    """Inside a materialising task: add the partitions it wrote, with metadata on every asset."""
    ctx = AssetContext.get()
    if ctx is None:
        return
    for asset in partition_assets(plan, stage, result):
        ctx.downstream_assets.add(asset)
    for asset in ctx.downstream_assets:
        ctx.add_asset_metadata(asset.key, metadata(result))


def emit_cached(plan: PhysicalPlan, stage: Stage, result: dict[str, Any], task_run_id: str) -> None:
    """Record the lineage of a stage whose result came from the cache."""
    upstream = upstream_assets(plan, stage)
    for asset in upstream:
        emit_event(event="prefect.asset.referenced", resource=AssetContext.asset_as_resource(asset), related=[])
    related = [AssetContext.asset_as_related(a) for a in upstream]
    related.append(AssetContext.related_materialized_by(MATERIALIZED_BY))
    related.append({"prefect.resource.id": f"prefect.task-run.{task_run_id}", "prefect.resource.role": "task-run"})
    payload = {**metadata(result), "pond.cached": True}
    for asset in [stage_asset(plan, stage), *partition_assets(plan, stage, result)]:
        emit_event(
            event="prefect.asset.materialization.succeeded",
            resource=AssetContext.asset_as_resource(asset),
            related=related,
            payload=payload,
        )


def _describe(stage: Stage) -> str:
    kind = {"sink": "dataset written", "exchange": "exchange", "files": "stage output"}.get(stage.output.kind, stage.output.kind)
    return f"pond stage {stage.name} ({kind})"[:2500]
