"""run_sql over three datasets joined on different keys, with no hash_by: pond's SQL planner
places the exchanges, so the one call runs as several stages (each a Prefect task), the big
input split over the partitions, locally and on Ray, with DuckDB's result."""

from __future__ import annotations

import duckdb
import pytest
from prefect import flow

from pond_prefect import PondConfig, run_sql
from tests.join3 import QUERY, expected, write_tables

pytestmark = pytest.mark.usefixtures("prefect_api")


@flow(name="pond-test-sql-join3")
def join3_flow(inputs: dict, output: str, storage_root: str, executor: str) -> dict:
    return run_sql(QUERY, inputs, output, npartitions=3, config=PondConfig(data_root=storage_root, executor=executor),
                   retry_delay_seconds=0)


def _check(tmp_path_factory, tmp_path, executor: str) -> None:
    paths = write_tables(tmp_path_factory.getbasetemp() / "join3")
    out = str(tmp_path / "out")
    state = join3_flow(paths, out, str(tmp_path / "pond"), executor, return_state=True)
    assert state.is_completed(), state
    result = state.result()
    got = duckdb.sql(f"SELECT * FROM read_parquet('{out}/*.parquet') ORDER BY c_mktsegment").fetchall()
    assert got == expected(paths) and len(got) == 5
    stages = result["stages"]
    assert len(stages) >= 3, list(stages)
    assert max(s["npartitions"] for s in stages.values()) == 3, stages  # lineitem split over 3 partitions
    assert any(s["npartitions"] == 1 for s in stages.values())  # the small side broadcast, the result gathered


def test_run_sql_plans_a_three_way_join_locally(tmp_path_factory, tmp_path):
    _check(tmp_path_factory, tmp_path, "local")


@pytest.mark.ray
@pytest.mark.usefixtures("ray_cluster")
def test_run_sql_plans_a_three_way_join_on_ray(tmp_path_factory, tmp_path):
    _check(tmp_path_factory, tmp_path, "ray")
