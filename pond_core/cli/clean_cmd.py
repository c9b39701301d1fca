"""`pond clean`: delete the stage outputs of old runs; sink datasets are never touched.

A run's intermediate outputs live under `<data-root>/jobs/<run_id>/`. They are what lets a run
resume, so they are kept for a retention period (default 7 days, $POND_RETENTION) counted from
the run's last activity, then `pond clean` removes them.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Any

import click

from pond_core.cli import render
from pond_core.cli.common import CliError, emit_json, json_option, parse_duration, storage_options, with_catalog
from pond_core.cli.execution import run_dir
from pond_core.io import FileSystem, StorageOptions, get_filesystem

if TYPE_CHECKING:
    from pond_core.catalog import Catalog
    from pond_core.settings import Settings

DEFAULT_RETENTION = "7d"


@click.command("clean")
@click.option("--older-than", metavar="AGE", help="Retention: runs last active longer ago than AGE (7d, 12h, 30m, 0). Default: $POND_RETENTION, else 7d.")
@click.option("--run-id", "run_ids", multiple=True, metavar="ID", help="Clean this run whatever its age; repeat for several.")
@click.option("--forget", is_flag=True, help="Also delete the runs' records (stage runs, lineage) from the catalog. Committed partitions stay listed.")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@storage_options
@json_option
@with_catalog
def clean_command(
    older_than: str | None, run_ids: tuple[str, ...], forget: bool, dry_run: bool, as_json: bool, settings: Settings, catalog: Catalog,
) -> None:
    """Delete intermediate stage outputs of runs older than the retention.

    Removes <data-root>/jobs/<run_id>/ of each selected run. A cleaned run can still be run
    again, but from scratch. Sink datasets and their catalog partitions are never deleted.

    \b
    Examples:
      pond clean --dry-run
      pond clean --older-than 2d --forget
      pond clean --run-id daily_revenue-2026-11-20-1a2b3c4d
    """
    if run_ids and older_than:
        raise CliError("give --run-id or --older-than, not both")
    targets = list(run_ids) if run_ids else _expired(catalog, older_than)
    runs = [_known_run(catalog, settings, run_id, explicit=bool(run_ids)) for run_id in targets]
    fs = get_filesystem(settings.data_root, StorageOptions.from_env())
    protected = [d["uri"] for d in catalog.list_datasets()]
    report = [_clean_one(fs, catalog, settings, run, protected, forget, dry_run) for run in runs]
    _print(report, dry_run, as_json)


def _expired(catalog: Catalog, older_than: str | None) -> list[str]:
    text = older_than or os.environ.get("POND_RETENTION") or DEFAULT_RETENTION
    retention = parse_duration(text, "--older-than" if older_than else "POND_RETENTION" if os.environ.get("POND_RETENTION") else "retention")
    return catalog.runs_older_than(dt.datetime.now(dt.timezone.utc) - retention)


def _known_run(catalog: Catalog, settings: Settings, run_id: str, explicit: bool) -> dict[str, Any]:
    run = catalog.get_run(run_id)
    if run is None and explicit:
        raise CliError(f"no run {run_id} in the catalog at {catalog.url}")
    return run or {"run_id": run_id, "status": None, "finished_at": None, "started_at": None}


def _safe_dir(settings: Settings, run_id: str, protected: list[str]) -> str | None:
    """The run's folder, unless its id could escape jobs/ or a dataset lives inside it."""
    if not run_id or "/" in run_id or "\\" in run_id or run_id in (".", ".."):
        return None
    path = run_dir(settings, run_id)
    if any(uri == path or uri.startswith(path + "/") for uri in protected):
        return None
    return path


def _clean_one(
    fs: FileSystem, catalog: Catalog, settings: Settings, run: dict[str, Any], protected: list[str], forget: bool, dry_run: bool,
) -> dict[str, Any]:
    run_id = run["run_id"]
    path = _safe_dir(settings, run_id, protected)
    files = fs.list_files(path, recursive=True) if path and fs.exists(path) else []
    row = {
        "run_id": run_id, "status": run["status"], "last_active": run["finished_at"] or run["started_at"],
        "path": path, "files": len(files), "bytes": sum(f.size for f in files),
    }
    if path is None:
        row["action"] = "kept (unsafe path)"
        return row
    row["action"] = ("would delete" if dry_run else "deleted") if files or fs.exists(path) else "nothing on disk"
    if not dry_run:
        fs.delete(path, recursive=True)
        if forget:
            catalog.delete_run(run_id)
            row["action"] += ", forgotten"
    return row


def _print(report: list[dict[str, Any]], dry_run: bool, as_json: bool) -> None:
    if as_json:
        emit_json({"dry_run": dry_run, "runs": report})
        return
    rows = [(r["run_id"], r["status"], render.when(r["last_active"]), r["files"], render.size(r["bytes"]), r["action"]) for r in report]
    out = render.console()
    out.print(render.table(None, ["RUN ID", "STATUS", "LAST ACTIVE (UTC)", "FILES", "SIZE", "ACTION"], rows))
    total = render.size(sum(r["bytes"] for r in report))
    out.print(f"{len(report)} runs, {total} {'would be freed (dry run)' if dry_run else 'freed'}")
