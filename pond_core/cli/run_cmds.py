"""`pond run`, `pond resume` and `pond backfill`: the commands that do work."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from typing import TYPE_CHECKING, Any

import click

from pond_core.cli import render
from pond_core.cli.common import (
    FAILED,
    CliError,
    check_run_id,
    emit_json,
    executor_option,
    json_option,
    open_catalog,
    param_option,
    parse_params,
    resolve_settings,
    storage_options,
)
from pond_core.cli.execution import Outcome, execute
from pond_core.errors import PondError
from pond_core.plan.physical import PhysicalPlan, SinkOutput

if TYPE_CHECKING:
    from pond_core.catalog import Catalog
    from pond_core.settings import Settings

MAX_BACKFILL_DAYS = 3660


def compile_ref(ref: str, pairs: tuple[str, ...], data_root: str | None, extra: dict[str, Any] | None = None) -> PhysicalPlan:
    """Load `module:function`, cast its parameters and compile it; nothing runs."""
    from pond_core.pipeline import compile_pipeline, load_pipeline

    if ":" not in ref:
        raise CliError(
            f"{ref!r} is not a pipeline: write it module:function (e.g. pond_core.examples:daily_revenue); "
            f"to inspect a run use `pond runs {ref}`, to resume one `pond resume {ref}`"
        )
    func = load_pipeline(ref)
    params = {**parse_params(func, pairs), **(extra or {})}
    try:
        return compile_pipeline(ref, params, data_root=data_root)
    except PondError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:  # the user's function failed while building its plan
        raise CliError(f"pipeline {ref} raised while building its plan: {type(exc).__name__}: {exc}") from None


def read_plan(path: str) -> PhysicalPlan:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise CliError(f"cannot read plan {path}: {exc.strerror or exc}") from None
    try:
        return PhysicalPlan.from_json(text)
    except PondError as exc:
        raise CliError(f"plan {path}: {exc}") from None


def load_plan(ref: str | None, plan_file: str | None, pairs: tuple[str, ...], data_root: str | None) -> PhysicalPlan:
    if (ref is None) == (plan_file is None):
        raise CliError("give a PIPELINE (module:function) or --plan FILE, not both or neither")
    if plan_file is not None:
        if pairs:
            raise CliError("-p/--param cannot change a compiled plan; its parameters are part of it")
        return read_plan(plan_file)
    return compile_ref(str(ref), pairs, data_root)


def _slug(plan: PhysicalPlan) -> str:
    name = (plan.pipeline or "plan").rpartition(":")[2]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "plan"


def new_run_id(plan: PhysicalPlan) -> str:
    return f"{_slug(plan)}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def report(outcome: Outcome, as_json: bool) -> None:
    """Print the run's summary; a failed run exits 1 with its error."""
    if as_json:
        emit_json(outcome.to_dict())
    else:
        rows = [
            (r["stage"], r["state"], r["partitions"], r["rows"], r["files"], render.size(r["bytes"]), render.seconds(r["seconds"]),
             r["task_retries"], r["node_failures"], r["speculative_attempts"])
            for r in outcome.stages
        ]
        out = render.console()
        columns = ["STAGE", "STATE", "PARTS", "ROWS", "FILES", "BYTES", "SECONDS", "RETRIES", "NODES LOST", "SPECULATIVE"]
        out.print(render.table(f"run {outcome.run_id}", columns, rows))
        if outcome.status == "success":
            out.print(f"run {outcome.run_id} [green]succeeded[/] in {render.seconds(outcome.seconds)}; output: {outcome.output}")
    if outcome.status != "success":
        if outcome.recorded:
            raise CliError(f"run {outcome.run_id} failed: {outcome.error} (resume it with: pond resume {outcome.run_id})", FAILED)
        raise CliError(
            f"run {outcome.run_id} failed: {outcome.error} (the catalog has no record of this run, so there is "
            "nothing to resume: fix the cause and run the same command again)", FAILED,
        )


