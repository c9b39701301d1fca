"""Airflow as a thin client of a pond service: the example DAGs run on the cluster from an
environment without Ray.

The session's pond service (`pond_service`, tests/service_rig.py: a real Ray head and `pond
serve` started from the full venv) runs every stage; Airflow runs in the client venv
(tests/client_venv.py: pond_core without Ray, the providers), where `dag.test()` runs the
example DAGs of dags/ and the service-mode test DAGs (tests/service_dags/) with a
`pond_default` connection naming the service. The outputs are compared with DuckDB's own
answer; the pond runs are in the service's catalog, done by its Ray executor.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import pytest
from airflow_rig import expected_daily_revenue, read_dataset

HERE = Path(__file__).resolve().parent
DAY = "2026-11-12"
FAILING_DAY = "2026-11-13"
STAGES = ("orders_by_customer_id", "customers_by_customer_id", "join_aggregate_customers_orders", "write_daily_revenue")


def client_python() -> Path:
    """The client venv's Python (pond_core without Ray, the providers): tests/client_venv.py;
    POND_CLIENT_PYTHON names another such interpreter."""
    if os.environ.get("POND_CLIENT_PYTHON"):
        return Path(os.environ["POND_CLIENT_PYTHON"])
    from tests.client_venv import client_python as find

    return find()


def run_in_client(service: Any, root: Path, runs: list[dict[str, Any]], timeout: float = 900) -> dict[str, Any]:
    """dag.test() of `runs` in the client venv; returns service_client_run.py's report."""
    spec, out = root / "spec.json", root / "out.json"
    spec.write_text(json.dumps({
        "airflow_home": str(root / "airflow_home"), "examples_root": str(root / "examples"),
        "service_url": service.url, "token": service.token, "runs": runs,
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "POND_", "PYTHONPATH", "RAY_"))}
    proc = subprocess.run(
        [str(client_python()), str(HERE / "service_client_run.py"), str(spec), str(out)],
        env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, f"client run failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    assert service.token not in proc.stdout + proc.stderr  # the token never reaches a log
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def client_report(pond_service, tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("airflow-service")
    report = run_in_client(pond_service, root, [
        {"key": "revenue", "dag_id": "pond_daily_revenue", "day": DAY},
        {"key": "spend", "dag_id": "pond_customer_spend", "day": DAY},
        {"key": "checked", "dag_id": "pond_daily_revenue_checked", "day": DAY},
        {"key": "checks_fail", "dag_id": "pond_daily_revenue_checked", "day": FAILING_DAY, "conf": {"min_orders": 100000}},
        {"key": "deferrable", "dag_id": "pond_service_deferrable", "day": DAY},
        {"key": "sql", "dag_id": "pond_service_sql", "day": DAY},
    ])
    report["root"] = root
    return report


def test_the_client_has_no_ray(client_report):
    assert client_report["ray_importable"] is False
    assert client_report["ray_imported"] is False


def test_pipeline_dag_runs_every_stage_on_the_service(client_report, pond_service):
    run = client_report["runs"]["revenue"]
    assert run["state"] == "success"
    assert run["tasks"] == {"shop_data": ["success", 1], **{f"daily_revenue.{s}": ["success", 1] for s in STAGES}}
    examples = client_report["root"] / "examples"
    got = read_dataset(str(examples / "daily_revenue"), "segment, country, revenue, orders", f"dt = DATE '{DAY}'")
    assert got == expected_daily_revenue(str(examples / "shop"), DAY)
    write = run["xcom"]["daily_revenue.write_daily_revenue"]["return_value"]
    assert write["executor"] == "ray"  # the service's executor, not the client's
    assert write["rows"] == len(got)
    _assert_run_in_service_catalog(pond_service, "pond_daily_revenue", "success")


def test_sql_operator_writes_on_the_service(client_report, pond_service):
    run = client_report["runs"]["spend"]
    assert run["state"] == "success"
    assert run["tasks"]["customer_spend"] == ["success", 1]
    shop = client_report["root"] / "examples" / "shop"
    expected = duckdb.sql(
        f"""SELECT o.dt, o.customer_id, c.segment, count(*) AS orders, sum(o.amount) AS spend
            FROM read_parquet('{shop}/orders/*/*.parquet', hive_partitioning=true) o
            JOIN read_parquet('{shop}/customers.parquet') c USING (customer_id)
            WHERE o.dt = DATE '{DAY}' GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    got = read_dataset(str(client_report["root"] / "examples" / "customer_spend"), "dt, customer_id, segment, orders, spend")
    assert got == expected
    assert run["xcom"]["customer_spend"]["return_value"]["executor"] == "ray"
    _assert_run_in_service_catalog(pond_service, "pond_customer_spend", "success")


def test_sql_operator_returns_rows_and_fails_bad_sql_without_retry(client_report):
    run = client_report["runs"]["sql"]
    assert run["tasks"]["segments"] == ["success", 1]
    shop = client_report["root"] / "examples" / "shop"
    expected = duckdb.sql(f"SELECT segment, count(*) AS n FROM read_parquet('{shop}/customers.parquet') GROUP BY ALL ORDER BY segment").fetchall()
    records = run["xcom"]["segments"]["return_value"]["records"]
    assert sorted((r["segment"], r["n"]) for r in records) == expected
    assert run["tasks"]["bad_sql"] == ["failed", 1]  # retries=2, yet no retry: the service said not retryable


def test_checks_pass_warn_and_fail_through_the_service(client_report):
    passed = client_report["runs"]["checked"]
    assert passed["state"] == "success"
    checks_task = next(t for t in passed["tasks"] if t.endswith("_checks"))
    summary = passed["xcom"][checks_task]["return_value"]
    results = passed["xcom"][checks_task.removesuffix("_checks")]["pond_checks"]  # handed over by the write task
    assert len(results) == 4 and summary["passed"] == [r["name"] for r in results if r["passed"]]
    assert summary["warned"] == [r["name"] for r in results if not r["passed"] and r["severity"] != "error"]
    failed = client_report["runs"]["checks_fail"]
    assert failed["state"] == "failed"
    write_task = checks_task.removesuffix("_checks")
    assert failed["tasks"][write_task] == ["failed", 1]  # a failed check is final: no retry
    assert failed["tasks"][checks_task] == ["failed", 1]
    results = failed["xcom"][write_task]["pond_checks"]
    assert [r["name"] for r in results if not r["passed"] and r["severity"] == "error"]
    output = client_report["root"] / "examples" / "daily_revenue_checked"
    assert not list(output.glob(f"dt={FAILING_DAY}*"))  # nothing published


def test_deferrable_pipeline_runs_on_the_service(client_report, pond_service):
    run = client_report["runs"]["deferrable"]
    assert run["state"] == "success"
    assert set(map(tuple, run["tasks"].values())) == {("success", 1)}
    examples = client_report["root"] / "examples"
    got = read_dataset(str(examples / "service_deferred_revenue"), "segment, country, revenue, orders", f"dt = DATE '{DAY}'")
    assert got == expected_daily_revenue(str(examples / "shop"), DAY)
    _assert_run_in_service_catalog(pond_service, "pond_service_deferrable", "success")


def _assert_run_in_service_catalog(service: Any, dag_id: str, status: str) -> None:
    from pond_core.catalog import Catalog

    runs = [r for r in Catalog(service.catalog_url).list_runs() if r["run_id"].startswith(f"{dag_id}__")]
    assert runs and {r["status"] for r in runs} == {status}
