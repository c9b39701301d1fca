"""Which pond datasets are Airflow Assets, and what their events say.

Only what users care about is an Asset: the sources a pipeline reads (inlets) and the datasets
it publishes (sinks, as outlets). Both sit on the task that writes the sink, so Airflow's asset
graph draws one chain per output, `source -> task -> dataset`, instead of every stage task
feeding its own exchange side by side. Intermediate stage outputs (`pond://<dag>.<group>/<stage>`)
stay in pond's catalog and in OpenLineage, where the stage-by-stage graph belongs.

An event's extra is flat: numbers and short strings only, so the UI shows rows, size, files,
partitions and the pond run at a glance instead of a collapsed object.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pond_airflow.openlineage import dataset_uri
from pond_core import api

MAX_LISTED_PARTITIONS = 20
PER_RUN = "pond.{scope}.{stage}"


def is_published(uri: str) -> bool:
    """A dataset users read (a sink's path or table), not one of pond's intermediates."""
    return not uri.startswith("pond://")


def source_uri(path: str) -> str:
    """The dataset a source path belongs to: `/shop/orders/dt={{ ds }}/*.parquet` and
    `/shop/orders/dt=2026-11-20` are both `file:///shop/orders`, which every run shares."""
    parts = path.split("/")
    for i, part in enumerate(parts):
        if i > 0 and ("{{" in part or "{%" in part or "=" in part):
            path = "/".join(parts[:i])
            break
    return dataset_uri(path)


def upstream_sources(plan: api.PhysicalPlan, stage: api.Stage) -> list[str]:
    """Every source path `stage` derives from, through its upstream stages, in plan order."""
    wanted = {stage.id}
    for s in reversed(plan.stages):
        if s.id in wanted:
            wanted.update(s.depends_on)
    paths: list[str] = []
    for s in plan.stages:
        if s.id in wanted:
            for inp in s.sources:
                paths.extend(p for p in inp.source.paths if p not in paths)
    return paths


def event_extra(result: dict[str, Any], run_id: str) -> dict[str, str | int | float | None]:
    """What an asset event says about one write, as flat keys (see the module docstring)."""
    sink = result.get("sink") or {}
    keys = [p if isinstance(p, str) else p.get("key") for p in sink.get("partitions") or []]
    keys = [k for k in keys if k]
    extra: dict[str, str | int | float | None] = {
        "rows": sink.get("rows", result.get("rows")),
        "size": api.human_bytes(result.get("bytes")) if result.get("bytes") is not None else None,
        "bytes": result.get("bytes"),
        "files": result.get("files"),
    }
    if keys:
        shown = ", ".join(keys[:MAX_LISTED_PARTITIONS])
        extra["partitions"] = shown + (f" (+{len(keys) - MAX_LISTED_PARTITIONS} more)" if len(keys) > MAX_LISTED_PARTITIONS else "")
        extra["partition_count"] = len(keys)
    checks = [api.CheckResult.from_dict(c) for c in result.get("checks") or []]
    if checks:
        extra["checks"] = checks_summary(checks)
    extra["pond_run"] = run_id
    extra["stage"] = result.get("stage")
    return extra


def checks_summary(checks: Iterable[api.CheckResult]) -> str:
    """`3 passed; warned: unique(id)` - one line, for an event extra or a task's state."""
    checks = list(checks)
    passed = sum(1 for c in checks if c.passed)
    parts = [f"{passed} passed"] if passed else []
    failed = [c.name for c in checks if not c.passed and c.severity == "error"]
    warned = [c.name for c in checks if not c.passed and c.severity != "error"]
    if failed:
        parts.append("failed: " + ", ".join(failed))
    if warned:
        parts.append("warned: " + ", ".join(warned))
    return "; ".join(parts)


def emit(context: Any, outlets: Iterable[Any], uri: str, extra: dict[str, Any], match: bool = True) -> None:
    """Attach `extra` to this task's outlet events for the dataset at `uri`.

    A static Asset outlet gets the extra when it names this dataset (or always, with
    match=False: the operator's outlets are what the user said it writes); an AssetAlias outlet
    gains an event for `Asset(uri)`, for outputs whose URI is known only at run time. Written
    partitions go in the extra, not in the event's partition keys: those belong to the DAG
    run (a partitioned run's key), and an event with a key no longer triggers the
    non-partitioned DAGs scheduled on the asset.
    """
    from airflow.sdk import Asset, AssetAlias

    events = context["outlet_events"]
    target = dataset_uri(uri)
    for outlet in outlets:
        if isinstance(outlet, AssetAlias):
            events[outlet].add(Asset(target), extra=extra)
        elif isinstance(outlet, Asset) and (not match or outlet.uri.rstrip("/") == Asset(target).uri.rstrip("/")):
            events[outlet].extra.update(extra)
