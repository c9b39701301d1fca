"""Read-only commands over the catalog: runs, one run, datasets, partitions, lineage."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from pond_core.cli import render
from pond_core.cli.common import CliError, emit_json, json_option, storage_options, with_catalog
from pond_core.heartbeat import MISSED_BEATS, heartbeat_seconds

if TYPE_CHECKING:
    from pond_core.catalog import Catalog
    from pond_core.settings import Settings

STATUSES = ("running", "success", "failed")


@click.command("runs")
@click.argument("run_id", required=False)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many runs to list, newest first.")
@click.option("--pipeline", metavar="MODULE:FUNCTION", help="Only runs of this pipeline.")
@click.option("--status", type=click.Choice(STATUSES), help="Only runs in this state.")
@storage_options
@json_option
@with_catalog
def runs_command(
    run_id: str | None, limit: int, pipeline: str | None, status: str | None, as_json: bool, settings: Settings, catalog: Catalog,
) -> None:
    """List recent runs, or show RUN_ID with its stages.

    \b
    Examples:
      pond runs --status failed --limit 5
      pond runs daily_revenue-2026-11-20-1a2b3c4d
    """
    if run_id is None:
        _list_runs(catalog.list_runs(limit=limit, pipeline=pipeline, status=status), as_json)
        return
    if pipeline or status:
        raise CliError("--pipeline and --status filter the list of runs; they do not apply to one RUN_ID")
    run = catalog.get_run(run_id)
    if run is None:
        raise CliError(f"no run {run_id} in the catalog at {catalog.url}")
    _show_run(run, as_json)


def _list_runs(runs: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        emit_json(runs)
        return
    rows = [
        (r["run_id"], r["pipeline"], _status(r), r["attempts"], render.when(r["started_at"]), render.seconds(r["duration_s"]), render.compact(r["params"]))
        for r in runs
    ]
    render.console().print(render.table(None, ["RUN ID", "PIPELINE", "STATUS", "ATTEMPTS", "STARTED (UTC)", "DURATION", "PARAMS"], rows))
    if any(r["stale"] for r in runs):
        render.console().print(_stale_note("RUN_ID"))


def _stale_note(run_id: str) -> str:
    silence = MISSED_BEATS * heartbeat_seconds()
    return (
        f"stale: marked running, but its driver has sent no heartbeat for {silence:g} s or more (killed, or its "
        f"machine lost); finish it with `pond resume {run_id}`"
    )


def _status(record: dict[str, Any]) -> str:
    """`stale` for a run or stage still marked running whose driver stopped beating."""
    return "stale" if record.get("stale") else record["status"]


def _show_run(run: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(run)
        return
    out = render.console()
    out.print(f"run       {run['run_id']}\npipeline  {run['pipeline']}\nparams    {render.compact(run['params'])}")
    out.print(f"status    {render.cell(_status(run))} (attempt {run['attempts']}, executor {run['executor']})")
    if run["stale"]:
        out.print(f"          last heartbeat {render.when(run['heartbeat_at'])} UTC; " + _stale_note(run["run_id"]))
    out.print(f"started   {render.when(run['started_at'])} UTC, duration {render.seconds(run['duration_s']) or '-'}")
    if run["error"]:
        out.print(f"error     {render.cell(render.one_line(run['error'], 400))}")
    rows = [
        (s["stage_name"], _status(s), s["attempts"], s["npartitions"], s["rows"], s["files"], render.size(s["bytes"]),
         render.seconds(s["duration_s"]), s["task_retries"], s["node_failures"], s["speculative_attempts"], render.one_line(s["error"]))
        for s in run["stages"]
    ]
    columns = ["STAGE", "STATUS", "ATTEMPTS", "PARTS", "ROWS", "FILES", "BYTES", "DURATION", "RETRIES", "NODES LOST", "SPECULATIVE", "ERROR"]
    # Columns that only matter when something went wrong are shown only when it did, so the
    # table of a healthy run fits a terminal.
    faults = [columns.index(c) for c in ("RETRIES", "NODES LOST", "SPECULATIVE")]
    error = columns.index("ERROR")
    hidden = set(faults) if not any(r[i] for r in rows for i in faults) else set()
    hidden |= {error} if not any(r[error] for r in rows) else set()
    keep = [i for i in range(len(columns)) if i not in hidden]
    out.print(render.table("stages", [columns[i] for i in keep], [[r[i] for i in keep] for r in rows]))


def known_dataset(catalog: Catalog, dataset: str) -> str:
    """The dataset's catalog URI (a relative local path is tried as absolute too)."""
    uris = {d["uri"] for d in catalog.list_datasets()}
    for candidate in (dataset.rstrip("/") or dataset, os.path.abspath(dataset) if "://" not in dataset else dataset):
        if candidate in uris:
            return candidate
    raise CliError(f"no dataset {dataset} in the catalog at {catalog.url} (see `pond datasets`)")


