"""The README's main job runs on embedded defaults and produces what it says."""

from __future__ import annotations

import subprocess
import sys

import duckdb


def test_demo_runs_the_pipeline_and_shows_it_through_the_cli(tmp_path):
    root = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "pond_core.demo", str(root)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "revenue by day and segment" in out and "$ pond runs demo-daily-revenue-2026-11-20" in out
    assert "write_revenue" in out and "pond://pond_core.examples.daily_revenue/join_customers_orders" in out
    days = duckdb.sql(
        f"SELECT dt::VARCHAR, sum(orders) FROM read_parquet('{root}/revenue/*/*.parquet', hive_partitioning=true) GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert days == [("2026-11-18", 20000), ("2026-11-19", 20000), ("2026-11-20", 20000)]
    again = subprocess.run([sys.executable, "-m", "pond_core.demo", str(root)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{root}/revenue/*/*.parquet')").fetchone()[0] == len(days) * 4 * 3
