"""Helpers for the Airflow tests: run example and test DAGs with dag.test(), read back results.

Tests may read the metadata DB (they are not tasks); everything here is read-only besides
dag.test() itself.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import pathlib
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[2]
EXAMPLE_DAGS = REPO / "dags"
TEST_DAGS = HERE / "dags"


@functools.cache
def dagbag(folder: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=folder)
    assert not bag.import_errors, bag.import_errors
    return bag


def get_dag(dag_id: str) -> Any:
    for folder in (EXAMPLE_DAGS, TEST_DAGS):
        bag = dagbag(str(folder))
        if dag_id in bag.dags:
            return bag.dags[dag_id]
    raise KeyError(dag_id)


def run_dag(dag_id: str, day: str) -> Any:
    """dag.test() for the logical date `day` (YYYY-MM-DD); returns the DagRun."""
    d = dt.date.fromisoformat(day)
    return get_dag(dag_id).test(logical_date=dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc))


def task_states(dag_run: Any) -> dict[str, tuple[str, int]]:
    """task_id -> (state, try_number) of a finished run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.task_id, TaskInstance.state, TaskInstance.try_number).where(
                TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
            )
        ).all()
    return {task_id: (str(state.value if hasattr(state, "value") else state), tries) for task_id, state, tries in rows}


def xcom(dag_run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
        )
    return json.loads(value) if isinstance(value, str) else value


def asset_events(uri: str) -> list[dict[str, Any]]:
    """Events recorded for the asset at `uri`: extra, source task and run, oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.extra, AssetEvent.source_task_id, AssetEvent.source_run_id, AssetEvent.partition_key)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
        ).all()
    return [{"extra": e, "task_id": t, "run_id": r, "partition_key": k} for e, t, r, k in rows]


def lineage_events(job: str | None = None, lineage_file: str | None = None) -> list[dict[str, Any]]:
    path = pathlib.Path(lineage_file or os.environ["POND_AIRFLOW_LINEAGE_FILE"])
    if not path.exists():
        return []
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in events if job is None or e["job"]["name"] == job]


def read_dataset(path: str, columns: str = "*", where: str = "true") -> list[tuple]:
    """Rows of a hive-partitioned Parquet dataset, sorted."""
    import duckdb

    con = duckdb.connect()
    try:
        return con.execute(
            f"SELECT {columns} FROM read_parquet('{path}/*/*.parquet', hive_partitioning=true) WHERE {where} ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


def expected_daily_revenue(shop: str, day: str) -> list[tuple]:
    """daily_revenue's (segment, country, revenue, orders) for one day, computed by DuckDB alone."""
    import duckdb

    con = duckdb.connect()
    try:
        return con.execute(
            f"""SELECT c.segment, c.country, sum(o.amount) AS revenue, count(*)::BIGINT AS orders
                FROM read_parquet('{shop}/orders/dt={day}/*.parquet', hive_partitioning=false) o
                JOIN read_parquet('{shop}/customers.parquet') c USING (customer_id)
                GROUP BY ALL ORDER BY ALL"""
        ).fetchall()
    finally:
        con.close()
