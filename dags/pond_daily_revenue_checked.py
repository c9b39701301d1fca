"""Daily revenue with checks before publish: the sink's checks are a task of their own.

The pipeline (`_pond_airflow_examples:checked_revenue`) is pond_core.examples:daily_revenue with
four checks on the staged output before it is published: `row_count at least 1`,
`not_null(segment, country)`, "enough orders per segment and country" (at least the
`min_orders` param) and, as a warning only, "no unusually large revenue". The group renders

    daily_revenue.{orders_by_customer_id, customers_by_customer_id} >> join_aggregate_customers_orders >> write_... >> write_..._checks

Trigger with `{"min_orders": 100000}` to see a check fail: nothing is published, the write task
and its checks task fail without retry, naming the check.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from _pond_airflow_examples import ROOT, SHOP, ensure_shop_day
from airflow.sdk import DAG, Param, task

from pond_airflow.pipeline import pond_pipeline_group

with DAG(
    dag_id="pond_daily_revenue_checked",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=3,
    params={"min_orders": Param(1, type="integer", description="the least orders a segment/country pair must have")},
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["pond", "example"],
    doc_md=__doc__,
):

    @task
    def shop_data(ds: str | None = None) -> str:
        return ensure_shop_day(ds)

    revenue = pond_pipeline_group(
        "_pond_airflow_examples:checked_revenue",
        {
            "ds": "{{ ds }}",
            "source_root": SHOP,
            "output_root": os.path.join(ROOT, "daily_revenue_checked"),
            "min_orders": "{{ params.min_orders }}",
        },
        group_id="daily_revenue",
    )
    shop_data() >> revenue
