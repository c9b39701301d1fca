"""The daily_revenue pipeline DAG under dag.test(): data, task states, lineage, assets, reruns."""

from __future__ import annotations

import os

import pytest
from airflow_rig import asset_events, expected_daily_revenue, lineage_events, read_dataset, run_dag, task_states, xcom

STAGES = ["orders_by_customer_id", "customers_by_customer_id", "join_aggregate_customers_orders", "write_daily_revenue"]
COLUMNS = "segment, country, revenue, orders"


@pytest.fixture(scope="module")
def first_run(airflow_db, rig):
    return run_dag("pond_daily_revenue", "2026-11-20")


def test_every_stage_task_succeeds_once(first_run):
    states = task_states(first_run)
    assert first_run.state == "success"
    assert states == {"shop_data": ("success", 1), **{f"daily_revenue.{s}": ("success", 1) for s in STAGES}}


def test_output_partition_matches_duckdb(first_run, rig):
    output = str(rig["examples"] / "daily_revenue")
    shop = str(rig["examples"] / "shop")
    rows = read_dataset(output, COLUMNS, "dt = DATE '2026-11-20'")
    assert rows == expected_daily_revenue(shop, "2026-11-20")
    assert len(rows) == 12  # the segment x country pairs the example data has


def test_xcom_is_a_small_summary(first_run):
    result = xcom(first_run, "daily_revenue.write_daily_revenue")
    assert result["rows"] == 12
    assert result["output_kind"] == "sink"
    assert result["sink"]["partitions"] == ["dt=2026-11-20"]
    assert result["run_id"].startswith("pond_daily_revenue__manual__")
    assert [c[0] for c in result["schema"]] == ["dt", "segment", "country", "revenue", "orders"]
    exchange = xcom(first_run, "daily_revenue.orders_by_customer_id")
    assert exchange["output_kind"] == "exchange" and exchange["rows"] == 20_000
    assert "inputs" not in exchange and len(str(exchange)) < 2_000


def test_each_stage_task_shows_its_sql_inputs_output_and_partitions(first_run):
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.utils.session import create_session
    from airflow_rig import get_dag
    from sqlalchemy import select

    dag = get_dag("pond_daily_revenue")
    join = dag.get_task("daily_revenue.join_aggregate_customers_orders")
    assert "FROM orders_by_customer_id o JOIN customers_by_customer_id c" in join.doc_md
    assert "- stage orders_by_customer_id (bucket)" in join.doc_md and "**Partitions** 4" in join.doc_md
    write = dag.get_task("daily_revenue.write_daily_revenue")
    assert "DATE '{{ ds }}'" in write.sql  # the parse-time SQL, as a template of each run's SQL
    with create_session() as session:
        rendered = session.scalar(
            select(RTIF.rendered_fields).where(
                RTIF.dag_id == "pond_daily_revenue", RTIF.run_id == first_run.run_id, RTIF.task_id == "daily_revenue.write_daily_revenue"
            )
        )
    assert "DATE '2026-11-20' AS dt" in rendered["sql"]  # Rendered Templates shows the run's own SQL


def test_each_stage_emits_openlineage_start_and_complete(first_run, rig):
    output = str(rig["examples"] / "daily_revenue")
    for stage in STAGES:
        events = lineage_events(f"pond_daily_revenue.daily_revenue.{stage}")
        kinds = [e["eventType"] for e in events]
        assert "START" in kinds and "COMPLETE" in kinds, (stage, kinds)
    complete = [e for e in lineage_events("pond_daily_revenue.daily_revenue.write_daily_revenue") if e["eventType"] == "COMPLETE"][-1]
    (out,) = complete["outputs"]
    assert (out["namespace"], out["name"]) == ("file", output)
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == 12
    assert [f["name"] for f in out["facets"]["schema"]["fields"]] == ["dt", "segment", "country", "revenue", "orders"]
    assert "sum(revenue)" in complete["job"]["facets"]["sql"]["query"]
    (inp,) = complete["inputs"]
    assert inp["namespace"] == "pond://pond_daily_revenue.daily_revenue" and inp["name"] == "join_aggregate_customers_orders"
    assert inp["facets"]["schema"]["fields"]  # the upstream stage's schema, from the catalog
    first = [e for e in lineage_events("pond_daily_revenue.daily_revenue.orders_by_customer_id") if e["eventType"] == "START"][-1]
    assert first["inputs"][0]["name"].endswith("/shop/orders/dt=2026-11-20")
    for event in lineage_events():
        assert "secret" not in str(event).lower()


def test_the_output_asset_event_has_flat_readable_extras(first_run, rig):
    output = "file://" + str(rig["examples"] / "daily_revenue")
    (event,) = [e for e in asset_events(output) if e["run_id"] == first_run.run_id]
    assert event["task_id"] == "daily_revenue.write_daily_revenue"
    extra = event["extra"]
    assert extra["rows"] == 12 and extra["files"] >= 1 and extra["partitions"] == "dt=2026-11-20" and extra["partition_count"] == 1
    assert extra["size"].endswith("B") and extra["bytes"] > 0
    assert extra["pond_run"].startswith("pond_daily_revenue__manual__") and extra["stage"] == "write_daily_revenue"
    assert all(isinstance(v, (str, int, float)) for v in extra.values()), extra  # nothing the UI folds away
    assert asset_events("pond://pond_daily_revenue.daily_revenue/orders_by_customer_id") == []  # intermediates: no Asset


