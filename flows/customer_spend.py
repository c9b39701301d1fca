"""One SQL statement as a flow: each day's spend per customer, as a hive-partitioned Parquet dataset.

The SQL names its inputs like tables. Both inputs are hash-partitioned by customer_id, so the
join and the GROUP BY (keyed on customer_id) run per partition on up to 4 DuckDB tasks; each
pond stage is a task run. The day is written as `dt=<ds>` with overwrite_partitions, so a rerun
or a backfill replaces exactly that day.

    python flows/customer_spend.py [--ds 2026-11-20]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Without PREFECT_API_URL, Prefect starts a temporary local server; give a busy machine time.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from _pond_example_data import OUTPUT, SHOP, ensure_shop_day, pond_config, run_day
from prefect import flow, task

from pond_prefect import run_sql

SQL = """
    SELECT o.dt, o.customer_id, c.segment, count(*) AS orders, sum(o.amount) AS spend
    FROM orders o JOIN customers c USING (customer_id)
    WHERE o.dt = DATE '{ds}'
    GROUP BY ALL
"""


@task(name="shop_data", task_run_name="shop_data")  # no random suffix in the run's graph
def shop_data(ds: str) -> str:
    return ensure_shop_day(ds)


@flow(name="pond-customer-spend")
def customer_spend(ds: str | None = None, config: str | None = None, force: bool = False) -> Any:
    day = run_day(ds)
    landed = shop_data.submit(day)  # shown upstream of the first stages in the flow run's graph
    landed.result()  # the run id fingerprints the source files: they must exist first
    return run_sql(
        SQL.format(ds=day),
        inputs={"orders": os.path.join(SHOP, "orders"), "customers": os.path.join(SHOP, "customers.parquet")},
        hive_partitioning={"orders": True},  # customers.parquet is a plain file
        hash_by="customer_id",
        npartitions=4,
        output_path=os.path.join(OUTPUT, "customer_spend"),
        partition_by="dt",
        mode="overwrite_partitions",
        config=pond_config(config),
        force=force,
        wait_for=[landed],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ds", help="the day to compute (YYYY-MM-DD)")
    result = customer_spend(ds=parser.parse_args().ds)
    for name, stage in result["stages"].items():
        print(f"{name}: {stage['rows']} rows, {stage['bytes']} bytes, {stage['seconds']}s")
