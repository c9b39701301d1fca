"""Pure helpers: run ids, first/final try after clears and retries, XCom summaries, dataset names."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pond_airflow.openlineage import dataset_uri, ol_name
from pond_airflow.runs import final_try, first_try, pond_run_id, xcom_result


def _context(try_number: int, max_tries: int, retries: int) -> dict:
    ti = SimpleNamespace(try_number=try_number, max_tries=max_tries, task=SimpleNamespace(retries=retries))
    return {"ti": ti}


@pytest.mark.parametrize(
    "try_number, max_tries, retries, first, final",
    [
        (1, 2, 2, True, False),   # first run of a task with 2 retries
        (2, 2, 2, False, False),  # its first retry: resume
        (3, 2, 2, False, True),   # its last retry
        (4, 5, 2, True, False),   # cleared after 3 tries: max_tries = 3 + 2, so try 4 starts afresh
        (5, 5, 2, False, False),  # a retry after that clear
        (1, 0, 0, True, True),    # no retries at all
    ],
)
def test_first_and_final_try(try_number, max_tries, retries, first, final):
    context = _context(try_number, max_tries, retries)
    assert first_try(context) is first
    assert final_try(context) is final


def test_run_id_is_safe_stable_and_distinct():
    def rid(dag_id: str, run_id: str, scope: str = "g") -> str:
        return pond_run_id({"dag_run": SimpleNamespace(dag_id=dag_id, run_id=run_id)}, scope)

    assert rid("d", "manual_1") == "d__manual_1__g"
    scheduled = rid("d", "scheduled__2026-11-20T00:00:00+00:00")
    assert scheduled == "d__scheduled__20261120T000000__g"  # Airflow's own ids, compacted
    assert rid("d", "manual__2026-12-03T06:31:01.158397+00:00") == "d__manual__20261203T063101.158397__g"
    other_zone = rid("d", "scheduled__2026-11-20T00:00:00+01:00")
    assert other_zone.startswith("d__scheduled__2026-11-20T00_00_00_01_00__g-") and "/" not in other_zone
    assert scheduled == rid("d", "scheduled__2026-11-20T00:00:00+00:00")
    assert rid("d", "a:b") != rid("d", "a+b")  # same sanitised text, different runs
    assert rid("d", "../../etc").count("/") == 0


def test_xcom_result_is_small_and_plain():
    result = {
        "run_id": "r", "stage": "04_write", "stage_id": "abc", "output_kind": "sink", "location": "/o",
        "npartitions": 1, "files": 3, "rows": 10, "bytes": 100, "seconds": 0.1, "task_retries": 2,
        "node_failures": 1, "speculative_attempts": 1, "executor": "local", "schema": [("dt", "DATE")], "inputs": [{"paths": ["/x"] * 1000}],
        "sink": {"path": "/o", "mode": "overwrite_partitions", "rows": 10, "partitions": [f"dt={i}" for i in range(80)]},
        "started_at": 1.0,
    }
    out = xcom_result(result)
    assert "inputs" not in out and "started_at" not in out
    assert out["schema"] == [["dt", "DATE"]]
    assert (out["task_retries"], out["node_failures"], out["speculative_attempts"]) == (2, 1, 1)
    assert len(out["sink"]["partitions"]) == 50 and out["sink"]["partition_count"] == 80


@pytest.mark.parametrize(
    "path, uri, name",
    [
        ("/data/shop/orders/dt=2026-11-20/*.parquet", "file:///data/shop/orders/dt=2026-11-20", ("file", "/data/shop/orders/dt=2026-11-20")),
        ("/data/out/", "file:///data/out", ("file", "/data/out")),
        ("s3://lake/shop/orders/*/*.parquet", "s3://lake/shop/orders", ("s3://lake", "shop/orders")),
        ("pond://pkg.mod.fn/03_sql", "pond://pkg.mod.fn/03_sql", ("pond://pkg.mod.fn", "03_sql")),
    ],
)
def test_dataset_naming(path, uri, name):
    assert dataset_uri(path) == uri
    assert ol_name(uri) == name


@pytest.mark.parametrize(
    ("dag_id", "run_id"),
    [("daily", "manual__2026-11-20T00:00:00+00:00"), ("d" * 250, "r" * 250), ("q'uote", "x'); COPY (SELECT 1) TO '/tmp/p'; --\n"),
     ("_private", "~tilde~"), ("uniçødé✓", "semi;colon--dash")],
)
def test_pond_run_ids_of_any_airflow_ids_are_accepted_by_pond(dag_id, run_id):
    from pond_core import api

    pond_id = pond_run_id({"dag_run": SimpleNamespace(dag_id=dag_id, run_id=run_id)}, "stage")
    assert api.check_run_id(pond_id) == pond_id
    other = pond_run_id({"dag_run": SimpleNamespace(dag_id=dag_id, run_id=run_id + "x")}, "stage")
    assert other != pond_id
