"""PondSqlOperator: the example DAG under dag.test(), rows to XCom, SQL errors, input binding."""

from __future__ import annotations

import duckdb
import pytest
from airflow_rig import asset_events, lineage_events, read_dataset, run_dag, task_states, xcom

from pond_core.plan.sql import bind_named_inputs as bind_inputs

DAY = "2026-11-20"


@pytest.fixture(scope="module")
def spend_run(airflow_db, rig):
    return run_dag("pond_customer_spend", DAY)


def test_customer_spend_writes_the_day(spend_run, rig):
    assert task_states(spend_run) == {"shop_data": ("success", 1), "customer_spend": ("success", 1)}
    shop = rig["examples"] / "shop"
    expected = duckdb.sql(
        f"""SELECT o.customer_id, c.segment, count(*) AS orders, sum(o.amount) AS spend
            FROM read_parquet('{shop}/orders/*/*.parquet', hive_partitioning=true) o
            JOIN read_parquet('{shop}/customers.parquet') c USING (customer_id)
            WHERE o.dt = DATE '{DAY}' GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    output = str(rig["examples"] / "customer_spend")
    assert read_dataset(output, "customer_id, segment, orders, spend", f"dt = DATE '{DAY}'") == expected
    result = xcom(spend_run, "customer_spend")
    assert result["rows"] == len(expected) == 2000
    assert result["sink"]["partitions"] == [f"dt={DAY}"]
    assert result["npartitions"] == 4  # hash_by customer_id into 4 partitions
    from pond_airflow.hooks.pond import PondHook

    with PondHook().catalog() as catalog:  # a pond run like any other: pond runs / partitions see it
        run = catalog.get_run(result["run_id"])
        assert (run["status"], run["pipeline"]) == ("success", "pond_core.named_sql:sql_pipeline")
        assert [s["stage_name"] for s in run["stages"]] == ["orders_by_customer_id", "customers_by_customer_id", "write_customer_spend"]
        assert [p["key"] for p in catalog.list_partitions(output)] == [f"dt={DAY}"]


def test_customer_spend_lineage_and_asset(spend_run, rig):
    shop = str(rig["examples"] / "shop")
    complete = [e for e in lineage_events("pond_customer_spend.customer_spend") if e["eventType"] == "COMPLETE"][-1]
    assert sorted(i["name"] for i in complete["inputs"]) == [f"{shop}/customers.parquet", f"{shop}/orders"]
    (out,) = complete["outputs"]
    assert out["name"] == str(rig["examples"] / "customer_spend")
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == 2000
    assert [f["name"] for f in out["facets"]["schema"]["fields"]] == ["dt", "customer_id", "segment", "orders", "spend"]
    assert f"DATE '{DAY}'" in complete["job"]["facets"]["sql"]["query"]  # the rendered SQL
    start = [e for e in lineage_events("pond_customer_spend.customer_spend") if e["eventType"] == "START"][-1]
    assert start["outputs"][0]["name"] == out["name"] and start["inputs"]
    (event,) = asset_events("file://" + str(rig["examples"] / "customer_spend"))
    assert event["extra"]["rows"] == 2000 and event["extra"]["partitions"] == f"dt={DAY}"


def test_rows_to_xcom_and_sql_error_without_retry(airflow_db, rig):
    from _pond_airflow_examples import ensure_shop_day

    ensure_shop_day(DAY, str(rig["examples"] / "shop"))
    run = run_dag("pond_test_sql", DAY)
    states = task_states(run)
    assert states["segments"] == ("success", 1)
    assert states["unknown_column"] == ("failed", 1)  # retries=2, but bad SQL is final
    result = xcom(run, "segments")
    assert result["rows"] == 4 and not result["truncated"]
    assert result["records"] == [
        {"segment": s, "n": 500} for s in ("consumer", "corporate", "home_office", "small_business")
    ]
    failed = [e for e in lineage_events("pond_test_sql.unknown_column") if e["eventType"] == "FAIL"][-1]
    assert "no_such_column" in failed["run"]["facets"]["errorMessage"]["message"]


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("SELECT * FROM a JOIN b USING (k)", 'WITH "a" AS (SELECT * FROM {0}), "b" AS (SELECT * FROM {1}) SELECT * FROM a JOIN b USING (k)'),
        ("with x as (select 1) select * from x, a;", 'with "a" AS (SELECT * FROM {0}), "b" AS (SELECT * FROM {1}), x as (select 1) select * from x, a'),
        ("-- note\nWITH RECURSIVE r AS (SELECT 1) SELECT * FROM r", '-- note\nWITH RECURSIVE "a" AS (SELECT * FROM {0}), "b" AS (SELECT * FROM {1}), r AS (SELECT 1) SELECT * FROM r'),
        ("SELECT {'k': 1} AS s FROM a", 'WITH "a" AS (SELECT * FROM {0}), "b" AS (SELECT * FROM {1}) SELECT {{\'k\': 1}} AS s FROM a'),
    ],
)
def test_bind_inputs(sql, expected):
    assert bind_inputs(sql, ["a", "b"]) == expected


def test_bound_sql_runs_in_duckdb():
    bound = bind_inputs("SELECT count(*) AS n, {'k': max(x)} AS s FROM t", ["t"])
    con = duckdb.connect()
    con.execute("CREATE TABLE src AS SELECT range AS x FROM range(5)")
    assert con.execute(bound.format("src")).fetchall() == [(5, {"k": 4})]


def test_a_three_way_join_on_different_keys_is_planned_by_pond(airflow_db, rig):
    """No hash_by: the statement reads whole datasets and pond places the exchanges, so the one
    operator runs as several stages, the big input split over the partitions."""
    import os

    from pond_airflow.hooks.pond import PondHook
    from tests.join3 import expected, write_tables

    root = os.environ["POND_AIRFLOW_TEST_ROOT"]
    paths = write_tables(os.path.join(root, "join3"))
    run = run_dag("pond_test_sql_join3", DAY)
    assert task_states(run) == {"segment_revenue": ("success", 1)}
    out = os.path.join(root, "join3_out")
    got = duckdb.sql(f"SELECT * FROM read_parquet('{out}/*.parquet') ORDER BY c_mktsegment").fetchall()
    assert got == expected(paths) and len(got) == 5
    result = xcom(run, "segment_revenue")
    with PondHook().catalog() as catalog:
        stages = catalog.get_run(result["run_id"])["stages"]
    assert len(stages) >= 3, stages
    assert max(s["npartitions"] for s in stages) == 3, stages  # lineitem split over the 3 partitions
    assert any(s["npartitions"] == 1 for s in stages)  # the small side broadcast, the result gathered


@pytest.mark.ray
def test_a_three_way_join_planned_by_pond_runs_on_ray(airflow_db, rig, ray_instance, monkeypatch):
    """The same DAG task on Ray: its connection (`pond_ray`, set here) points pond at the
    session's Ray instance."""
    import json
    import os

    from pond_airflow.hooks.pond import PondHook
    from tests.join3 import expected, write_tables

    root = os.environ["POND_AIRFLOW_TEST_ROOT"]
    paths = write_tables(os.path.join(root, "join3"))
    address = ray_instance.get_runtime_context().gcs_address
    extra = {"data_root": str(rig["pond_root"]), "executor": "ray", "ray_address": address}
    monkeypatch.setenv("AIRFLOW_CONN_POND_RAY", json.dumps({"conn_type": "pond", "extra": extra}))
    run = run_dag("pond_test_sql_join3_ray", DAY)
    assert task_states(run) == {"segment_revenue": ("success", 1)}
    out = os.path.join(root, "join3_ray_out")
    got = duckdb.sql(f"SELECT * FROM read_parquet('{out}/*.parquet') ORDER BY c_mktsegment").fetchall()
    assert got == expected(paths)
    with PondHook().catalog() as catalog:
        stages = catalog.get_run(xcom(run, "segment_revenue")["run_id"])["stages"]
    assert len(stages) >= 3 and max(s["npartitions"] for s in stages) == 3, stages
