"""Test-only DAGs (airflow): a daily Iceberg table with checks before publish; the `bad` DAG
writes a day that breaks a check, which must fail its task and publish nothing."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from pond_airflow.pipeline import pond_pipeline_group

TEST_ROOT = os.environ.get("POND_AIRFLOW_TEST_ROOT", "/tmp/pond-airflow-tests")
ICEBERG = {
    "catalog_uri": f"sqlite:///{os.path.join(TEST_ROOT, 'iceberg.db')}",
    "warehouse": f"file://{os.path.join(TEST_ROOT, 'warehouse')}",
}
START = pendulum.datetime(2026, 11, 1, tz="UTC")

with DAG("pond_test_iceberg_daily", schedule=None, start_date=START, default_args={"retries": 0}):
    pond_pipeline_group("tests.tables_pipelines:daily_events", {"ds": "{{ ds }}", **ICEBERG}, group_id="events")

with DAG("pond_test_iceberg_bad_day", schedule=None, start_date=START, default_args={"retries": 2}):
    pond_pipeline_group("tests.tables_pipelines:daily_events", {"ds": "{{ ds }}", "version": "v2", "bad": True, **ICEBERG}, group_id="events")

with DAG("pond_test_iceberg_sql", schedule=None, start_date=START, default_args={"retries": 0}):
    from pond_airflow.operators.sql import PondSqlOperator
    from pond_core.checks import not_null, unique

    PondSqlOperator(
        task_id="events_by_channel",
        sql="SELECT DATE '{{ ds }}' AS dt, i % 3 AS channel, count(*) AS n FROM src GROUP BY ALL",
        inputs={"src": os.path.join(TEST_ROOT, "sql_src.parquet")},
        output_table="db.by_channel",
        iceberg_catalog={"uri": ICEBERG["catalog_uri"], "warehouse": ICEBERG["warehouse"]},
        partition_by="dt",
        mode="overwrite_partitions",
        checks=[not_null("dt"), unique("dt", "channel")],
    )
