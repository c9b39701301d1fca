"""Test-only DAG (airflow): a three-way join as PondSqlOperator and as a pipeline's stage
tasks, whose OpenLineage events carry each output column's source columns."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from pond_airflow.operators.sql import PondSqlOperator
from pond_airflow.pipeline import pond_pipeline_group
from tests.lineage_pipelines import THREE_WAY_SQL, source_paths, write_sources

TEST_ROOT = os.environ.get("POND_AIRFLOW_TEST_ROOT", "/tmp/pond-airflow-tests")
SOURCES = os.path.join(TEST_ROOT, "three_way_sources")
if not all(os.path.exists(p) for p in source_paths(SOURCES).values()):
    write_sources(SOURCES)  # the sources exist before any task (or the planner) reads them

with DAG("pond_test_column_lineage", schedule=None, start_date=pendulum.datetime(2026, 11, 1, tz="UTC"), default_args={"retries": 0}):
    PondSqlOperator(
        task_id="three_way_sql",
        sql=THREE_WAY_SQL,
        inputs=source_paths(SOURCES),
        output_path=os.path.join(TEST_ROOT, "three_way_sql"),
        mode="overwrite",
    )
    pond_pipeline_group(
        "tests.lineage_pipelines:three_way_frames",
        {"source_root": SOURCES, "output": os.path.join(TEST_ROOT, "three_way_frames")},
    )
