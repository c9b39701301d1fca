"""`python -m pond_core.demo`: the main job on embedded defaults.

Generates a small shop dataset, runs the partitioned multi-stage `daily_revenue` pipeline for
three days (local executor, SQLite catalog under the storage root), then prints the result and
where it went, and shows the last run's stages and the output's lineage (back to the source
files) with the `pond` command. Each run's line comes first, then its stages as they finish;
run again, it says the stages were already committed and reuses them.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import duckdb
from rich.console import Console
from rich.table import Table

from pond_core.examples import ensure_shop_day
from pond_core.execute.executor_for import make_executor
from pond_core.execute.results import StageManifest
from pond_core.pipeline import compile_pipeline
from pond_core.plan.physical import Stage
from pond_core.runner import PlanResult, run_plan
from pond_core.settings import Settings
from pond_core.sql_quote import quote_str

DAYS = ["2026-11-18", "2026-11-19", "2026-11-20"]


def main(root: str | None = None) -> int:
    console = Console(soft_wrap=True)  # a line per stage and command, never folded in a log
    root = os.path.abspath(root or os.environ.get("POND_DEMO_ROOT") or os.path.expanduser("~/.pond/demo"))
    source, output, data_root = (os.path.join(root, p) for p in ("source", "revenue", "pond"))
    console.print(f"[bold]pond demo[/bold] — data under {root}")
    for day in DAYS:  # only what is missing: a rerun reads the same files and reuses its stages
        ensure_shop_day(day, source)
    console.print(f"shop data: {len(DAYS)} days of orders under {source}")
    settings = Settings.resolve(data_root=data_root, executor="local")
    executor = make_executor(settings)
    try:
        for day in DAYS:
            plan = compile_pipeline(
                "pond_core.examples:daily_revenue",
                {"ds": day, "source_root": source, "output_root": output},
                data_root=data_root,
            )
            run_id = f"demo-daily-revenue-{day}"
            console.print(f"run {run_id}: {len(plan.stages)} stages")
            started = time.time()
            result = run_plan(plan, run_id, settings=settings, executor=executor, on_stage=_stage_line(console, started))
            console.print(f"  {_summary(result, started)}")
        _print_result(console, output)
    finally:
        executor.shutdown()
    _show_with_cli(console, data_root, run_id, output)
    console.print(f"\noutput dataset: [bold]{output}[/bold] (hive-partitioned by dt)")
    console.print(f"catalog: {os.path.join(data_root, 'catalog.sqlite')}; more: `.venv/bin/pond --help`")
    return 0


def _stage_line(console: Console, started: float) -> Callable[[Stage, StageManifest], None]:
    def report(stage: Stage, manifest: StageManifest) -> None:
        result = manifest.result
        how = "already committed, reused" if _reused(manifest, started) else f"{result.seconds:.2f}s"
        parts = f"{result.npartitions} partition{'' if result.npartitions == 1 else 's'}"
        console.print(f"  {stage.name:<32} {parts}, {result.rows} rows ({how})")

    return report


def _reused(manifest: StageManifest, started: float) -> bool:
    return manifest.result.finished_at < started


def _summary(result: PlanResult, started: float) -> str:
    reused = sum(_reused(m, started) for m in result.manifests.values())
    ran = len(result.manifests) - reused
    if not ran:
        return f"nothing to do: all {reused} stages were already committed by an earlier run ({result.seconds:.2f}s)"
    earlier = f", {reused} already committed" if reused else ""
    return f"done: {ran} stages ran{earlier} in {result.seconds:.2f}s"


def _print_result(console: Console, output: str) -> None:
    rows = duckdb.sql(
        f"SELECT dt, segment, sum(revenue) AS revenue, sum(orders) AS orders FROM read_parquet({quote_str(output + '/*/*.parquet')}, hive_partitioning=true) "
        "GROUP BY ALL ORDER BY dt, segment"
    ).fetchall()
    table = Table(title="revenue by day and segment")
    for col in ("dt", "segment", "revenue", "orders"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)


def _show_with_cli(console: Console, data_root: str, run_id: str, output: str) -> None:
    """What the `pond` command shows about the last run and the output's lineage."""
    from pond_core.cli import pond

    for args in (["runs", run_id], ["lineage", output, "--format", "tree", "--direction", "upstream"]):
        console.print(f"\n$ pond {' '.join(args)} --data-root {data_root}")
        pond.main(args + ["--data-root", data_root], prog_name="pond", standalone_mode=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
