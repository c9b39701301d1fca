"""A pipeline returning a smallpond LogicalPlan, under dag.test(): one task per stage, named
from the nodes' output_name, and the data smallpond would write."""

from __future__ import annotations

import os

import duckdb
from airflow_rig import run_dag, task_states


def test_logical_plan_pipeline_runs_as_named_stage_tasks(airflow_db, rig):
    root = rig["tmp"] / "outputs"
    source = root / "smallpond_urls"
    source.mkdir(parents=True, exist_ok=True)
    for i in range(2):
        duckdb.sql(
            f"COPY (SELECT 'h' || (range % 7) AS host, 'u' || range AS url FROM range({i * 50}, {i * 50 + 50})) "
            f"TO '{source}/urls{i}.parquet' (FORMAT parquet)"
        )
    run = run_dag("pond_test_smallpond_plan", "2026-11-20")
    assert run.state == "success"
    states = task_states(run)
    assert states == {
        "host_counts.urls_by_host": ("success", 1),
        "host_counts.host_counts": ("success", 1),
    }
    output = os.path.join(root, "smallpond_host_counts")
    got = duckdb.sql(f"SELECT host, n FROM '{output}/*.parquet' ORDER BY host").fetchall()
    assert got == [(f"h{i}", len([r for r in range(100) if r % 7 == i])) for i in range(7)]
