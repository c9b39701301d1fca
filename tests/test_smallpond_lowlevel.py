"""smallpond's low-level nodes, datasets and Driver on pond, node by node, in-process.

Each test builds a LogicalPlan the way a smallpond program does, runs it with the Driver in
scheduler mode and checks the rows pond wrote; the failure tests check the error names what is
wrong. The programs of smallpond's examples/ and benchmarks/ run in
test_smallpond_lowlevel_programs.py.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from pond_core.compat.smallpond.execution.driver import Driver
from pond_core.compat.smallpond.execution.task import RuntimeContext
from pond_core.compat.smallpond.logical import node as sp
from pond_core.compat.smallpond.logical.dataset import (
    ArrowTableDataSet,
    CsvDataSet,
    JsonDataSet,
    PandasDataSet,
    ParquetDataSet,
    SqlQueryDataSet,
)
from pond_core.compat.smallpond.logical.udf import UDFType, udf
from pond_core.errors import PondConfigError


def run(tmp_path: Any, plan: sp.LogicalPlan, *flags: str) -> list[tuple[Any, ...]]:
    """Run the plan as `SCRIPT.py scheduler ...` would; return the rows written, by partition file."""
    driver = Driver()
    out = tmp_path / "out"
    driver.parse_arguments(["scheduler", "--data_root", str(tmp_path / "root"), "--job_id", "t1", "--output_path", str(out), *flags])
    driver.run(plan, stop_process_on_done=False)
    return rows(f"SELECT * EXCLUDE (filename), filename FROM read_parquet('{out}/*.parquet', filename=true, union_by_name=true) ORDER BY ALL")


def rows(sql: str) -> list[tuple[Any, ...]]:
    return duckdb.sql(sql).fetchall()


def partition(filename: str) -> int:
    return int(os.path.basename(filename).split("-")[-2])


def numbers(n: int) -> ArrowTableDataSet:
    return ArrowTableDataSet(pa.table({"x": list(range(n)), "k": [i % 5 for i in range(n)]}))


def test_hash_partition_keeps_keys_together_and_names_partitions(tmp_path: Any) -> None:
    ctx = sp.Context()
    source = sp.DataSourceNode(ctx, numbers(40))
    hashed = sp.HashPartitionNode(ctx, (source,), npartitions=3, hash_columns=["k"], output_name="by_k")
    # smallpond's {__data_partition__}: the partition's index, in the SQL
    tagged = sp.SqlEngineNode(ctx, (hashed,), "select x, k, {__data_partition__} as p, __data_partition__ as col from {0}")
    got = run(tmp_path, sp.LogicalPlan(ctx, tagged))
    assert sorted(r[0] for r in got) == list(range(40))
    for _x, k, p, col, filename in got:
        assert p == col == partition(filename) == duckdb.sql(f"select hash(concat_ws('##', {k})) % 3").fetchone()[0]


def test_shuffle_and_load_partitioned_use_the_column_as_the_index(tmp_path: Any) -> None:
    ctx = sp.Context()
    source = sp.DataSourceNode(ctx, numbers(20))
    shuffled = sp.ShuffleNode(ctx, (source,), npartitions=5, data_partition_column="k")
    loaded = sp.DataSetPartitionNode(ctx, (sp.ConsolidateNode(ctx, shuffled, []),), npartitions=5, data_partition_column="k")
    got = run(tmp_path, sp.LogicalPlan(ctx, loaded))
    assert len(got) == 20
    assert all(k == partition(filename) for _, k, filename in got)


def test_user_partitioned_source_and_union(tmp_path: Any) -> None:
    a = tmp_path / "a.parquet"
    b = tmp_path / "b.parquet"
    duckdb.sql(f"COPY (SELECT range AS x FROM range(3)) TO '{a}'")
    duckdb.sql(f"COPY (SELECT range + 10 AS x FROM range(2)) TO '{b}'")
    ctx = sp.Context()
    parts = sp.UserPartitionedDataSourceNode(ctx, [ParquetDataSet([str(a)]), ParquetDataSet([str(b)])])
    extra = sp.DataSetPartitionNode(ctx, (sp.DataSourceNode(ctx, SqlQueryDataSet("select 100 as x union all select 101")),),
                                    npartitions=2, partition_by_rows=True)
    union = sp.UnionNode(ctx, (parts, extra))
    got = run(tmp_path, sp.LogicalPlan(ctx, union))
    by_partition = {(x, partition(f)) for x, f in got}
    assert {(0, 0), (1, 0), (2, 0), (10, 1), (11, 1)} <= by_partition  # each dataset is its partition
    assert sorted(x for x, _ in got) == [0, 1, 2, 10, 11, 100, 101]


class EvenOnly(sp.UserDefinedPartitionNode):
    def partition(self, runtime_ctx: RuntimeContext, dataset: Any) -> list[Any]:
        return [ParquetDataSet([p]) for p in dataset.resolved_paths]


def test_user_defined_partition_repeat_projection_limit(tmp_path: Any) -> None:
    for i in range(2):
        duckdb.sql(f"COPY (SELECT range + {i * 10} AS x, 'v' AS y FROM range(3)) TO '{tmp_path}/in{i}.parquet'")
    ctx = sp.Context()
    source = sp.DataSourceNode(ctx, ParquetDataSet([f"{tmp_path}/in*.parquet"]))
    split = EvenOnly(ctx, (source,), npartitions=2)
    projected = sp.ProjectionNode(ctx, split, ["x"])
    repeated = sp.RepeatPartitionNode(ctx, (sp.ConsolidateNode(ctx, projected, []),), npartitions=3, dimension="copy")
    got = run(tmp_path, sp.LogicalPlan(ctx, repeated))
    assert sorted(x for x, _ in got) == sorted([0, 1, 2, 10, 11, 12] * 3)
    assert {partition(f) for _, f in got} == {0, 1, 2}
    ctx = sp.Context()
    limited = sp.LimitNode(ctx, sp.DataSourceNode(ctx, ParquetDataSet([f"{tmp_path}/in*.parquet"])), 4)
    assert len(run(tmp_path, sp.LogicalPlan(ctx, limited))) == 4


class AddOne(sp.PandasComputeNode):
    def process(self, runtime_ctx: RuntimeContext, input_dfs: list[pd.DataFrame]) -> pd.DataFrame:
        assert runtime_ctx.task.cpu_limit == 2
        return input_dfs[0].assign(x=input_dfs[0]["x"] + 1)


class Double(sp.ArrowBatchNode):
    def process(self, runtime_ctx: RuntimeContext, input_tables: list[pa.Table]) -> pa.Table:
        assert input_tables[0].num_rows <= 4  # streaming_batch_size
        return input_tables[0].set_column(0, "x", pa.compute.multiply(input_tables[0]["x"], 2))


class CountBatches(sp.PandasBatchNode):
    def process(self, runtime_ctx: RuntimeContext, input_dfs: list[pd.DataFrame]) -> pd.DataFrame:
        return pd.DataFrame({"rows": [len(input_dfs[0])]})


def test_user_nodes_chain_in_one_stage(tmp_path: Any) -> None:
    ctx = sp.Context()
    source = sp.DataSetPartitionNode(ctx, (sp.DataSourceNode(ctx, numbers(10)),), npartitions=2, partition_by_rows=True)
    added = AddOne(ctx, (sp.ProjectionNode(ctx, source, ["x"]),), cpu_limit=2, parquet_compression="ZSTD")
    doubled = Double(ctx, (added,), streaming_batch_size=4)
    counted = CountBatches(ctx, (doubled,), streaming_batch_size=4)
    assert sorted(r[0] for r in run(tmp_path, sp.LogicalPlan(ctx, counted))) == [1, 1, 4, 4]  # 5 rows per partition, batches of 4
    ctx = sp.Context()
    source = sp.DataSetPartitionNode(ctx, (sp.DataSourceNode(ctx, numbers(10)),), npartitions=2, partition_by_rows=True)
    doubled = Double(ctx, (AddOne(ctx, (sp.ProjectionNode(ctx, source, ["x"]),), cpu_limit=2),), streaming_batch_size=4)
    assert sorted(r[0] for r in run(tmp_path, sp.LogicalPlan(ctx, doubled))) == [2 * (x + 1) for x in range(10)]


class SortHosts(sp.ArrowComputeNode):
    def process(self, runtime_ctx: RuntimeContext, input_tables: list[pa.Table]) -> pa.Table:
        return input_tables[0].sort_by("k")


def test_empty_hash_partitions_reach_user_code_with_their_schema(tmp_path: Any) -> None:
    """2 keys into 8 partitions: six are empty, and the user's node gets an empty table with
    the columns, as on smallpond (a table with no columns would break `sort_by`)."""
    ctx = sp.Context()
    source = sp.DataSourceNode(ctx, ArrowTableDataSet(pa.table({"k": ["a", "b", "a"]})))
    hashed = sp.HashPartitionNode(ctx, (source,), npartitions=8, hash_columns=["k"])
    got = run(tmp_path, sp.LogicalPlan(ctx, SortHosts(ctx, (hashed,))))
    assert sorted(r[0] for r in got) == ["a", "a", "b"]


def test_query_lists_and_partition_placeholders(tmp_path: Any) -> None:
    """A list of queries: the earlier ones set up each task's connection; the last is the result.
    `{__data_partition__}` is the partition's index on any partitioned input."""
    ctx = sp.Context()
    parts = sp.DataSetPartitionNode(ctx, (sp.DataSourceNode(ctx, numbers(6)),), npartitions=3, partition_by_rows=True)
    node = sp.SqlEngineNode(ctx, (parts,), ["create macro twice(a) as a * 2", "select twice(x) as y, {__data_partition__} as p from {0}"])
    got = run(tmp_path, sp.LogicalPlan(ctx, node))
    assert sorted(y for y, _, _ in got) == [0, 2, 4, 6, 8, 10]
    assert all(p == partition(f) for _, p, f in got)


