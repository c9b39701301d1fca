"""One PondSqlOperator: each day's spend per customer, as a hive-partitioned Parquet dataset.

The SQL names its inputs like tables. Both inputs are hash-partitioned by customer_id, so the
join and the GROUP BY (keyed on customer_id) run per partition on up to 4 DuckDB tasks. The day
is written as `dt=<ds>` with overwrite_partitions, so a re-run or a backfill replaces exactly
that day; the task returns a small summary (rows, files, partitions) to XCom and records an
asset event for the dataset with its row count.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from _pond_airflow_examples import ROOT, SHOP, ensure_shop_day
from airflow.sdk import DAG, task

from pond_airflow.operators.sql import PondSqlOperator

with DAG(
    dag_id="pond_customer_spend",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["pond", "example"],
    doc_md=__doc__,
):

    @task
    def shop_data(ds: str | None = None) -> str:
        return ensure_shop_day(ds)

    spend = PondSqlOperator(
        task_id="customer_spend",
        sql="""
            SELECT o.dt, o.customer_id, c.segment, count(*) AS orders, sum(o.amount) AS spend
            FROM orders o JOIN customers c USING (customer_id)
            WHERE o.dt = DATE '{{ ds }}'
            GROUP BY ALL
        """,
        inputs={"orders": os.path.join(SHOP, "orders"), "customers": os.path.join(SHOP, "customers.parquet")},
        hive_partitioning={"orders": True},
        hash_by="customer_id",
        npartitions=4,
        output_path=os.path.join(ROOT, "customer_spend"),
        partition_by="dt",
        mode="overwrite_partitions",
    )
    shop_data() >> spend
