"""The optimizer and the stage compiler: rules that keep meaning and save work."""

from __future__ import annotations

from pond_core.io import StorageOptions
from pond_core.plan.compile import compile_plan
from pond_core.plan.logical import Limit, Read, Repartition
from pond_core.plan.optimize import optimize
from pond_core.session import Session
from pond_core.settings import Settings


def frame(tmp_path):
    """A planning session (as compile_pipeline's): its reads name files that need not exist."""
    session = Session(Settings.resolve(data_root=str(tmp_path), job_id="planning"), StorageOptions.from_env())
    return session, session.read_parquet(str(tmp_path / "x.parquet"))


def test_noop_repartitions_are_dropped(tmp_path):
    _, df = frame(tmp_path)
    assert isinstance(optimize(df.repartition(1)._node), Read)
    twice = df.repartition(4, hash_by="a").repartition(4, hash_by="a")._node
    assert optimize(twice).inputs[0].__class__ is Read


def test_limit_is_pushed_into_the_scan_and_stays_global(tmp_path):
    _, df = frame(tmp_path)
    node = optimize(df.limit(10).limit(5)._node)
    assert isinstance(node, Limit) and node.n == 5 and node.inputs[0].source.limit == 5
    spread = optimize(df.repartition(3).limit(7)._node)
    assert isinstance(spread, Limit) and isinstance(spread.inputs[0], Repartition)
    plan = compile_plan(df.repartition(3).limit(7)._node)
    assert [s.npartitions for s in plan.stages] == [3, 1], "per-partition limit, then one global limit"


def test_consecutive_steps_fuse_into_one_stage(tmp_path):
    sp, df = frame(tmp_path)
    chained = sp.partial_sql("SELECT a + 1 AS b FROM {0}", df).filter("b > 2").map("b * 2 AS c")
    plan = compile_plan(chained._node)
    assert len(plan.stages) == 1 and len(plan.stages[0].steps) == 3


def test_exchange_writes_only_the_columns_consumers_reference(tmp_path):
    sp, df = frame(tmp_path)
    agg = sp.partial_sql("SELECT k, sum(v) AS s FROM {0} GROUP BY k", df.repartition(4, hash_by="k"))
    exchange = compile_plan(agg._node).stages[0]
    assert exchange.output.kind == "exchange" and exchange.output.columns == ("k", "v")
    star = sp.partial_sql("SELECT * FROM {0}", df.repartition(4, hash_by="k"))
    assert compile_plan(star._node).stages[0].output.columns is None


def test_each_side_of_a_join_carries_only_its_own_columns(tmp_path):
    sp, df = frame(tmp_path)
    other = sp.read_parquet(str(tmp_path / "y.parquet"))
    joined = sp.partial_sql(
        "SELECT a.v, b.w, z FROM {0} a JOIN {1} b USING (k) WHERE a.u > 0",
        df.repartition(4, hash_by="k"), other.repartition(4, hash_by="k"),
    )
    left, right = compile_plan(joined._node).stages[:2]
    assert left.output.columns == ("k", "u", "v", "z") and right.output.columns == ("k", "w", "z")  # z: unqualified, either side


def test_a_source_feeding_an_exchange_is_split_over_many_producers(tmp_path):
    _, df = frame(tmp_path)
    producer = compile_plan(df.repartition(8, hash_by="k")._node).stages[0]
    assert producer.npartitions == 0 and producer.inputs[0].split == "files"


def test_stage_ids_are_stable_and_names_are_task_ids(tmp_path):
    sp, df = frame(tmp_path)
    build = lambda: sp.partial_sql("SELECT k FROM {0}", df.repartition(2, hash_by="k"))._node  # noqa: E731
    first, second = compile_plan(build()), compile_plan(build())
    assert [s.id for s in first.stages] == [s.id for s in second.stages]
    assert [s.name for s in first.stages] == ["x_by_k", "select_x"]


def test_deep_plans_compile(tmp_path):
    _, df = frame(tmp_path)
    for i in range(400):
        df = df.repartition(2 + i % 2, hash_by="k")
    assert len(compile_plan(df._node).stages) == 401
