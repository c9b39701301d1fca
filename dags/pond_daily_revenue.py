"""Daily revenue by customer segment and country: a pond pipeline as one Airflow task per stage.

The pipeline (pond_core.examples:daily_revenue) reads one day of orders and the customers,
hash-repartitions both by customer, joins and aggregates per partition, and writes the day as
the `dt=<ds>` partition of the output dataset with overwrite_partitions. Rendered at parse time
from the compiled plan, the group holds one task per stage:

    shop_data >> daily_revenue.{orders_by_customer_id, customers_by_customer_id} >> join_aggregate_customers_orders >> write_daily_revenue

Backfill any range: `airflow backfill create --dag-id pond_daily_revenue --from-date 2026-11-01
--to-date 2026-11-03`; each run replaces exactly its own day.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from _pond_airflow_examples import ROOT, SHOP, ensure_shop_day
from airflow.sdk import DAG, task

from pond_airflow.pipeline import pond_pipeline_group

with DAG(
    dag_id="pond_daily_revenue",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=3,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["pond", "example"],
    doc_md=__doc__,
):

    @task
    def shop_data(ds: str | None = None) -> str:
        return ensure_shop_day(ds)

    revenue = pond_pipeline_group(
        "pond_core.examples:daily_revenue",
        {
            "ds": "{{ ds }}",
            "source_root": SHOP,
            "output_root": os.path.join(ROOT, "daily_revenue"),
            "npartitions": 4,
        },
    )
    shop_data() >> revenue
