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
