"""DAGs of the service-mode tests (test_airflow_service*.py): every stage runs on a pond service.

They use the ordinary `pond_default` connection; the tests point it at the session's pond
service (extra `service_url`, password = token), so nothing here names the service.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from _pond_airflow_examples import ROOT, SHOP
from airflow.sdk import DAG

from pond_airflow.operators.sql import PondSqlOperator
from pond_airflow.pipeline import pond_pipeline_group

START = pendulum.datetime(2026, 11, 1, tz="UTC")

with DAG("pond_service_deferrable", schedule=None, start_date=START, default_args={"retries": 0}):
    pond_pipeline_group(
        "pond_core.examples:daily_revenue",
        {"ds": "{{ ds }}", "source_root": SHOP, "output_root": os.path.join(ROOT, "service_deferred_revenue"), "npartitions": 4},
        group_id="daily_revenue",
        deferrable=True,
        poll_interval=0.5,
    )

with DAG("pond_service_slow", schedule=None, start_date=START, default_args={"retries": 0}):
    # One stage that sleeps per partition: long enough to watch the task defer and to cancel it.
    pond_pipeline_group(
        "pond_test_pipelines:slow_copy",
        {"source_root": SHOP, "seconds": float(os.environ.get("POND_SERVICE_SLOW_SECONDS", "120"))},
        group_id="slow",
        deferrable=True,
        poll_interval=0.5,
    )

# Retries allowed: a bad statement must still fail at its first try (the service says it is not retryable).
with DAG("pond_service_sql", schedule=None, start_date=START, default_args={"retries": 2, "retry_delay": timedelta(0)}):
    PondSqlOperator(
        task_id="segments",
        sql="SELECT segment, count(*) AS n FROM customers GROUP BY ALL ORDER BY segment",
        inputs={"customers": os.path.join(SHOP, "customers.parquet")},
    )
    PondSqlOperator(
        task_id="bad_sql",
        sql="SELECT no_such_column FROM customers",
        inputs={"customers": os.path.join(SHOP, "customers.parquet")},
        output_path=os.path.join(ROOT, "service_bad_sql"),
    )
