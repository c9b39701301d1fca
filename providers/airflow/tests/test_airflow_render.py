"""Parse-time rendering: DAGs import cleanly, render deterministically, and check their shape at run time."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from airflow.sdk import DAG, Asset, AssetAlias, CronPartitionTimetable
from airflow.sdk.exceptions import AirflowFailException
from airflow_rig import EXAMPLE_DAGS, TEST_DAGS, dagbag

from pond_airflow.operators.stage import PondStageOperator
from pond_airflow.pipeline import pond_pipeline_group, representative_params

START = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
PIPELINE = "pond_core.examples:daily_revenue"


def test_every_dag_imports_without_errors():
    examples = dagbag(str(EXAMPLE_DAGS))
    assert not examples.import_errors
    assert sorted(examples.dags) == ["pond_customer_spend", "pond_daily_revenue", "pond_daily_revenue_checked", "pond_daily_revenue_partitioned"]
    assert not dagbag(str(TEST_DAGS)).import_errors


def test_pipeline_group_mirrors_the_plan():
    dag = dagbag(str(EXAMPLE_DAGS)).dags["pond_daily_revenue"]
    upstream = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    assert upstream == {
        "shop_data": [],
        "daily_revenue.orders_by_customer_id": ["shop_data"],
        "daily_revenue.customers_by_customer_id": ["shop_data"],
        "daily_revenue.join_aggregate_customers_orders": ["daily_revenue.customers_by_customer_id", "daily_revenue.orders_by_customer_id"],
        "daily_revenue.write_daily_revenue": ["daily_revenue.join_aggregate_customers_orders"],
    }
    write = dag.get_task("daily_revenue.write_daily_revenue")
    assert write.final and write.pipeline_params["ds"] == "{{ ds }}"
    assert write.outlets == [Asset("file://" + os.path.join(os.environ["POND_EXAMPLES_ROOT"], "daily_revenue"))]
    assert "overwrite_partitions" in write.doc_md


def test_only_sources_and_published_outputs_are_assets():
    """The sink's task carries the chain source -> task -> dataset; intermediates are no Assets."""
    bag = dagbag(str(EXAMPLE_DAGS))
    daily = bag.dags["pond_daily_revenue"]
    shop = "file://" + os.path.join(os.environ["POND_EXAMPLES_ROOT"], "shop")
    write = daily.get_task("daily_revenue.write_daily_revenue")
    assert write.inlets == [Asset(f"{shop}/orders"), Asset(f"{shop}/customers.parquet")]
    for stage in ("orders_by_customer_id", "customers_by_customer_id", "join_aggregate_customers_orders"):
        task = daily.get_task(f"daily_revenue.{stage}")
        assert (task.inlets, task.outlets) == ([], []), stage
    uris = sorted({a.uri for dag in bag.dags.values() for t in dag.tasks for a in [*t.inlets, *t.outlets] if isinstance(a, Asset)})
    root = "file://" + os.environ["POND_EXAMPLES_ROOT"]
    assert uris == [
        f"{root}/customer_spend", f"{root}/daily_revenue", f"{root}/daily_revenue_by_partition", f"{root}/daily_revenue_checked",
        f"{shop}/customers.parquet", f"{shop}/orders",
    ]


_SERIALIZE = """
import hashlib, json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
bag = DagBag(dag_folder=sys.argv[1])
out = {d: hashlib.sha256(json.dumps(DagSerialization.to_dict(bag.dags[d]), sort_keys=True, default=str).encode()).hexdigest() for d in sorted(bag.dags)}
print(json.dumps(out))
"""


