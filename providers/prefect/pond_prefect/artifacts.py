"""The artifacts of a pipeline's flow run: its plan, a progress bar, and per-stage statistics."""

from __future__ import annotations

import re
import threading
import time
from typing import Any
from uuid import UUID

from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact, update_progress_artifact

from pond_core.lineage import stage_dataset
from pond_core.plan.physical import PhysicalPlan, Stage


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
    lines = [
        f"# pond plan: {plan.pipeline or 'session'}",
        "",
        f"pond run `{run_id}`, plan fingerprint `{plan.fingerprint}`, {len(plan.stages)} stages.",
        "",
        "| # | stage | reads | partitions | writes |",
        "|---|---|---|---|---|",
    ]
    for n, stage in enumerate(plan.stages, 1):
        lines.append(f"| {n} | `{stage.name}` | {_reads(plan, stage)} | {stage.npartitions or 'by input'} | {_writes(plan, stage)} |")
    for stage in plan.stages:
        lines += ["", f"## {stage.name}", "", f"id `{stage.id}`" + (f"; after {', '.join(f'`{plan.stage(d).name}`' for d in stage.depends_on)}" if stage.depends_on else "")]
        for step in stage.steps:
            if step.kind == "sql" and step.query:
                lines += ["", "```sql", step.query.strip(), "```"]
            elif step.kind == "python" and step.func is not None:
                lines += ["", f"Python `{step.method}({step.func.label})`"]
    return "\n".join(lines)


def _reads(plan: PhysicalPlan, stage: Stage) -> str:
    out = []
    for inp in stage.inputs:
        if inp.source is not None:
            out += [f"`{p}` ({inp.source.format})" for p in inp.source.paths]
        else:
            out.append(f"`{plan.stage(inp.stage).name}` ({inp.split})")
    return "<br>".join(out) or "-"


def _writes(plan: PhysicalPlan, stage: Stage) -> str:
    out = stage.output
    if out.kind == "exchange":
        how = f"{out.method} by {', '.join(out.keys)}" if out.keys else (out.method or "")
        return f"exchange, {out.npartitions} buckets ({how})"
    if out.kind == "sink":
        sink = out.sink or {}
        parts = sink.get("partition_by")
        return f"`{stage_dataset(plan, stage)}` ({sink.get('mode', 'error')}" + (f", by {parts}" if parts else "") + ")"
    return "files"


def create_plan_artifact(plan: PhysicalPlan, run_id: str) -> UUID:
    return create_markdown_artifact(plan_markdown(plan, run_id), key=artifact_key(plan, "plan"), description=f"pond plan of run {run_id}")


def create_stats_artifact(plan: PhysicalPlan, outcomes: dict[str, dict[str, Any]]) -> UUID:
    """One row per stage: its state and its result's counts (empty for a stage that did not run)."""
    rows = []
    for stage in plan.stages:
        outcome = outcomes.get(stage.id) or {}
        result = outcome.get("result") or {}
        rows.append(
            {
                "stage": stage.name,
                "state": outcome.get("state", "Not run"),
                "partitions": result.get("npartitions"),
                "rows": result.get("rows"),
                "bytes": result.get("bytes"),
                "files": result.get("files"),
                "duration_s": result.get("seconds"),
                "task_retries": result.get("task_retries"),
                "node_failures": result.get("node_failures"),
                "speculative_attempts": result.get("speculative_attempts"),
                "executor": result.get("executor"),
                "output": result.get("location"),
            }
        )
    return create_table_artifact(rows, key=artifact_key(plan, "stages"), description="pond stage statistics")


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
        self.artifact_id = create_progress_artifact(0.0, key=artifact_key(plan, "progress"), description="pond: share of partitions done")

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

    def _push(self, force: bool) -> None:
        percent = self.percent
        with self._lock:
            last, when = self._sent
            if percent == last or (not force and time.monotonic() - when < self._min_interval):
                return
            self._sent = (percent, time.monotonic())
        update_progress_artifact(self.artifact_id, percent)
