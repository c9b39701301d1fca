"""The example flows in flows/ run as their docstrings say (`python flows/X.py --ds DAY`), against
the session's Prefect API, and write what DuckDB alone computes from the example shop."""

from __future__ import annotations

import os
import runpy
import sys

import duckdb
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
FLOWS = os.path.join(REPO, "flows")
DAY = "2026-11-20"

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def examples_root(tmp_path, monkeypatch):
    monkeypatch.setenv("POND_EXAMPLES_ROOT", str(tmp_path / "examples"))
    monkeypatch.setenv("POND_EXECUTOR", "local")
    sys.modules.pop("_pond_example_data", None)  # it reads POND_EXAMPLES_ROOT when imported
    yield tmp_path / "examples"
    sys.modules.pop("_pond_example_data", None)


def run_script(name: str, *args: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [os.path.join(FLOWS, name), *args])
    runpy.run_path(os.path.join(FLOWS, name), run_name="__main__")


def rows(sql: str) -> list[tuple]:
    return duckdb.sql(sql).fetchall()


def test_customer_spend_flow_runs_from_the_command_line(examples_root, monkeypatch, capsys):
    run_script("customer_spend.py", "--ds", DAY, monkeypatch=monkeypatch)
    shop, out = examples_root / "shop", examples_root / "prefect" / "customer_spend"
    expected = rows(
        f"""SELECT o.customer_id, c.segment, count(*), sum(o.amount)
            FROM read_parquet('{shop}/orders/*/*.parquet', hive_partitioning=true) o
            JOIN read_parquet('{shop}/customers.parquet') c USING (customer_id)
            WHERE o.dt = DATE '{DAY}' GROUP BY ALL ORDER BY ALL"""
    )
    got = rows(
        f"SELECT customer_id, segment, orders, spend FROM read_parquet('{out}/dt={DAY}/*.parquet') ORDER BY ALL"
    )
    assert got == expected and len(got) > 100
    assert "rows" in capsys.readouterr().out


def test_daily_revenue_flow_runs_from_the_command_line(examples_root, monkeypatch, capsys):
    run_script("daily_revenue.py", "--ds", DAY, monkeypatch=monkeypatch)
    shop, out = examples_root / "shop", examples_root / "prefect" / "daily_revenue"
    expected = rows(
        f"""SELECT c.segment, c.country, sum(o.amount), count(*)
            FROM read_parquet('{shop}/orders/dt={DAY}/*.parquet') o
            JOIN read_parquet('{shop}/customers.parquet') c USING (customer_id)
            GROUP BY ALL ORDER BY ALL"""
    )
    got = rows(f"SELECT segment, country, revenue, orders FROM read_parquet('{out}/dt={DAY}/*.parquet') ORDER BY ALL")
    assert got == expected and len(got) == 12
    assert f"output: {out}" in capsys.readouterr().out


def test_hive_partitioning_on_a_plain_file_names_the_input(examples_root, tmp_path, monkeypatch):
    from prefect import flow

    from pond_core.examples import ensure_shop_day
    from pond_prefect import PondConfig, run_sql

    shop = str(examples_root / "shop")
    ensure_shop_day(DAY, shop)

    @flow(name="pond-test-bad-hive")
    def bad() -> object:
        return run_sql(
            "SELECT * FROM orders JOIN customers USING (customer_id)",
            inputs={"orders": os.path.join(shop, "orders"), "customers": os.path.join(shop, "customers.parquet")},
            output_path=str(tmp_path / "out"),
            hive_partitioning=True,
            hash_by="customer_id",
            npartitions=2,
            config=PondConfig(data_root=str(tmp_path / "pond"), executor="local"),
            retries=0,
        )

    with pytest.raises(Exception, match=r"hive_partitioning=True but input .*customers\.parquet is not in k=v directories") as err:
        bad()
    assert "{'orders': True}" in str(err.value)


def test_retrying_a_finished_flow_run_with_prefects_cli_gives_the_same_output(examples_root, monkeypatch, prefect_api):
    """`prefect flow-run retry` of a completed run, once as is and once after its intermediate
    outputs were dropped: it completes again, every stage accounted for, the same rows."""
    import subprocess

    import prefect_api as api_reads
    from prefect.client.orchestration import get_client

    from pond_core import api

    flows = runpy.run_path(os.path.join(FLOWS, "daily_revenue.py"), run_name="pond_examples_under_test")
    state = flows["daily_revenue"](ds=DAY, return_state=True)
    assert state.is_completed()
    flow_run_id = state.state_details.flow_run_id
    out = examples_root / "prefect" / "daily_revenue"
    read = lambda: rows(f"SELECT * FROM read_parquet('{out}/dt={DAY}/*.parquet') ORDER BY ALL")  # noqa: E731
    before = read()
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "providers", "airflow"), os.path.join(REPO, "providers", "prefect")]),
    }
    prefect = os.path.join(os.path.dirname(sys.executable), "prefect")
    run_id = state.result()["run_id"]
    for drop in (False, True):
        if drop:
            settings = api.Settings.resolve(data_root=str(examples_root / "pond"), job_id=run_id)
            api.drop_intermediates(run_id, settings)
        done = subprocess.run(
            [prefect, "flow-run", "retry", str(flow_run_id), "--entrypoint", f"{FLOWS}/daily_revenue.py:daily_revenue"],
            env=env, capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        with get_client(sync_client=True) as client:
            assert client.read_flow_run(flow_run_id).state.is_completed()
        assert read() == before
    stages = api_reads.task_runs(flow_run_id)
    assert {"orders_by_customer_id", "customers_by_customer_id", "join_aggregate_customers_orders", "write_daily_revenue"} <= set(stages)


def test_the_landing_task_is_upstream_of_the_first_stages(examples_root, monkeypatch):
    import prefect_api as api_reads

    flows = runpy.run_path(os.path.join(FLOWS, "daily_revenue.py"), run_name="pond_examples_under_test")
    state = flows["daily_revenue"](ds="2026-11-22", return_state=True)
    runs = api_reads.task_runs(state.state_details.flow_run_id)
    (landing,) = [r.id for name, r in runs.items() if name.startswith("shop_data")]
    for first in ("orders_by_customer_id", "customers_by_customer_id"):
        waited = {i.id for inputs in runs[first].task_inputs.values() for i in inputs}
        assert landing in waited, (first, runs[first].task_inputs)
