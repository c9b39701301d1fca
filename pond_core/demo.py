"""`python -m pond_core.demo`: the main job on embedded defaults.

Generates a small shop dataset, runs the partitioned multi-stage `daily_revenue` pipeline for
three days (local executor, SQLite catalog under the storage root), then prints the result,
where it went, the stages of the last run and the lineage of the output dataset.
"""

from __future__ import annotations

import datetime as dt
import os
import sys

import duckdb
from rich.console import Console
from rich.table import Table

from pond_core.examples import generate_shop
from pond_core.pipeline import compile_pipeline, open_catalog, run_pipeline
from pond_core.session import init

DAYS = ["2026-11-18", "2026-11-19", "2026-11-20"]


def main(root: str | None = None) -> int:
    console = Console()
    root = os.path.abspath(root or os.environ.get("POND_DEMO_ROOT") or os.path.expanduser("~/.pond/demo"))
    source, output, data_root = (os.path.join(root, p) for p in ("source", "revenue", "pond"))
    console.print(f"[bold]pond demo[/bold] — data under {root}")
    generate_shop(source, DAYS)
    console.print(f"generated {len(DAYS)} days of orders under {source}")
    session = init(data_root=data_root, executor="local", keep_intermediates=True)
    try:
        for day in DAYS:
            plan = compile_pipeline(
                "pond_core.examples:daily_revenue",
                {"ds": day, "source_root": source, "output_root": output},
                data_root=data_root,
            )
            run_id = f"demo-daily-revenue-{day}"
            started = dt.datetime.now()
            result = run_pipeline(plan, run_id, session=session, progress=_progress(console))
            console.print(f"run {run_id}: {len(result['stages'])} stages in {(dt.datetime.now() - started).total_seconds():.2f}s")
        _print_result(console, output)
        _print_run(console, session, run_id)
        _print_lineage(console, session, output)
    finally:
        session.shutdown()
    console.print(f"\noutput dataset: [bold]{output}[/bold] (hive-partitioned by dt)")
    console.print(f"catalog: {os.path.join(data_root, 'catalog.sqlite')}; try `pond runs --data-root {data_root}`")
    return 0


def _progress(console: Console):
    def report(stage, done: int, total: int) -> None:
        if done == total:
            console.print(f"  {stage.name:<22} {done}/{total} partitions")

    return report


def _print_result(console: Console, output: str) -> None:
    rows = duckdb.sql(
        f"SELECT dt, segment, sum(revenue) AS revenue, sum(orders) AS orders FROM read_parquet('{output}/*/*.parquet', hive_partitioning=true) "
        "GROUP BY ALL ORDER BY dt, segment"
    ).fetchall()
    table = Table(title="revenue by day and segment")
    for col in ("dt", "segment", "revenue", "orders"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)


def _print_run(console: Console, session, run_id: str) -> None:
    run = open_catalog(session).get_run(run_id)
    table = Table(title=f"stages of run {run_id} ({run['status']})")
    for col in ("stage", "status", "partitions", "rows", "seconds"):
        table.add_column(col)
    for stage in run["stages"]:
        table.add_row(stage["stage_name"], stage["status"], str(stage.get("npartitions")), str(stage.get("rows")), f"{stage.get('duration_s') or 0:.3f}")
    console.print(table)


def _print_lineage(console: Console, session, output: str) -> None:
    edges = open_catalog(session).lineage(output)
    console.print(f"lineage of {output}:")
    for edge in edges["upstream"][:5]:
        console.print(f"  ← {edge['uri']} (run {edge['run_id']}, rows {edge.get('rows')})")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
