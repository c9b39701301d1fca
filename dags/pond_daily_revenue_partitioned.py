"""The daily revenue pipeline on a partitioned schedule: one run per day's partition key.

With CronPartitionTimetable each run (scheduled or backfilled) carries a partition key, here
formatted as the day itself, and `{{ partition_key }}` selects what the pipeline reads and which
`dt=` partition it replaces. Its asset events carry the same key.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from _pond_airflow_examples import ROOT, SHOP, ensure_shop_day
from airflow.sdk import DAG, CronPartitionTimetable, task

from pond_airflow.pipeline import pond_pipeline_group

with DAG(
    dag_id="pond_daily_revenue_partitioned",
    schedule=CronPartitionTimetable("0 0 * * *", timezone="UTC", key_format="%Y-%m-%d"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    max_active_runs=3,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["pond", "example"],
    doc_md=__doc__,
):

    @task
    def shop_data(partition_key: str | None = None) -> str:
        return ensure_shop_day(partition_key)

    revenue = pond_pipeline_group(
        "pond_core.examples:daily_revenue",
        {
            "ds": "{{ partition_key }}",
            "source_root": SHOP,
            "output_root": os.path.join(ROOT, "daily_revenue_by_partition"),
        },
        group_id="daily_revenue",
    )
    shop_data() >> revenue
