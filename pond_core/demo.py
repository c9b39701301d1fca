"""`python -m pond_core.demo`: the main job on embedded defaults.

Generates a small shop dataset, runs the partitioned multi-stage `daily_revenue` pipeline for
three days (local executor, SQLite catalog under the storage root), then prints the result and
where it went, and shows the last run's stages and the output's lineage with the `pond` command.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable

import duckdb
from rich.console import Console
from rich.table import Table

from pond_core.examples import generate_shop
from pond_core.execute.executor_for import make_executor
from pond_core.pipeline import compile_pipeline
from pond_core.plan.physical import Stage
from pond_core.runner import run_plan
from pond_core.settings import Settings
from pond_core.sql_quote import quote_str

DAYS = ["2026-11-18", "2026-11-19", "2026-11-20"]


def main(root: str | None = None) -> int:
    console = Console()
    root = os.path.abspath(root or os.environ.get("POND_DEMO_ROOT") or os.path.expanduser("~/.pond/demo"))
    source, output, data_root = (os.path.join(root, p) for p in ("source", "revenue", "pond"))
    console.print(f"[bold]pond demo[/bold] — data under {root}")
    generate_shop(source, DAYS)
    console.print(f"generated {len(DAYS)} days of orders under {source}")
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
            started = dt.datetime.now()
            result = run_plan(plan, run_id, settings=settings, executor=executor, progress=_progress(console))
            console.print(f"run {run_id}: {len(result.stages)} stages in {(dt.datetime.now() - started).total_seconds():.2f}s")
        _print_result(console, output)
    finally:
        executor.shutdown()
    _show_with_cli(console, data_root, run_id, output)
    console.print(f"\noutput dataset: [bold]{output}[/bold] (hive-partitioned by dt)")
    console.print(f"catalog: {os.path.join(data_root, 'catalog.sqlite')}; more: `.venv/bin/pond --help`")
    return 0


def _progress(console: Console) -> Callable[[Stage, int, int], None]:
    def report(stage: Stage, done: int, total: int) -> None:
        if done == total:
            console.print(f"  {stage.name:<22} {done}/{total} partitions")

    return report


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

    for args in (["runs", run_id], ["lineage", output]):
        console.print(f"\n$ pond {' '.join(args)} --data-root {data_root}")
        pond.main(args + ["--data-root", data_root], prog_name="pond", standalone_mode=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
