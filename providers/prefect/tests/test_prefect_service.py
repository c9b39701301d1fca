"""Prefect flows on the pond service, from a client venv without Ray.

The rig: a real Ray head and `pond serve` on it (`pond_service`, tests/service_rig.py), the
session's Prefect server, and each flow run in a subprocess of `.venv-client` (no `ray`
installed). Everything is asserted through real outputs (against DuckDB), the Prefect API (task
runs, states, logs, artifacts) and the service's own API and catalog.
"""

from __future__ import annotations

import os

import duckdb
import prefect_api as reads
import pytest
from service_client import FLOWS, client_env, run_flow

from pond_core import api
from pond_core.catalog import Catalog

DAY = "2026-11-20"

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


def rows(sql: str) -> list[tuple]:
    return duckdb.sql(sql).fetchall()


def stage_names(ref: str, params: dict) -> list[str]:
    return [s.name for s in api.compile_pipeline(ref, params).stages]


def service_run(pond_service, run_id: str) -> dict:
    return Catalog(pond_service.catalog_url).get_run(run_id)


def stage_logs(flow_run_id: str, task_run_id, until) -> list[str]:
    found = reads.logs(flow_run_id, until=lambda logs: until([g.message for g in logs if g.task_run_id == task_run_id]), timeout=30)
    return [g.message for g in found if g.task_run_id == task_run_id]


def test_example_flows_run_on_the_service_from_a_venv_without_ray(pond_service, prefect_api, tmp_path):
    examples = tmp_path / "examples"
    env = client_env(pond_service, prefect_api, POND_EXAMPLES_ROOT=str(examples))
    program = f"""
        import runpy
        flows = runpy.run_path({os.path.join(FLOWS, "daily_revenue.py")!r}, run_name="pond_examples_client")
        state = flows["daily_revenue"](ds={DAY!r}, return_state=True)
        extra = state.result()["run_id"] if state.is_completed() else None
    """
    first = run_flow(program, env)
    assert first["type"] == "COMPLETED", first["output"]
    assert not first["ray_importable"] and not first["ray_imported"]

    shop, out = examples / "shop", examples / "prefect" / "daily_revenue"
    expected = rows(
        f"""SELECT c.segment, c.country, sum(o.amount), count(*)
            FROM read_parquet('{shop}/orders/dt={DAY}/*.parquet') o
            JOIN read_parquet('{shop}/customers.parquet') c USING (customer_id)
            GROUP BY ALL ORDER BY ALL"""
    )
    assert rows(f"SELECT segment, country, revenue, orders FROM read_parquet('{out}/dt={DAY}/*.parquet') ORDER BY ALL") == expected
    assert len(expected) == 12

    # One task run per stage, named after it, Completed; the service's catalog closed the run.
    params = {"ds": DAY, "source_root": str(shop), "output_root": str(out), "npartitions": 4}
    names = stage_names("pond_core.examples:daily_revenue", params)
    runs = reads.task_runs(first["flow_run_id"])
    assert {n: runs[n].state.name for n in names} == dict.fromkeys(names, "Completed")
    assert service_run(pond_service, first["extra"])["status"] == "success"
    # Each stage's task run waits on its upstream stages' (the plan's dependencies), the first
    # ones on the task that lands the day's data.
    by_id = {r.id: n for n, r in runs.items()}
    plan = api.compile_pipeline("pond_core.examples:daily_revenue", params)
    for stage in plan.stages:
        upstream = {by_id.get(i.id) for inputs in runs[stage.name].task_inputs.values() for i in inputs}
        assert upstream == ({plan.stage(d).name for d in stage.depends_on} or {"shop_data"}), (stage.name, upstream)

    # The stage's own log lines, captured on the service, are in the flow-run log under its task run.
    final = runs[names[-1]]
    lines = stage_logs(first["flow_run_id"], final.id, lambda ms: any(" pond." in m for m in ms) and any("rows" in m for m in ms))
    assert any("on the pond service at " + pond_service.url in m for m in lines), lines
    assert any(" pond." in m for m in lines), lines  # a service-side `pond.*` logger's line
    assert not any(pond_service.token in g.message for g in reads.logs(first["flow_run_id"]))

    # The same flow again: every stage Cached, no attempt on the service.
    again = run_flow(program, env)
    assert again["type"] == "COMPLETED", again["output"]
    assert {n: r.state.name for n, r in reads.task_runs(again["flow_run_id"]).items() if n in names} == dict.fromkeys(names, "Cached")


