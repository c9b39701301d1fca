"""Test-only DAGs (airflow): failures, deferrable pipelines, SQL edge cases and S3."""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from pond_airflow.operators.sql import PondSqlOperator
from pond_airflow.pipeline import pond_pipeline_group

TEST_ROOT = os.environ.get("POND_AIRFLOW_TEST_ROOT", "/tmp/pond-airflow-tests")
SHOP = os.path.join(os.environ.get("POND_EXAMPLES_ROOT", "/tmp/pond-examples"), "shop")
START = pendulum.datetime(2026, 11, 1, tz="UTC")

with DAG("pond_test_flaky", schedule=None, start_date=START, default_args={"retries": 1, "retry_delay": timedelta(0)}):
    pond_pipeline_group(
        "pond_test_pipelines:flaky_totals",
        {
            "ds": "{{ ds }}",
            "source_root": SHOP,
            "output_root": os.path.join(TEST_ROOT, "flaky_totals"),
            "marker": os.path.join(TEST_ROOT, "flaky-{{ ds }}.marker"),
        },
        pond_conn_id="pond_no_retry",
    )

with DAG("pond_test_bad_data", schedule=None, start_date=START, default_args={"retries": 3, "retry_delay": timedelta(0)}):
    pond_pipeline_group(
        "pond_test_pipelines:bad_totals",
        {"ds": "{{ ds }}", "source_root": SHOP, "output_root": os.path.join(TEST_ROOT, "bad_totals")},
    )

with DAG("pond_test_deferrable", schedule=None, start_date=START, default_args={"retries": 0}):
    pond_pipeline_group(
        "pond_core.examples:daily_revenue",
        {"ds": "{{ ds }}", "source_root": SHOP, "output_root": os.path.join(TEST_ROOT, "deferred_revenue")},
        deferrable=True,
        poll_interval=0.5,
    )

with DAG("pond_test_sql", schedule=None, start_date=START, default_args={"retries": 2, "retry_delay": timedelta(0)}):
    PondSqlOperator(
        task_id="segments",
        sql="WITH s AS (SELECT segment, count(*) AS n FROM customers GROUP BY ALL) SELECT * FROM s ORDER BY segment",
        inputs={"customers": os.path.join(SHOP, "customers.parquet")},
    )
    PondSqlOperator(
        task_id="unknown_column",
        sql="SELECT no_such_column FROM customers",
        inputs={"customers": os.path.join(SHOP, "customers.parquet")},
        output_path=os.path.join(TEST_ROOT, "never_written"),
    )

JOIN3 = os.path.join(TEST_ROOT, "join3")  # tests/join3.py writes lineitem, orders, customer here

with DAG("pond_test_sql_join3", schedule=None, start_date=START, default_args={"retries": 0}):
    PondSqlOperator(  # no hash_by: pond's SQL planner places the exchanges
        task_id="segment_revenue",
        sql="""SELECT c_mktsegment, count(*) AS lines, sum(l_extendedprice) AS revenue, count(DISTINCT o_orderkey) AS orders
               FROM lineitem JOIN orders ON l_orderkey = o_orderkey JOIN customer ON o_custkey = c_custkey
               WHERE l_quantity > 5 GROUP BY c_mktsegment ORDER BY c_mktsegment""",
        inputs={name: os.path.join(JOIN3, name) for name in ("lineitem", "orders", "customer")},
        npartitions=3,
        output_path=os.path.join(TEST_ROOT, "join3_out"),
    )

with DAG("pond_test_sql_join3_ray", schedule=None, start_date=START, default_args={"retries": 0}):
    PondSqlOperator(  # the same on Ray: the test sets the pond_ray connection to its Ray instance
        task_id="segment_revenue",
        sql="""SELECT c_mktsegment, count(*) AS lines, sum(l_extendedprice) AS revenue, count(DISTINCT o_orderkey) AS orders
               FROM lineitem JOIN orders ON l_orderkey = o_orderkey JOIN customer ON o_custkey = c_custkey
               WHERE l_quantity > 5 GROUP BY c_mktsegment ORDER BY c_mktsegment""",
        inputs={name: os.path.join(JOIN3, name) for name in ("lineitem", "orders", "customer")},
        npartitions=3,
        output_path=os.path.join(TEST_ROOT, "join3_ray_out"),
        pond_conn_id="pond_ray",
    )

with DAG("pond_test_deferrable_bad_data", schedule=None, start_date=START, default_args={"retries": 2, "retry_delay": timedelta(0)}):
    pond_pipeline_group(
        "pond_test_pipelines:bad_totals",
        {"ds": "{{ ds }}", "source_root": SHOP, "output_root": os.path.join(TEST_ROOT, "deferred_bad_totals")},
        deferrable=True,
        poll_interval=0.5,
    )

S3_BUCKET = "pond-airflow-s3-test"  # created by test_airflow_s3 on the session's S3 server

with DAG("pond_test_s3", schedule=None, start_date=START, default_args={"retries": 0}):
    PondSqlOperator(
        task_id="segment_revenue",
        sql="SELECT o.dt, c.segment, sum(o.amount) AS revenue FROM orders o JOIN customers c USING (customer_id) GROUP BY ALL",
        inputs={"orders": f"s3://{S3_BUCKET}/shop/orders", "customers": f"s3://{S3_BUCKET}/shop/customers.parquet"},
        hive_partitioning={"orders": True},
        output_path=f"s3://{S3_BUCKET}/segment_revenue",
        partition_by="dt",
        mode="overwrite_partitions",
        pond_conn_id="pond_s3",
    )

for name, strict in (("pond_test_checks_warn", False), ("pond_test_checks_fail", True)):
    with DAG(name, schedule=None, start_date=START, default_args={"retries": 2, "retry_delay": timedelta(0)}):
        pond_pipeline_group(
            "pond_test_pipelines:checked_totals",
            {"ds": "{{ ds }}", "source_root": SHOP, "output_root": os.path.join(TEST_ROOT, name), "strict": strict},
            group_id="totals",
        )

