"""The artifacts of a pipeline's flow run: its plan, a progress bar, and per-stage statistics."""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from pond_core import api
from pond_core.api import PhysicalPlan, Stage

if TYPE_CHECKING:
    from pond_prefect.outcomes import StageOutcome


def artifact_key(plan: PhysicalPlan, what: str) -> str:
    """`pond-<flow>-<what>` (the pipeline's name outside a flow): lowercase letters, digits and
    dashes, as Prefect requires. Keyed by flow, each flow's artifacts form their own history."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    name = ctx.flow.name if ctx and ctx.flow else (plan.pipeline or "session").rsplit(":", 1)[-1]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "pipeline"
    if slug.startswith("pond-"):
        slug = slug[len("pond-"):]
    return f"pond-{slug}-{what}"


def plan_markdown(plan: PhysicalPlan, run_id: str) -> str:
    described = [api.describe_stage(plan, stage) for stage in plan.stages]
    lines = [
        f"# pond plan: {plan.pipeline or 'session'}",
        "",
        f"pond run `{run_id}`, plan fingerprint `{plan.fingerprint}`, {len(plan.stages)} stages.",
        "",
        "| # | stage | reads | partitions | writes |",
        "|---|---|---|---|---|",
    ]
    for n, d in enumerate(described, 1):
        reads = "<br>".join(f"`{i}`" for i in d.inputs) or "-"
        lines.append(f"| {n} | `{d.name}` | {reads} | {d.partitions or 'by input'} | {d.output} |")
    for d in described:
        after = f"; after {', '.join(f'`{name}`' for name in d.depends_on)}" if d.depends_on else ""
        lines += ["", f"## {d.name}", "", f"id `{d.id}`{after}"]
        for query in d.sql:
            lines += ["", "```sql", query.strip(), "```"]
        for step in d.python:
            lines += ["", f"Python `{step}`"]
    return "\n".join(lines)


def create_plan_artifact(plan: PhysicalPlan, run_id: str) -> UUID:
    created = create_markdown_artifact(plan_markdown(plan, run_id), key=artifact_key(plan, "plan"), description=f"pond plan of run {run_id}")
    return cast(UUID, created)  # called from sync code: Prefect returns the id, not a coroutine


def create_stats_artifact(plan: PhysicalPlan, outcomes: dict[str, StageOutcome]) -> UUID:
    """One row per stage: its state and its result's counts (empty for a stage that did not run)."""
    rows = []
    for stage in plan.stages:
        outcome = outcomes.get(stage.id)
        result = (outcome.result if outcome else None) or {}
        retries = [result.get(k) or 0 for k in ("task_retries", "node_failures", "speculative_attempts")]
        rows.append(
            {
                "stage": stage.name,
                "state": outcome.state_name if outcome else "Not run",
                "partitions": result.get("npartitions"),
                "rows": result.get("rows"),
                "size": api.human_bytes(result["bytes"]) if result.get("bytes") is not None else None,
                "files": result.get("files"),
                # A cached stage did no work now: its recorded seconds are the first run's.
                "seconds": 0.0 if outcome and outcome.cached else result.get("seconds"),
                "retries / lost nodes / speculative": "/".join(str(n) for n in retries) if result else None,
                "executor": result.get("executor"),
                "output": _short_path(result.get("location")),
            }
        )
    return cast(UUID, create_table_artifact(rows, key=artifact_key(plan, "stages"), description="pond stage statistics"))


def _short_path(path: str | None) -> str | None:
    """The last two components: the column stays narrow (the plan artifact has full paths)."""
    if not path:
        return path
    parts = path.rstrip("/").split("/")
    return path if len(parts) <= 3 else "…/" + "/".join(parts[-2:])


def stage_artifact_key(plan: PhysicalPlan, stage: Stage) -> str:
    return artifact_key(plan, "stage-" + re.sub(r"[^a-z0-9]+", "-", stage.name.lower()).strip("-"))[:100]


def stage_done_markdown(result: dict[str, Any]) -> str:
    return (
        f"**Committed** {result.get('npartitions')} partitions, {result.get('rows')} rows, "
        f"{api.human_bytes(result.get('bytes'))} in {result.get('files')} files, {result.get('seconds')} s, "
        f"at `{result.get('location')}`"
    )