def test_udfs_csv_json_pandas_sources(tmp_path: Any) -> None:
    (tmp_path / "a.csv").write_text("1|x\n2|y\n")
    (tmp_path / "a.json").write_text('{"n": 5}\n{"n": 6}\n')

    @udf(params=[UDFType.BIGINT], return_type=UDFType.BIGINT)
    def triple(v: int) -> int:
        return v * 3

    ctx = sp.Context()
    csv = sp.DataSourceNode(ctx, CsvDataSet([str(tmp_path / "a.csv")], OrderedDict([("n", "INTEGER"), ("s", "VARCHAR")]), delim="|"))
    js = sp.DataSourceNode(ctx, JsonDataSet([str(tmp_path / "a.json")], {"n": "INTEGER"}))
    pdf = sp.DataSourceNode(ctx, PandasDataSet(pd.DataFrame({"n": [7]})))
    ctx.create_function("plus_one", lambda v: v + 1, [UDFType.BIGINT], UDFType.BIGINT)
    query = "select triple(n) as t, plus_one(n) as p from (select n from {0} union all select n from {1} union all select n from {2})"
    node = sp.SqlEngineNode(ctx, (csv, js, pdf), query, udfs=[triple, "plus_one"], enable_temp_directory=True)
    assert [(t, p) for t, p, _ in run(tmp_path, sp.LogicalPlan(ctx, node))] == [(3, 2), (6, 3), (15, 6), (18, 7), (21, 8)]


