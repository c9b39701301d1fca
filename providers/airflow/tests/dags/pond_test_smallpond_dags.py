"""Test-only DAG (airflow): a pipeline that returns a smallpond LogicalPlan."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from pond_airflow.pipeline import pond_pipeline_group

TEST_ROOT = os.environ.get("POND_AIRFLOW_TEST_ROOT", "/tmp/pond-airflow-tests")

with DAG("pond_test_smallpond_plan", schedule=None, start_date=pendulum.datetime(2026, 11, 1, tz="UTC"), default_args={"retries": 0}):
    pond_pipeline_group(
        "smallpond_plan_pipelines:host_counts",
        {"source": os.path.join(TEST_ROOT, "smallpond_urls", "*.parquet"), "output": os.path.join(TEST_ROOT, "smallpond_host_counts")},
    )