@click.command("run")
@click.argument("pipeline", required=False)
@param_option
@click.option("--plan", "plan_file", metavar="FILE", help="Run a plan compiled earlier with `pond plan --format json`.")
@click.option("--run-id", metavar="ID", help="Run id; reuse one to resume that run. Default: <function>-<UTC time>-<random>.")
@executor_option
@storage_options
@json_option
def run_command(
    pipeline: str | None, params: tuple[str, ...], plan_file: str | None, run_id: str | None,
    executor: str | None, data_root: str | None, catalog_url: str | None, as_json: bool,
) -> None:
    """Run PIPELINE (module:function) with its parameters, or a compiled --plan.

    Stages already committed for the run id are skipped, so running an interrupted run id again
    resumes it. To recompute, start a new run (omit --run-id).

    \b
    Example:
      pond run pond_core.examples:daily_revenue -p ds=2026-11-20 \\
          -p source_root=/data/shop -p output_root=/data/revenue
    """
    settings = resolve_settings(data_root, catalog_url, executor)
    plan = load_plan(pipeline, plan_file, params, settings.data_root)
    run_id = check_run_id(run_id) if run_id else new_run_id(plan)
    with open_catalog(settings) as catalog:
        report(execute(plan, run_id, settings, catalog, show_progress=not as_json), as_json)


@click.command("resume")
@click.argument("run_id")
@executor_option
@storage_options
@json_option
def resume_command(run_id: str, executor: str | None, data_root: str | None, catalog_url: str | None, as_json: bool) -> None:
    """Run RUN_ID again with the pipeline and parameters it was started with.

    Committed stages and partitions are kept; the rest runs. Same as `pond run PIPELINE -p ...
    --run-id RUN_ID`.
    """
    settings = resolve_settings(data_root, catalog_url, executor)
    with open_catalog(settings) as catalog:
        earlier = catalog.get_run(run_id)
        if earlier is None:
            raise CliError(f"no run {run_id} in the catalog at {catalog.url}")
        plan = compile_ref(earlier["pipeline"], (), settings.data_root, earlier["params"])
        report(execute(plan, check_run_id(run_id), settings, catalog, show_progress=not as_json), as_json)


# -- backfill ---------------------------------------------------------------------------------


def days_between(start: str, end: str) -> list[str]:
    try:
        first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    except ValueError as exc:
        raise CliError(f"--from/--to take dates like 2026-11-20: {exc}") from None
    if last < first:
        raise CliError(f"--to {end} is before --from {start}")
    if (last - first).days >= MAX_BACKFILL_DAYS:
        raise CliError(f"a backfill covers at most {MAX_BACKFILL_DAYS} days; split {start}..{end}")
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def backfill_run_id(plan: PhysicalPlan, day: str) -> str:
    """The same pipeline, day and plan always give the same run id: a repeat resumes, not redoes."""
    digest = hashlib.sha256(f"{plan.pipeline}|{plan.fingerprint}".encode()).hexdigest()[:8]
    return f"{_slug(plan)}-{day}-{digest}"


def forced_run_id(base: str) -> str:
    """A recompute is a new run, so the committed one stays in the history as it was."""
    now = dt.datetime.now(dt.timezone.utc)
    return f"{base}-f{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}"


def committed_days(catalog: Catalog, plan: PhysicalPlan, days: list[str]) -> dict[str, str] | None:
    """{day: run id that committed it} for days whose sink partition `<partition_by[0]>=<day>`
    is in the catalog; None when the pipeline has no sink partitioned by a column."""
    output = plan.final.output
    if not isinstance(output, SinkOutput) or not output.sink.partition_by:
        return None
    column = output.sink.partition_by[0]
    found: dict[str, str] = {}
    for part in catalog.list_partitions(output.sink.path):
        day = part["key"].split("/", 1)[0].removeprefix(f"{column}=")
        if day in days and part["key"].startswith(f"{column}="):
            found[day] = part["run_id"]
    return found