def test_root_node_runs_each_result_and_sink_writes_its_path(tmp_path: Any) -> None:
    ctx = sp.Context()
    source = sp.DataSourceNode(ctx, numbers(6))
    sink = sp.DataSinkNode(ctx, (sp.SqlEngineNode(ctx, (source,), "select x from {0} where x < 2"),), output_path=str(tmp_path / "sink"))
    other = sp.DataSinkNode(ctx, (sp.SqlEngineNode(ctx, (source,), "select x from {0} where x > 3"),), output_path=str(tmp_path / "sink2"))
    driver = Driver()
    driver.parse_arguments(["scheduler", "--data_root", str(tmp_path / "root"), "--job_id", "r1"])
    driver.run(sp.LogicalPlan(ctx, sp.RootNode(ctx, (sink, other))), stop_process_on_done=False)
    assert rows(f"SELECT x FROM '{tmp_path}/sink/*.parquet' ORDER BY x") == [(0,), (1,)]
    assert rows(f"SELECT x FROM '{tmp_path}/sink2/*.parquet' ORDER BY x") == [(4,), (5,)]


def test_python_script_node_files_pass_to_the_next_script(tmp_path: Any) -> None:
    def write(runtime_ctx: RuntimeContext, inputs: list[Any], output_path: str) -> bool:
        count = inputs[0].to_arrow_table().num_rows
        with open(os.path.join(output_path, runtime_ctx.task.output_filename + ".txt"), "w") as handle:
            handle.write(str(count))
        return True

    def collect(runtime_ctx: RuntimeContext, inputs: list[Any], output_path: str) -> bool:
        with open(os.path.join(output_path, "seen.txt"), "w") as handle:
            handle.write(",".join(sorted(open(p).read() for p in inputs[0].resolved_paths)))
        return True

    ctx = sp.Context()
    source = sp.DataSetPartitionNode(ctx, (sp.DataSourceNode(ctx, numbers(10)),), npartitions=2, partition_by_rows=True)
    written = sp.PythonScriptNode(ctx, (source,), process_func=write, output_name="counts")
    final = sp.PythonScriptNode(ctx, (sp.DataSetPartitionNode(ctx, (written,), npartitions=1),), process_func=collect, output_name="seen")
    run(tmp_path, sp.LogicalPlan(ctx, final))
    output = tmp_path / "root" / "jobs" / "t1" / "output"
    assert (output / "seen" / "seen.txt").read_text() == "5,5"  # the second script read the first's files
    assert len(os.listdir(output / "counts")) == 2


