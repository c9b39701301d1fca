"""Stage names: the user's (alias, name=) or derived from what the stage does; stable, unique."""

from __future__ import annotations

import pytest

from pond_core.errors import PondConfigError
from pond_core.io import StorageOptions
from pond_core.pipeline import compile_pipeline
from pond_core.plan.compile import compile_plan
from pond_core.plan.naming import compute_name, sink_name, source_name
from pond_core.plan.physical import SinkOutput
from pond_core.session import Session
from pond_core.settings import Settings

REVENUE = "pond_core.examples:daily_revenue"


def revenue_plan(ds: str = "2026-11-20", output_root: str = "/data/out/daily_revenue"):
    params = {"ds": ds, "source_root": "/data/shop", "output_root": output_root}
    return compile_pipeline(REVENUE, params, data_root="/tmp/pond-naming")


def planner(root) -> Session:
    """A session that declares reads of files that need not exist (as a pipeline's planning does)."""
    return Session(Settings.resolve(data_root=str(root), job_id="planning"), StorageOptions.from_env())


def test_derived_names_say_what_each_stage_does():
    plan = revenue_plan()
    assert [s.name for s in plan.stages] == [
        "orders_by_customer_id", "customers_by_customer_id", "join_aggregate_customers_orders", "write_daily_revenue",
    ]
    text = plan.render()
    assert "input in0: stage orders_by_customer_id [bucket]" in text  # inputs name stages, not hashes


def test_names_and_ids_are_stable_across_parses_and_parameters():
    first, again, other_day = revenue_plan(), revenue_plan(), revenue_plan("2026-11-21")
    assert [(s.name, s.id) for s in first.stages] == [(s.name, s.id) for s in again.stages]
    assert [s.name for s in other_day.stages] == [s.name for s in first.stages]


def test_moving_the_output_renames_no_stage():
    """The task ids of the daily and the partitioned DAG, and of the Prefect flow, are the same
    names: the sink is named after the pipeline's step, not after where it writes."""
    daily, partitioned, flow = (revenue_plan(output_root=p) for p in ("/a/daily_revenue", "/b/daily_revenue_by_partition", "/c/checked"))
    assert [s.name for s in daily.stages] == [s.name for s in partitioned.stages] == [s.name for s in flow.stages]
    assert daily.final.name == "write_daily_revenue"


@pytest.mark.parametrize(
    "queries, expected",
    [
        (["SELECT * FROM {0} o JOIN {1} c USING (k)", "SELECT k, sum(v) FROM {0} GROUP BY k"], "join_aggregate_t"),
        (["SELECT * FROM {0} o JOIN {1} c USING (k)"], "join_t"),
        (["SELECT k, count(*) FROM {0} GROUP BY k"], "aggregate_t"),
        (["SELECT * FROM {0} WHERE v > 1"], "filter_t"),
        (["SELECT v FROM {0}"], "select_t"),
    ],
)
def test_compute_names(queries, expected):
    assert compute_name("t", queries, []) == expected


def test_sink_names_come_from_the_pipeline_or_what_is_written():
    assert sink_name("pond_core.examples:daily_revenue", "customers_orders") == "write_daily_revenue"
    assert sink_name("tests.pipes:build.<locals>.spend", "orders") == "write_spend"
    assert sink_name(None, "orders") == "write_orders"


@pytest.mark.parametrize(
    "paths, expected",
    [
        (["/d/shop/orders/dt=2026-11-20/*.parquet"], "orders"),
        (["s3://bucket/shop/customers.parquet"], "customers"),
        (["/d/Events 2026/**/*.parquet"], "events_2026"),
        (["*.parquet"], "source"),
        (["/d/jobs/j/inputs/438a72c313b025b5bb5418b1.parquet"], "inputs"),
        (["/d/orders/2026-11-20.parquet"], "orders"),
        (["/d/out/20261120/batch/7"], "batch"),
    ],
)
def test_source_names(paths, expected):
    assert source_name(paths) == expected


def test_user_names_win_and_alias_on_a_read_names_its_stages(tmp_path):
    sp = planner(tmp_path)
    orders = sp.read_parquet(str(tmp_path / "o" / "*.parquet")).alias("sales")
    people = sp.read_parquet(str(tmp_path / "c.parquet"))
    by_key = orders.repartition(2, hash_by="k")
    named = people.repartition(2, hash_by="k", name="people_by_key")
    joined = sp.partial_sql("SELECT * FROM {0} JOIN {1} USING (k)", by_key, named, name="matched")
    sink = joined.sink_parquet(str(tmp_path / "out"), name="publish")
    plan = compile_plan(sink.node, SinkOutput(sink.spec))
    assert [s.name for s in plan.stages] == ["sales_by_k", "people_by_key", "publish"]
    unnamed_sink = sp.partial_sql("SELECT * FROM {0} JOIN {1} USING (k)", by_key, named).sink_parquet(str(tmp_path / "elsewhere"))
    assert compile_plan(unnamed_sink.node, SinkOutput(unnamed_sink.spec)).final.name == "write_c_sales"  # what it joins, not where it goes
    unnamed = joined.repartition(1)
    assert [s.name for s in compile_plan(unnamed._node).stages][-2:] == ["matched", "gather_matched"]


def test_names_are_unique_within_a_plan(tmp_path):
    sp = planner(tmp_path)
    df = sp.read_parquet(str(tmp_path / "x.parquet"))
    left = df.repartition(2, hash_by="k")
    right = df.filter("k > 1").repartition(2, hash_by="k")
    plan = compile_plan(sp.partial_sql("SELECT * FROM {0} UNION ALL SELECT * FROM {1}", left, right)._node)
    names = [s.name for s in plan.stages]
    assert names[:2] == ["x_by_k", "x_by_k_2"] and len(set(names)) == len(names)


@pytest.mark.parametrize("bad", ["", "has space", "dot.ted", "1st", "x" * 65])
def test_bad_names_are_refused(tmp_path, bad):
    sp = planner(tmp_path)
    with pytest.raises(PondConfigError, match="stage name"):
        sp.read_parquet(str(tmp_path / "x.parquet")).alias(bad)


def test_a_name_does_not_change_what_is_computed(tmp_path):
    sp = planner(tmp_path)
    df = sp.read_parquet(str(tmp_path / "x.parquet"))
    plain = compile_plan(df.repartition(2, hash_by="k")._node)
    named = compile_plan(df.repartition(2, hash_by="k", name="mine")._node)
    assert [s.id for s in plain.stages] == [s.id for s in named.stages]
    assert plain.stages[0].name == "x_by_k" and named.stages[0].name == "mine"
