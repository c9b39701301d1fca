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
    lines = out.splitlines()
    assert "revenue by day and segment" in out and "$ pond runs demo-daily-revenue-2026-11-20" in out
    for day in ("2026-11-18", "2026-11-19", "2026-11-20"):  # a run's line, then its four stages, then its summary
        at = lines.index(f"run demo-daily-revenue-{day}: 4 stages")
        assert all(line.startswith("  ") and " rows (" in line for line in lines[at + 1:at + 5]), lines[at:at + 6]
        assert lines[at + 5].startswith("  done: 4 stages ran in ")
    tree = out[out.index("upstream of "):]
    assert tree.count("pond://pond_core.examples.daily_revenue/join_aggregate_customers_orders") == 1  # once, not once per run
    assert f"{root}/source/customers.parquet" in tree and f"{root}/source/orders/dt=2026-11-20/*.parquet" in tree  # back to the sources
    assert "downstream of" not in out  # nothing is computed from the output: no empty table
    days = duckdb.sql(
        f"SELECT dt::VARCHAR, sum(orders) FROM read_parquet('{root}/revenue/*/*.parquet', hive_partitioning=true) GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert days == [("2026-11-18", 20000), ("2026-11-19", 20000), ("2026-11-20", 20000)]
    again = subprocess.run([sys.executable, "-m", "pond_core.demo", str(root)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "  nothing to do: all 4 stages were already committed by an earlier run" in again.stdout
    assert again.stdout.count("(already committed, reused)") == 3 * 4
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{root}/revenue/*/*.parquet')").fetchone()[0] == len(days) * 4 * 3
