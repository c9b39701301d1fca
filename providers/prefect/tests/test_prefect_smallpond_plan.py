"""A pipeline returning a smallpond LogicalPlan as a Prefect flow: one task run per stage,
named from the nodes' output_name, and the data smallpond would write."""

from __future__ import annotations

import duckdb
import prefect_api
import pytest
from prefect import flow

from pond_prefect import PondConfig, run_pipeline

pytestmark = pytest.mark.usefixtures("prefect_api")

PIPELINE = "smallpond_plan_pipelines_prefect:host_counts"


@flow(name="pond-test-smallpond-plan")
def host_counts_flow(source: str, output: str, storage_root: str) -> dict:
    return run_pipeline(PIPELINE, {"source": source, "output": output}, config=PondConfig(data_root=storage_root, executor="local"),
                        retry_delay_seconds=0)


def test_logical_plan_pipeline_runs_as_named_task_runs(tmp_path):
    source = tmp_path / "urls"
    source.mkdir()
    for i in range(2):
        duckdb.sql(
            f"COPY (SELECT 'h' || (range % 7) AS host, 'u' || range AS url FROM range({i * 50}, {i * 50 + 50})) "
            f"TO '{source}/urls{i}.parquet' (FORMAT parquet)"
        )
    output = tmp_path / "counts"
    state = host_counts_flow(f"{source}/*.parquet", str(output), str(tmp_path / "pond"), return_state=True)
    assert state.is_completed(), state
    runs = prefect_api.task_runs(state.state_details.flow_run_id)
    assert {name: r.state.name for name, r in runs.items()} == {"urls_by_host": "Completed", "host_counts": "Completed"}
    got = duckdb.sql(f"SELECT host, n FROM '{output}/*.parquet' ORDER BY host").fetchall()
    assert got == [(f"h{i}", len([r for r in range(100) if r % 7 == i])) for i in range(7)]
