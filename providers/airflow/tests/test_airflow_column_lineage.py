"""Column-level lineage in OpenLineage: a three-way join's output columns name their source
columns in the columnLineage facet, from PondSqlOperator and from a pipeline's stage tasks."""

from __future__ import annotations

import os

from airflow_rig import lineage_events, run_dag, task_states

from tests.lineage_pipelines import EXPECTED

DAG_ID = "pond_test_column_lineage"


def _columns(job: str) -> dict[str, set[tuple[str, str, str]]]:
    complete = [e for e in lineage_events(job) if e["eventType"] == "COMPLETE"][-1]
    (out,) = complete["outputs"]
    fields = out["facets"]["columnLineage"]["fields"]
    return {c: {(f["namespace"], f["name"], f["field"]) for f in v["inputFields"]} for c, v in fields.items()}


def test_a_three_way_joins_columns_trace_to_their_sources_in_the_openlineage_event(airflow_db, rig):
    run = run_dag(DAG_ID, "2026-11-20")
    assert run.state == "success", task_states(run)
    sources = os.path.join(os.environ["POND_AIRFLOW_TEST_ROOT"], "three_way_sources")
    expected = {c: {("file", f"{sources}/{d}.parquet", col) for d, col in pairs} for c, pairs in EXPECTED.items()}
    assert _columns(f"{DAG_ID}.three_way_sql") == expected
    assert _columns(f"{DAG_ID}.three_way_frames.write_three_way_frames") == expected
    # an intermediate stage's output traces to sources too, through its exchange
    middle = _columns(f"{DAG_ID}.three_way_frames.customers_orders_by_country")
    assert middle["country"] == {("file", f"{sources}/customers.parquet", "country")}
    # how each is derived: OpenLineage's DIRECT subtypes
    complete = [e for e in lineage_events(f"{DAG_ID}.three_way_sql") if e["eventType"] == "COMPLETE"][-1]
    fields = complete["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert [t["subtype"] for f in fields["net"]["inputFields"] for t in f["transformations"]] == ["TRANSFORMATION"] * 2
    assert [(t["type"], t["subtype"]) for t in fields["order_id"]["inputFields"][0]["transformations"]] == [("DIRECT", "IDENTITY")]
