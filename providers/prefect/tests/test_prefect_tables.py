"""A daily Iceberg table as a Prefect flow: the checks' table artifact on success, and on a day
whose checks fail: a failed stage task (not retried), the artifact, and the table unchanged."""

from __future__ import annotations

import json

import prefect_api
import pytest
from prefect import flow

from pond_prefect import PondConfig, run_pipeline

pytestmark = pytest.mark.usefixtures("prefect_api")


@flow(name="pond-test-iceberg-daily")
def events_flow(ds: str, catalog_uri: str, warehouse: str, storage_root: str, bad: bool = False) -> dict:
    params = {"ds": ds, "catalog_uri": catalog_uri, "warehouse": warehouse, "version": "v2" if bad else "v1", "bad": bad}
    return run_pipeline("tests.tables_pipelines:daily_events", params, config=PondConfig(data_root=storage_root, executor="local"), retry_delay_seconds=0)


def checks_artifact(state) -> list[dict]:
    found = [a for a in prefect_api.artifacts(state.state_details.flow_run_id) if (a.key or "").startswith("pond-test-iceberg-daily-checks-")]
    assert len(found) == 1, [(a.key, a.task_run_id) for a in prefect_api.artifacts(state.state_details.flow_run_id)]
    data = found[0].data
    return data if isinstance(data, list) else json.loads(data)


def test_checks_artifact_and_a_failing_day_keeps_the_table(tmp_path):
    from pyiceberg.catalog import load_catalog

    uri, warehouse = f"sqlite:///{tmp_path}/iceberg.db", f"file://{tmp_path}/warehouse"
    root = str(tmp_path / "pond")
    for ds in ("2026-11-20", "2026-11-21"):
        state = events_flow(ds, uri, warehouse, root, return_state=True)
        assert state.is_completed(), state
    rows = checks_artifact(state)
    assert [(r["check"], r["status"]) for r in rows][-1] == ("amount is not negative", "passed")
    table = load_catalog("pond", uri=uri, warehouse=warehouse).load_table("db.events")
    before = table.metadata_location

    bad = events_flow("2026-11-21", uri, warehouse, root, bad=True, return_state=True)
    assert bad.is_failed()
    failed = {r["check"]: r for r in checks_artifact(bad)}
    assert failed["amount is not negative"]["status"] == "FAILED" and failed["amount is not negative"]["failing"] == 2
    assert "-1" in failed["amount is not negative"]["sample"]
    (task,) = prefect_api.task_runs(bad.state_details.flow_run_id).values()
    assert task.state.name == "Failed" and task.run_count == 1  # a failed check is not retried
    said = "checks failed: amount is not negative; nothing was published (stage"
    assert said in task.state.message and said in bad.message  # the task's and the flow run's state
    assert load_catalog("pond", uri=uri, warehouse=warehouse).load_table("db.events").metadata_location == before


@flow(name="pond-test-iceberg-sql")
def sql_flow(src: str, catalog_uri: str, warehouse: str, storage_root: str) -> dict:
    from pond_core.checks import not_null
    from pond_prefect import run_sql

    return run_sql(
        "SELECT DATE '2026-11-20' AS dt, i % 3 AS channel, count(*) AS n FROM src GROUP BY ALL", {"src": src},
        output_table="db.by_channel", iceberg_catalog={"uri": catalog_uri, "warehouse": warehouse}, partition_by="dt",
        mode="overwrite_partitions", checks=[not_null("dt")], config=PondConfig(data_root=storage_root, executor="local"),
        retry_delay_seconds=0,
    )


def test_run_sql_into_an_iceberg_table(tmp_path):
    import duckdb
    from pyiceberg.catalog import load_catalog

    src = str(tmp_path / "src.parquet")
    duckdb.sql(f"COPY (SELECT range AS i FROM range(30)) TO '{src}' (FORMAT parquet)")
    uri, warehouse = f"sqlite:///{tmp_path}/iceberg.db", f"file://{tmp_path}/warehouse"
    state = sql_flow(src, uri, warehouse, str(tmp_path / "pond"), return_state=True)
    assert state.is_completed(), state
    table = load_catalog("pond", uri=uri, warehouse=warehouse).load_table("db.by_channel")
    assert sorted(table.scan().to_arrow().column("n").to_pylist()) == [10, 10, 10]