@click.command("datasets")
@storage_options
@json_option
@with_catalog
def datasets_command(as_json: bool, settings: Settings, catalog: Catalog) -> None:
    """List every dataset the catalog knows: sources, intermediate stage outputs, sinks."""
    datasets = catalog.list_datasets()
    if as_json:
        emit_json(datasets)
        return
    rows = [(d["uri"], len(d["schema"]) or None, render.when(d["updated_at"])) for d in datasets]
    render.console().print(render.table(None, ["DATASET", "COLUMNS", "UPDATED (UTC)"], rows))


@click.command("partitions")
@click.argument("dataset")
@storage_options
@json_option
@with_catalog
def partitions_command(dataset: str, as_json: bool, settings: Settings, catalog: Catalog) -> None:
    """List the committed partitions of DATASET (a sink path or URL) and the runs that wrote them.

    \b
    Example:
      pond partitions /data/revenue
    """
    parts = catalog.list_partitions(known_dataset(catalog, dataset))
    if as_json:
        emit_json(parts)
        return
    rows = [(p["key"] or "(unpartitioned)", p["rows"], p["files"], render.size(p["bytes"]), p["run_id"], render.when(p["committed_at"])) for p in parts]
    render.console().print(render.table(None, ["PARTITION", "ROWS", "FILES", "BYTES", "RUN ID", "COMMITTED (UTC)"], rows))


@click.command("lineage")
@click.argument("dataset")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many edges each way, newest first (table).")
@click.option("--depth", type=click.IntRange(min=1), help="Hops to walk each way (default: 1 for the table, the whole chain for tree and mermaid).")
@click.option("--format", "fmt", type=click.Choice(["table", "tree", "mermaid"]), default="table", show_default=True, help="One hop as tables, the chain as a tree, or a Mermaid flowchart.")
@click.option("--direction", type=click.Choice(["both", "upstream", "downstream"]), default="both", show_default=True)
@click.option("--columns", "columns", is_flag=True, help="Each column of DATASET with the source dataset columns it is computed from (its newest run).")
@storage_options
@json_option
@with_catalog
def lineage_command(
    dataset: str, limit: int | None, depth: int | None, fmt: str, direction: str, columns: bool, as_json: bool, settings: Settings,
    catalog: Catalog,
) -> None:
    """Show what DATASET was computed from (upstream) and what was computed from it (downstream),
    each hop named by its stage.

    \b
    Example:
      pond lineage /data/revenue
      pond lineage /data/revenue --format tree            # back to the source files
      pond lineage /data/orders --format mermaid --direction downstream
      pond lineage /data/revenue --columns                # each column's source columns
    """
    from pond_core.lineage_graph import Direction, mermaid, tree_text, walk

    uri = known_dataset(catalog, dataset)
    if columns:
        _column_lineage(catalog, uri, as_json)
        return
    directions = [Direction(d) for d in (("upstream", "downstream") if direction == "both" else (direction,))]
    if fmt != "table" or depth is not None:
        chains = {d: walk(catalog, uri, d, depth or 50) for d in directions}
        if as_json:
            emit_json({"dataset": uri, **{d.value: chains[d].to_dict()["children"] for d in directions}})
        elif fmt == "mermaid":
            for d in directions:
                click.echo(f"%% {d.value} of {uri}\n{mermaid(chains[d], d)}")
        else:
            for d in directions:
                click.echo(f"{d.value} of {tree_text(chains[d], d)}\n")
        return
    edges = catalog.lineage(uri, limit=limit)
    if as_json:
        emit_json({"dataset": uri, **edges})
        return
    out = render.console()
    names: dict[str, dict[str, str]] = {}
    for d in directions:
        rows = [(e["uri"], e["rows"], e["run_id"], _stage_name(catalog, names, e), render.when(e["finished_at"])) for e in edges[d.value]]
        out.print(render.table(f"{d.value} of {uri}", ["DATASET", "ROWS", "RUN ID", "STAGE", "FINISHED (UTC)"], rows))


def _column_lineage(catalog: Catalog, uri: str, as_json: bool) -> None:
    from pond_core.lineage_graph import columns_text

    record = catalog.column_lineage(uri)
    if record is None:
        raise CliError(
            f"no column lineage recorded for {uri}: it is a source, or no stage writing it could be traced "
            "(a Python step, or a source whose schema could not be read; see docs/catalog.md)"
        )
    if as_json:
        emit_json(record)
        return
    click.echo(columns_text(record, _stage_name(catalog, {}, record)))


def _stage_name(catalog: Catalog, names: dict[str, dict[str, str]], edge: dict[str, Any]) -> str:
    run_id = edge["run_id"]
    if run_id not in names:
        run = catalog.get_run(run_id) or {}
        names[run_id] = {s["stage_id"]: s["stage_name"] for s in run.get("stages") or []}
    return names[run_id].get(edge["stage_id"], edge["stage_id"])