def test_rendering_is_deterministic_across_processes():
    """Same DAG hash in processes with different hash seeds: Airflow records no new version."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SERIALIZE, str(EXAMPLE_DAGS)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in ("1", "2")
    ]
    hashes = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-2000:]
        hashes.append(json.loads(out.strip().splitlines()[-1]))
    assert hashes[0] == hashes[1]
    assert len(hashes[0]) == 4


def test_representative_params_use_the_dag_start_and_partition_format():
    timetable = CronPartitionTimetable("0 0 * * *", timezone="UTC", key_format="%Y/%m/%d")
    with DAG("p", schedule=timetable, start_date=START, params={"region": "eu"}) as dag:
        values = representative_params(
            {
                "ds": "{{ ds }}",
                "next": "{{ macros.ds_add(ds, 1) }}",
                "key": "{{ partition_key }}",
                "n": 4,
                "paths": ["/a/{{ ds_nodash }}/{{ params.region }}"],
            },
            dag,
        )
    assert values == {"ds": "2026-11-01", "next": "2026-11-02", "key": "2026/11/01", "n": 4, "paths": ["/a/20261101/eu"]}


def test_unrenderable_params_ask_for_parse_params():
    with DAG("q", schedule=None, start_date=START):
        with pytest.raises(ValueError, match="parse_params"):
            pond_pipeline_group(PIPELINE, {"ds": "{{ var.value.day }}", "source_root": "/s", "output_root": "/o"})
        group = pond_pipeline_group(
            PIPELINE, {"ds": "{{ var.value.day }}", "source_root": "/s", "output_root": "/o"}, parse_params={"ds": "2026-11-05"}
        )
    assert len(group.children) == 4


def test_output_known_only_at_run_time_is_an_asset_alias():
    with DAG("r", schedule=None, start_date=START) as dag:
        pond_pipeline_group(PIPELINE, {"ds": "{{ ds }}", "source_root": "/s", "output_root": "/out/{{ ds }}"})
    # The write is named after the pipeline, not the output path: the task id is stable.
    (outlet,) = dag.get_task("daily_revenue.write_daily_revenue").outlets
    assert isinstance(outlet, AssetAlias) and outlet.name == "pond.r.daily_revenue.write_daily_revenue"
    assert dag.get_task("daily_revenue.orders_by_customer_id").outlets == []  # intermediates are no Assets


def test_precompiled_plan_renders_the_same_group(tmp_path):
    from pond_core.pipeline import compile_pipeline

    params = {"ds": "2026-11-01", "source_root": "/s", "output_root": "/o"}
    path = tmp_path / "plan.json"
    path.write_text(compile_pipeline(PIPELINE, params).to_json())
    with DAG("s", schedule=None, start_date=START) as dag:
        pond_pipeline_group(plan=str(path), params={**params, "ds": "{{ ds }}"})
    assert sorted(t.task_id for t in dag.tasks) == [f"daily_revenue.{s}" for s in ("customers_by_customer_id", "join_aggregate_customers_orders", "orders_by_customer_id", "write_daily_revenue")]
    assert dag.get_task("daily_revenue.join_aggregate_customers_orders").pipeline == PIPELINE


def test_run_time_plan_must_match_the_rendered_shape():
    params = {"ds": "2026-11-01", "source_root": "/s", "output_root": "/o"}
    good = PondStageOperator(task_id="ok", pipeline=PIPELINE, stage="join_aggregate_customers_orders", pipeline_params=params, upstream_stages=["customers_by_customer_id", "orders_by_customer_id"])
    assert good.plan().stage("join_aggregate_customers_orders").name == "join_aggregate_customers_orders"
    moved = PondStageOperator(task_id="moved", pipeline=PIPELINE, stage="join_aggregate_customers_orders", pipeline_params=params, upstream_stages=["orders_by_customer_id"])
    with pytest.raises(AirflowFailException, match="structure depends on run-time parameters"):
        moved.plan()
    gone = PondStageOperator(task_id="gone", pipeline=PIPELINE, stage="05_sql", pipeline_params=params)
    with pytest.raises(AirflowFailException, match="no longer has stage 05_sql"):
        gone.plan()
    bad = PondStageOperator(task_id="bad", pipeline=PIPELINE, stage="join_aggregate_customers_orders", pipeline_params={**params, "ds": "yesterday"})
    with pytest.raises(AirflowFailException, match="PondConfigError"):
        bad.plan()


def test_stage_kwargs_apply_to_their_stage_only():
    params = {"ds": "2026-11-01", "source_root": "/s", "output_root": "/o"}
    with DAG("t", schedule=None, start_date=START) as dag:
        pond_pipeline_group(PIPELINE, params, retries=1, stage_kwargs={"write_daily_revenue": {"retries": 5}})
        with pytest.raises(ValueError, match="names no stage of .*: 05_sql"):
            pond_pipeline_group(PIPELINE, params, group_id="other", stage_kwargs={"05_sql": {"retries": 0}})
    assert dag.get_task("daily_revenue.write_daily_revenue").retries == 5
    assert dag.get_task("daily_revenue.join_aggregate_customers_orders").retries == 1