def _stage_artifact(plan: PhysicalPlan, stage: Stage, result: dict[str, Any]) -> dict[str, Any]:
    done = stage_done_markdown(result)
    return {"markdown": api.stage_markdown(plan, stage, done), "key": stage_artifact_key(plan, stage), "description": f"pond stage {stage.name}"}


def create_stage_artifact(plan: PhysicalPlan, stage: Stage, result: dict[str, Any]) -> UUID:
    """On the stage's task run: what it read and wrote, its SQL, and what it committed."""
    return cast(UUID, create_markdown_artifact(**_stage_artifact(plan, stage, result)))


async def acreate_stage_artifact(plan: PhysicalPlan, stage: Stage, result: dict[str, Any]) -> UUID:
    """`create_stage_artifact` from an async task (the service mode's stages)."""
    return await acreate_markdown_artifact(**_stage_artifact(plan, stage, result))


def _checks_artifact(plan: PhysicalPlan, stage: Stage, checks: list[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for c in checks:
        status = "passed" if c["passed"] else ("FAILED" if c["severity"] == "error" else "warned")
        sample = "; ".join(" | ".join(r) for r in c.get("sample") or [])
        rows.append({"check": c["name"], "severity": c["severity"], "status": status, "failing": c["failing"], "detail": c["detail"], "sample": sample})
    slug = re.sub(r"[^a-z0-9]+", "-", stage.name.lower()).strip("-")[:40] or "stage"
    return {"table": rows, "key": artifact_key(plan, f"checks-{slug}"), "description": f"pond checks before publish of stage {stage.name}"}


def create_checks_artifact(plan: PhysicalPlan, stage: Stage, checks: list[dict[str, Any]]) -> UUID:
    """The stage's checks before publish, one row each: passed, failed (nothing published) or
    warned, with the failing count and a few sample rows."""
    return cast(UUID, create_table_artifact(**_checks_artifact(plan, stage, checks)))


async def acreate_checks_artifact(plan: PhysicalPlan, stage: Stage, checks: list[dict[str, Any]]) -> UUID:
    """`create_checks_artifact` from an async task."""
    return await acreate_table_artifact(**_checks_artifact(plan, stage, checks))


class Progress:
    """The flow run's progress artifact: the mean of every stage's finished-partition share.

    Fed by pond's progress callback (called on the stage's thread as partitions commit); API
    updates are throttled so a thousand partitions do not make a thousand calls.
    """

    def __init__(self, plan: PhysicalPlan, min_interval: float = 0.5) -> None:
        self._stages = [s.id for s in plan.stages]
        self._share: dict[str, float] = {}
        self._lock = threading.Lock()
        self._min_interval = min_interval
        self._sent = (-1.0, 0.0)  # (percent, when)
        self.artifact_id: UUID = cast(UUID, create_progress_artifact(0.0, key=artifact_key(plan, "progress"), description="pond: share of partitions done"))

    @property
    def percent(self) -> float:
        with self._lock:
            return round(100.0 * sum(self._share.values()) / max(1, len(self._stages)), 2)

    def partitions_done(self, stage: Stage, done: int, total: int) -> None:
        with self._lock:
            self._share[stage.id] = done / total if total else 1.0
        self._push(force=done == total)

    def stage_done(self, stage_id: str) -> None:
        with self._lock:
            self._share[stage_id] = 1.0
        self._push(force=True)

    async def astage_done(self, stage_id: str) -> None:
        """`stage_done` from an async task (the service mode's stages)."""
        with self._lock:
            self._share[stage_id] = 1.0
        percent = self._due(force=True)
        if percent is not None:
            await aupdate_progress_artifact(self.artifact_id, percent)

    def _push(self, force: bool) -> None:
        percent = self._due(force)
        if percent is not None:
            update_progress_artifact(self.artifact_id, percent)

    def _due(self, force: bool) -> float | None:
        """The percentage to send now, or None (unchanged, or sent less than min_interval ago)."""
        percent = self.percent
        with self._lock:
            last, when = self._sent
            if percent == last or (not force and time.monotonic() - when < self._min_interval):
                return None
            self._sent = (percent, time.monotonic())
        return percent