def test_the_asset_graph_is_a_chain_from_sources_through_the_dag_to_the_dataset(first_run, rig):
    from airflow.api_fastapi.core_api.services.ui.dependencies import get_data_dependencies
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    output = "file://" + str(rig["examples"] / "daily_revenue")
    with create_session() as session:
        asset_id = session.scalar(select(AssetModel.id).where(AssetModel.uri == output))
        graph = get_data_dependencies(asset_id, session)
    labels = {n["id"]: n["label"] for n in graph["nodes"]}
    edges = sorted((labels[e["source_id"]].rsplit("/", 1)[-1], labels[e["target_id"]].rsplit("/", 1)[-1]) for e in graph["edges"])
    task = "pond_daily_revenue.daily_revenue.write_daily_revenue"
    assert [e for e in edges if task in e] == [("customers.parquet", task), ("orders", task), (task, "daily_revenue")]
    assert not [label for label in labels.values() if label.startswith("pond://")]  # no intermediates
    # The shared sources lead to the other example DAGs' outputs the same way: source -> task -> dataset.
    tasks = {n["label"] for n in graph["nodes"] if n["type"] == "task"}
    outputs = {t: sorted(b for a, b in edges if a == t) for t in tasks}
    assert outputs[task] == ["daily_revenue"] and outputs["pond_customer_spend.customer_spend"] == ["customer_spend"]
    # How many tasks share these sources depends on the DAGs the session has parsed (other test
    # DAGs read the same shop): whatever they are, each writing task leads to one dataset.
    assert len(tasks) >= 4 and all(len(v) == 1 for v in outputs.values()), outputs


def test_intermediates_are_dropped_after_the_final_stage(first_run, rig):
    run_id = xcom(first_run, "daily_revenue.write_daily_revenue")["run_id"]
    assert not os.path.exists(rig["pond_root"] / "jobs" / run_id / "staging")


def test_rerunning_a_day_replaces_exactly_that_day(first_run, rig):
    output = str(rig["examples"] / "daily_revenue")
    shop = str(rig["examples"] / "shop")
    second_day = run_dag("pond_daily_revenue", "2026-11-21")
    rerun = run_dag("pond_daily_revenue", "2026-11-20")
    assert second_day.state == rerun.state == "success"
    days = read_dataset(output, "DISTINCT dt::VARCHAR")
    assert days == [("2026-11-20",), ("2026-11-21",)]
    for day in ("2026-11-20", "2026-11-21"):
        assert read_dataset(output, COLUMNS, f"dt = DATE '{day}'") == expected_daily_revenue(shop, day)
    from pond_airflow.hooks.pond import PondHook

    catalog = PondHook().catalog()
    partitions = {p["key"]: p for p in catalog.list_partitions(output)}
    assert sorted(partitions) == ["dt=2026-11-20", "dt=2026-11-21"]
    assert partitions["dt=2026-11-20"]["run_id"] == xcom(rerun, "daily_revenue.write_daily_revenue")["run_id"]


def test_templated_sql_escapes_what_jinja_would_read():
    import jinja2

    from pond_airflow.pipeline import templated_sql

    sql = "SELECT {'k': 1} AS s, {{'x': 2}} AS t, '{%' AS p FROM t WHERE d = DATE '2026-11-01'"
    template = templated_sql(sql, {"2026-11-01": "{{ ds }}"})
    assert jinja2.Template(template).render(ds="2026-11-20") == sql.replace("2026-11-01", "2026-11-20")


def test_the_catalog_keys_intermediates_by_dag_and_walks_the_chain(first_run, rig):
    from pond_airflow.hooks.pond import PondHook
    from pond_core.lineage_graph import Direction, walk

    output = str(rig["examples"] / "daily_revenue")
    with PondHook().catalog() as catalog:
        chain = walk(catalog, output, Direction.UPSTREAM, 5)
    (join,) = chain.children
    assert (join.uri, join.stage) == ("pond://pond_daily_revenue.daily_revenue/join_aggregate_customers_orders", "write_daily_revenue")
    assert sorted(c.uri for c in join.children) == [
        "pond://pond_daily_revenue.daily_revenue/customers_by_customer_id", "pond://pond_daily_revenue.daily_revenue/orders_by_customer_id"]
    sources = {s.uri for c in join.children for s in c.children}
    assert any(u.endswith("/shop/customers.parquet") for u in sources)


def test_a_middle_stage_run_alone_says_what_it_recomputes_and_drops_it(first_run, rig, capfd):
    """As when `join_aggregate_customers_orders` is cleared alone after its run finished: its upstream
    outputs are gone, it says which it recomputes and why, and removes them afterwards."""
    import datetime as dt

    from airflow_rig import get_dag

    alone = get_dag("pond_daily_revenue").partial_subset(
        task_ids=["daily_revenue.join_aggregate_customers_orders"], include_upstream=False, include_downstream=False
    )
    capfd.readouterr()
    run = alone.test(logical_date=dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc))
    log = capfd.readouterr().out
    assert run.state == "success"
    line = next(line for line in log.splitlines() if "recomputing upstream" in line)
    assert "pond stage join_aggregate_customers_orders: recomputing upstream stages orders_by_customer_id, customers_by_customer_id first" in line
    assert "(dropped when the run's final stage finished, or cleaned)" in line
    assert "pond stage join_aggregate_customers_orders: dropped the intermediates it recomputed" in log
    result = xcom(run, "daily_revenue.join_aggregate_customers_orders")
    assert result["rows"] == 48
    assert not os.path.exists(rig["pond_root"] / "jobs" / result["run_id"] / "staging")