def test_run_sql_example_flow_on_the_service_matches_duckdb(pond_service, prefect_api, tmp_path):
    examples = tmp_path / "examples"
    env = client_env(pond_service, prefect_api, POND_EXAMPLES_ROOT=str(examples))
    program = f"""
        import runpy
        flows = runpy.run_path({os.path.join(FLOWS, "customer_spend.py")!r}, run_name="pond_examples_client")
        state = flows["customer_spend"](ds={DAY!r}, return_state=True)
    """
    report = run_flow(program, env)
    assert report["type"] == "COMPLETED", report["output"]
    assert not report["ray_importable"] and not report["ray_imported"]
    shop, out = examples / "shop", examples / "prefect" / "customer_spend"
    expected = rows(
        f"""SELECT o.customer_id, c.segment, count(*), sum(o.amount)
            FROM read_parquet('{shop}/orders/*/*.parquet', hive_partitioning=true) o
            JOIN read_parquet('{shop}/customers.parquet') c USING (customer_id)
            WHERE o.dt = DATE '{DAY}' GROUP BY ALL ORDER BY ALL"""
    )
    got = rows(f"SELECT customer_id, segment, orders, spend FROM read_parquet('{out}/dt={DAY}/*.parquet') ORDER BY ALL")
    assert got == expected and len(got) > 100
    runs = reads.task_runs(report["flow_run_id"])
    stages = {n: r.state.name for n, r in runs.items() if n != "shop_data"}
    assert len(stages) >= 3 and set(stages.values()) == {"Completed"}, stages


def test_a_failed_check_on_the_service_fails_its_stage_and_publishes_nothing(pond_service, prefect_api, shop, tmp_path):
    env = client_env(pond_service, prefect_api)
    out = tmp_path / "out"
    program = f"""
        from prefect import flow
        from pond_core.checks import expression
        from pond_prefect import run_sql

        @flow(name="pond-service-checks")
        def checked():
            return run_sql(
                "SELECT customer_id, segment FROM customers", inputs={{"customers": {shop + "/customers.parquet"!r}}},
                output_path={str(out)!r}, checks=[expression("customer_id < 10", name="small ids")], retries=0,
            )

        state = checked(return_state=True)
    """
    report = run_flow(program, env)
    assert report["type"] == "FAILED"
    assert "checks failed: small ids; nothing was published" in report["message"], report["message"]
    runs = reads.task_runs(report["flow_run_id"])
    (failed,) = [r for r in runs.values() if r.state.is_failed()]
    assert failed.state.message.startswith("Task run encountered an exception PondCheckError: checks failed: small ids"), failed.state.message
    assert failed.run_count == 1  # a failed check is never retried
    keys = {a.key for a in reads.artifacts(report["flow_run_id"])}
    assert any(k.endswith("-checks-" + failed.name.replace("_", "-")) for k in keys), keys
    assert not out.exists() or not any(out.rglob("*.parquet"))


def test_a_failed_stage_fails_alone_and_the_stages_after_it_end_cancelled(pond_service, prefect_api, shop):
    env = client_env(pond_service, prefect_api)
    program = f"""
        from prefect import flow
        from pond_prefect import run_pipeline

        @flow(name="pond-service-broken")
        def broken():
            return run_pipeline("service_pipelines:broken_midway", {{"source_root": {shop!r}}}, retry_delay_seconds=0)

        state = broken(return_state=True)
    """
    report = run_flow(program, env)
    assert report["type"] == "FAILED" and "bad customer" in report["message"], report["message"]
    names = stage_names("service_pipelines:broken_midway", {"source_root": shop})
    runs = reads.task_runs(report["flow_run_id"])
    first, bad, *after = names
    assert runs[first].state.name == "Completed"
    assert runs[bad].state.is_failed() and "bad customer" in runs[bad].state.message
    assert runs[bad].run_count == 1  # a data error: not retried
    for name in after:
        assert runs[name].state.name == "Cancelled", name
        assert runs[name].state.message.startswith("not run: upstream stage"), runs[name].state.message


def test_a_transient_failure_on_the_service_is_retried_by_prefect(pond_service, prefect_api, shop, tmp_path):
    """`max_retries=0` (a run tunable sent with the stage) makes pond give up at once on the
    service; the retryable error then makes Prefect retry the stage, which succeeds."""
    env = client_env(pond_service, prefect_api)
    marker = tmp_path / "flaked"
    program = f"""
        from prefect import flow
        from pond_prefect import PondConfig, run_pipeline

        @flow(name="pond-service-flaky")
        def flaky():
            return run_pipeline(
                "service_pipelines:flaky", {{"source_root": {shop!r}, "marker": {str(marker)!r}}},
                config=PondConfig(max_retries=0), retry_delay_seconds=0,
            )

        state = flaky(return_state=True)
    """
    report = run_flow(program, env)
    assert report["type"] == "COMPLETED", report["output"]
    assert marker.exists()
    (stage,) = stage_names("service_pipelines:flaky", {"source_root": shop, "marker": str(marker)})
    run = reads.task_runs(report["flow_run_id"])[stage]
    assert run.state.name == "Completed" and run.run_count == 2