@click.command("backfill")
@click.argument("pipeline")
@click.option("--from", "start", required=True, metavar="DATE", help="First day, e.g. 2026-11-01.")
@click.option("--to", "end", required=True, metavar="DATE", help="Last day, included.")
@click.option("--param-name", default="ds", show_default=True, help="The pipeline parameter that takes the day.")
@param_option
@click.option("--force", is_flag=True, help="Also run committed days, each as a new run (id suffixed -f<UTC time>).")
@executor_option
@storage_options
@json_option
def backfill_command(
    pipeline: str, start: str, end: str, param_name: str, params: tuple[str, ...], force: bool,
    executor: str | None, data_root: str | None, catalog_url: str | None, as_json: bool,
) -> None:
    """Run PIPELINE once per day from --from to --to, skipping committed days.

    A day is committed when the pipeline's sink (partitioned by a date column) has the partition
    `<column>=<day>` in the catalog; for other pipelines, when that day's run succeeded. Each
    day's run id is derived from the pipeline, the day and the plan, so repeating a backfill
    resumes it. Every day is compiled before any runs: a bad parameter runs nothing.

    \b
    Example:
      pond backfill pond_core.examples:daily_revenue --from 2026-11-01 --to 2026-11-03 \\
          -p source_root=/data/shop -p output_root=/data/revenue
    """
    settings = resolve_settings(data_root, catalog_url, executor)
    days = days_between(start, end)
    plans = [compile_ref(pipeline, params, settings.data_root, {param_name: day}) for day in days]
    with open_catalog(settings) as catalog:
        done = committed_days(catalog, plans[0], days)
        results = [_backfill_day(catalog, settings, day, plan, done, force, as_json) for day, plan in zip(days, plans)]
    _backfill_report(pipeline, start, end, results, as_json)


def _backfill_day(
    catalog: Catalog, settings: Settings, day: str, plan: PhysicalPlan, done: dict[str, str] | None, force: bool, as_json: bool,
) -> dict[str, Any]:
    run_id = backfill_run_id(plan, day)
    if done is None:
        earlier = catalog.get_run(run_id)
        already = earlier is not None and earlier["status"] == "success"
    else:
        already = day in done
    if already and not force:
        committed_by = done[day] if done else run_id
        return {"day": day, "run_id": committed_by, "status": "skipped", "rows": None, "seconds": None, "error": None, "forced": False}
    if already:
        run_id = forced_run_id(run_id)
    outcome = execute(plan, run_id, settings, catalog, show_progress=not as_json)
    rows = outcome.stages[-1]["rows"] if outcome.status == "success" and outcome.stages else None
    return {"day": day, "run_id": run_id, "status": outcome.status, "rows": rows, "seconds": outcome.seconds, "error": outcome.error, "forced": already}


def _backfill_report(pipeline: str, start: str, end: str, results: list[dict[str, Any]], as_json: bool) -> None:
    counts = {s: sum(r["status"] == s for r in results) for s in ("success", "skipped", "failed")}
    if as_json:
        emit_json({"pipeline": pipeline, "from": start, "to": end, "days": results, **counts})
    else:
        rows = [(r["day"], r["status"], r["run_id"], r["rows"], render.seconds(r["seconds"]), render.one_line(r["error"])) for r in results]
        out = render.console()
        out.print(render.table(f"backfill {pipeline} {start}..{end}", ["DAY", "STATUS", "RUN ID", "ROWS", "SECONDS", "ERROR"], rows))
        out.print(f"{counts['success']} ran, {counts['skipped']} skipped (already committed), {counts['failed']} failed")
    if counts["failed"]:
        failed = ", ".join(r["day"] for r in results if r["status"] == "failed")
        raise CliError(f"backfill failed for {failed}; run the same command again to resume", FAILED)
