"""Running a compiled plan for one run id, with a progress bar per stage.

A run keeps its stage outputs under `<data-root>/jobs/<run_id>/` (until `pond clean`), so
starting the same run id again skips committed stages and committed partitions: that is resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from pond_core.cli import render
from pond_core.cli.common import CliError
from pond_core.errors import PondError
from pond_core.execute.results import StageManifest, StageResult
from pond_core.layout import RunLayout
from pond_core.plan.physical import PhysicalPlan, Stage
from pond_core.progress import StageBars
from pond_core.settings import Settings

if TYPE_CHECKING:
    from pond_core.catalog import Catalog


@dataclasses.dataclass
class Outcome:
    """What `pond run` reports: JSON-able, one row per stage."""

    run_id: str
    pipeline: str
    params: dict[str, Any]
    status: str  # success | failed
    seconds: float
    stages: list[dict[str, Any]]
    output: str | None = None
    error: str | None = None
    recorded: bool = True  # the catalog has the run, so `pond resume` can finish it


    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_dir(settings: Settings, run_id: str) -> str:
    return RunLayout(settings.data_root, run_id).run_root


def check_reuse(catalog: Catalog, run_id: str, plan: PhysicalPlan) -> dict[str, Any] | None:
    """A run id may only be reused for the same pipeline and plan; returns the earlier run."""
    earlier = catalog.get_run(run_id)
    if earlier is None:
        return None
    pipeline = plan.pipeline or "session"
    if earlier["pipeline"] != pipeline:
        raise CliError(f"run {run_id} belongs to pipeline {earlier['pipeline']}, not {pipeline}; use another --run-id")
    if earlier["plan_fingerprint"] and earlier["plan_fingerprint"] != plan.fingerprint:
        raise CliError(
            f"run {run_id} was started with plan {earlier['plan_fingerprint']}, not {plan.fingerprint}: "
            "the pipeline or its parameters changed since; use another --run-id"
        )
    return earlier


def execute(
    plan: PhysicalPlan,
    run_id: str,
    settings: Settings,
    catalog: Catalog,
    *,
    show_progress: bool,
) -> Outcome:
    """Run (or resume) every stage of `plan` as `run_id`; failures become a failed Outcome.

    While it runs, whatever writes to stdout (Ray prints its workers' and raylets' messages
    there) goes to stderr: stdout carries only the report, so `--json` output stays parseable.
    """
    with contextlib.redirect_stdout(sys.stderr):
        return _execute(plan, run_id, settings, catalog, show_progress)


def _execute(plan: PhysicalPlan, run_id: str, settings: Settings, catalog: Catalog, show_progress: bool) -> Outcome:
    from pond_core.execute.executor_for import make_executor
    from pond_core.runner import run_plan

    earlier = check_reuse(catalog, run_id, plan)
    if show_progress:
        again = f" (resuming: it was {earlier['status']} after {earlier['attempts']} attempt(s))" if earlier else ""
        render.err_console().print(f"run {run_id}: {plan.pipeline or 'plan'}, {len(plan.stages)} stages{again}")
    # Started here, before anything is recorded: a Ray that cannot start is an invalid command.
    executor = make_executor(settings)
    display = StageProgress(plan, started=time.time(), enabled=show_progress)
    outcome = Outcome(run_id, plan.pipeline or "session", dict(plan.params), "success", 0.0, display.rows)
    try:
        with display:
            run_plan(
                plan, run_id, settings=settings, executor=executor, catalog=catalog, progress=display.update, on_stage=display.finished,
            )
    except PondError as exc:  # run_plan has recorded the failure, if it got as far as recording the run
        outcome.status, outcome.error = "failed", str(exc)
        outcome.recorded = _recorded(catalog, run_id)
    finally:
        executor.shutdown()
    outcome.seconds = round(time.time() - display.started, 3)
    order = {s.name: i for i, s in enumerate(plan.stages)}
    display.rows.sort(key=lambda row: order[row["stage"]])  # independent stages finish in any order
    if outcome.status == "success" and display.rows:
        outcome.output = display.rows[-1]["location"]
    return outcome


def _recorded(catalog: Catalog, run_id: str) -> bool:
    """Whether the catalog knows the run (a run that failed before it started is not in it, and
    a catalog that failed may not answer at all)."""
    try:
        return catalog.get_run(run_id) is not None
    except PondError:
        return False


class StageProgress:
    """One bar per stage (partitions done / total), on stderr; collects the summary rows.

    Independent stages run at once, so the callbacks may come from several threads.
    """

    def __init__(self, plan: PhysicalPlan, *, started: float, enabled: bool) -> None:
        self.plan = plan
        self.started = started
        self.rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._bars = StageBars(plan, render.err_console(), enabled=enabled)

    def __enter__(self) -> StageProgress:
        self._bars.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._bars.__exit__(*exc)

    def update(self, stage: Stage, done: int, total: int) -> None:
        self._bars.update(stage, done, total)

    def finished(self, stage: Stage, manifest: StageManifest) -> None:
        result = manifest.result
        skipped = result.finished_at < self.started
        with self._lock:
            self.rows.append(_stage_row(stage, result, skipped))
        self._bars.finished(stage, manifest)


def _stage_row(stage: Stage, result: StageResult, skipped: bool) -> dict[str, Any]:
    return {
        "stage": stage.name,
        "stage_id": stage.id,
        "state": "skipped" if skipped else "ran",
        "partitions": result.npartitions,
        "rows": result.rows,
        "files": result.files,
        "bytes": result.bytes,
        "seconds": result.seconds,
        "task_retries": result.task_retries,
        "node_failures": result.node_failures,
        "speculative_attempts": result.speculative_attempts,
        "location": result.location,
    }