def test_flags_reach_pond_and_output_names_name_stages(tmp_path: Any) -> None:
    from pond_core.compat.smallpond.logical.planner import Planner
    from pond_core.plan.compile import compile_plan
    from pond_core.session import init

    ctx = sp.Context()
    source = sp.DataSetPartitionNode(ctx, (sp.DataSourceNode(ctx, numbers(8)),), npartitions=2)
    hashed = sp.HashPartitionNode(ctx, (source,), npartitions=2, hash_columns=["k"], output_name="by_key", use_parquet_writer=True)
    total = sp.SqlEngineNode(ctx, (hashed,), "select k, count(*) as n from {0} group by k", output_name="key_counts",
                             cpu_limit=2, memory_limit=512 << 20)
    session = init(data_root=str(tmp_path / "root"), job_id="names")
    [target] = Planner(session).compile(sp.LogicalPlan(ctx, total))
    stages = {s.name: s for s in compile_plan(target.node, target.output).stages}
    assert "by_key" in stages and "key_counts" in stages
    assert (stages["key_counts"].task_threads, stages["key_counts"].task_memory) == (2, 512 << 20)  # cpu_limit, memory_limit
    assert (stages["by_key"].task_threads, stages["by_key"].task_memory) == (None, None)  # smallpond's defaults: pond's
    driver = Driver()
    _, args = driver.parse_arguments(["scheduler", "--max_retry", "1", "--disable_speculative_exec", "--num_executors", "0"])
    assert (args.max_retry_count, args.speculative_exec, args.num_executors) == (1, "disable", 0)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda ctx, src: sp.RangePartitionNode(ctx, (src,), [10]), "RangePartitionNode names no column"),
        (lambda ctx, src: sp.HashPartitionNode(ctx, (src,), 2, ["k"], nested=True, dimension="d"), "nested partitions"),
        (lambda ctx, src: sp.SqlEngineNode(ctx, (src,), ["copy (select 1) to 'x.csv'", "select * from {0}"]), "may not write files"),
        (lambda ctx, src: sp.SqlEngineNode(ctx, (src,), "select {nope} from {0}"), "placeholder {nope} is not one smallpond fills"),
        (lambda ctx, src: sp.SqlEngineNode(ctx, (src,), "select * from {1}"), "refers to input 1"),
    ],
)
def test_plans_pond_cannot_run_fail_with_the_reason(tmp_path: Any, build: Any, message: str) -> None:
    ctx = sp.Context()
    plan = sp.LogicalPlan(ctx, build(ctx, sp.DataSourceNode(ctx, numbers(3))))
    with pytest.raises(PondConfigError, match=message):
        run(tmp_path, plan)


def test_bad_options_and_modes_are_named() -> None:
    ctx = sp.Context()
    with pytest.raises(PondConfigError, match="takes no option parquet_compresion"):
        sp.SqlEngineNode(ctx, (), "select 1", parquet_compresion="zstd")
    with pytest.raises(PondConfigError, match="output_path must be an absolute path"):
        sp.SqlEngineNode(ctx, (), "select 1", output_path="relative/dir")
    driver = Driver()
    driver.parse_arguments(["executor"])
    with pytest.raises(PondConfigError, match="executor mode does not exist on pond"):
        driver.run(sp.LogicalPlan(ctx, sp.DataSourceNode(ctx, numbers(1))), stop_process_on_done=False)
    with pytest.raises(PondConfigError, match="does not use"):
        sp.LogicalPlan(ctx, sp.DataSourceNode(ctx, numbers(1))).graph()
    assert "DataSourceNode" in str(sp.LogicalPlan(ctx, sp.DataSourceNode(ctx, numbers(1))))


def test_dataframe_python_steps_chained_through_sql_in_one_stage(tmp_path: Any) -> None:
    """A Python step after a SQL step after a Python step, all in one stage: the step names
    once collided (s0 twice) and the second Python step could not see the first's output."""
    from pond_core.session import init

    session = init(data_root=str(tmp_path / "root"), job_id="chain", executor="local")
    try:
        df = session.from_items([{"x": i} for i in range(6)]).repartition(2, by_rows=True).map("x + 1 AS x")
        df = df.map_batches(lambda t: t.set_column(0, "x", pa.compute.add(t["x"], 0))).filter("x % 2 = 0")
        df = df.map_batches(lambda t: t.set_column(0, "x", pa.compute.multiply(t["x"], 10)))
        assert sorted(r["x"] for r in df.take_all()) == [20, 40, 60]
    finally:
        session.shutdown()


def test_steps_of_a_stage_have_distinct_names(tmp_path: Any) -> None:
    """A Python step whose input is built by more steps took the name of the first of them."""
    from pond_core.plan.compile import compile_plan
    from pond_core.session import init

    session = init(data_root=str(tmp_path / "root"), job_id="names", executor="local")
    df = session.from_items([{"x": 1}]).map("x + 1 AS x").map_batches(lambda t: t).filter("x > 0").map_batches(lambda t: t)
    for stage in compile_plan(df._node).stages:
        ids = [step.id for step in stage.steps]
        assert len(ids) == len(set(ids)), ids
