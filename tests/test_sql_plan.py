"""The SQL planner's contract: inputs of every kind, partition counts, errors before anything
runs, DuckDB's result types, explain(), and plans that are ordinary, stable pond pipelines."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import pyarrow as pa
import pytest

import pond_core
from pond_core.errors import PondConfigError, PondSqlError
from pond_core.pipeline import compile_pipeline
from pond_core.runner import run_plan
from pond_core.sqlplan import PlanOptions, plan_sql, session_sql
from tests.sql_compare import assert_same_result
from tests.support.sql_tpch import tpch_dir
from tests.tpch_queries import table_paths

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sqlplan")
    con = duckdb.connect()
    (root / "t").mkdir()
    for i in range(2):
        con.execute(f"COPY (SELECT i AS id, i % 3 AS g, i * 0.5 AS x FROM range({i * 50}, {i * 50 + 50}) t(i)) TO '{root}/t/p{i}.parquet' (FORMAT parquet)")
    for dt_ in ("2026-01-01", "2026-01-02"):
        (root / "hive" / f"dt={dt_}").mkdir(parents=True)
        con.execute(f"COPY (SELECT i AS id, i * 10 AS amount FROM range(5) t(i)) TO '{root}/hive/dt={dt_}/part.parquet' (FORMAT parquet)")
    return root


def test_session_sql_is_the_wrapper_session_sql_calls(sql_sessions, data):
    df = session_sql(sql_sessions("local"), "SELECT g, count(*) AS n FROM t GROUP BY g ORDER BY g", t=str(data / "t" / "*.parquet"))
    assert df.take_all() == [{"g": 0, "n": 34}, {"g": 1, "n": 33}, {"g": 2, "n": 33}]


def test_inputs_may_be_frames_paths_lists_globs_and_hive_datasets(sql_sessions, data):
    sp = sql_sessions("local")
    frame = sp.partial_sql("SELECT id, g FROM {0} WHERE id < 10", sp.read_parquet(str(data / "t")))
    query = (
        "SELECT h.dt, sum(h.amount) AS total, count(DISTINCT f.g) AS groups, (SELECT count(*) FROM l) AS listed "
        "FROM h JOIN f ON h.id = f.id GROUP BY h.dt ORDER BY h.dt"
    )
    dq = plan_sql(sp, query, {"h": str(data / "hive"), "f": frame, "l": [str(data / "t" / "p0.parquet"), str(data / "t" / "p1.parquet")]})
    rows = dq.frame.take_all()
    assert [(str(r["dt"]), r["total"], r["groups"], r["listed"]) for r in rows] == [("2026-01-01", 100, 3, 100), ("2026-01-02", 100, 3, 100)]


def test_partition_counts_come_from_sizes_and_cores_unless_given(sql_sessions, data):
    sp = sql_sessions("local")
    t = {"t": str(data / "t" / "*.parquet")}
    assert plan_sql(sp, "SELECT count(*) FROM t", t).npartitions == 1  # a few KiB: one partition
    many = plan_sql(sp, "SELECT count(*) FROM t", t, options=PlanOptions(partition_bytes=1))
    assert many.npartitions == (os.cpu_count() or 1)  # as large as it gets: one per core
    assert plan_sql(sp, "SELECT count(*) FROM t", t, npartitions=5).npartitions == 5


def test_bad_sql_fails_before_anything_runs_with_duckdbs_message(sql_sessions, data):
    sp = sql_sessions("local")
    t = {"t": str(data / "t" / "*.parquet")}
    with pytest.raises(PondSqlError, match="nope"):
        plan_sql(sp, "SELECT nope FROM t", t)
    with pytest.raises(PondSqlError, match="missing"):
        plan_sql(sp, "SELECT * FROM missing", t)
    with pytest.raises(PondConfigError, match="is a int"):
        plan_sql(sp, "SELECT 1", {"t": 3})
    with pytest.raises(PondConfigError, match="bad name"):
        plan_sql(sp, "SELECT 1", {"bad-name": str(data / "t")})


def test_result_types_are_duckdbs(sql_sessions, data):
    sp = sql_sessions("local")
    path = str(data / "t" / "*.parquet")
    query = (
        "SELECT g, count(*) AS n, sum(id) AS s, avg(x) AS a, avg(CAST(x AS DECIMAL(10,2))) AS ad, "
        "sum(CAST(x AS DECIMAL(10,2))) AS sd, min(DATE '2026-01-01' + CAST(id AS INT)) AS d FROM t GROUP BY g ORDER BY g"
    )
    dq = plan_sql(sp, query, {"t": path}, npartitions=2, options=PlanOptions(single_read_threshold=0, partition_bytes=1))
    got = dq.frame.to_arrow()
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{path}')")
    want = con.execute(query).to_arrow_table()
    # DuckDB's HUGEINT (sum of BIGINT) reaches Arrow as decimal128(38, 0), which pond stores.
    assert got.schema.names == want.schema.names
    for f, w in zip(got.schema, want.schema):
        assert f.type == w.type or (pa.types.is_large_string(f.type) and pa.types.is_string(w.type)), f.name
    assert_same_result([tuple(r.values()) for r in got.to_pylist()], [tuple(r.values()) for r in want.to_pylist()], [0])


def test_explain_shows_the_distributed_plan_and_pond_stages(sql_sessions, capsys):
    data = tpch_dir(0.1)
    dq = plan_sql(sql_sessions("local"), "SELECT o_orderpriority, count(*) FROM orders JOIN lineitem ON l_orderkey = o_orderkey GROUP BY 1",
                  table_paths(data), npartitions=3)
    text = dq.explain()
    assert text.startswith("== distributed plan (3 partitions) ==")
    assert "why:" in text and "fallbacks: none" in text
    frame_text = dq.frame.explain()
    assert "== physical plan ==" in frame_text and text in frame_text
    assert capsys.readouterr().out == ""  # explain() returns the text; print(df.explain()) prints it once


def test_a_pipeline_returning_sql_is_an_ordinary_stable_plan(tmp_path):
    data = str(tpch_dir(0.1))
    ref = "tests.sql_pipelines:revenue_by_priority"
    plan = compile_pipeline(ref, {"data": data}, data_root=str(tmp_path / "plan"))
    assert len(plan.stages) >= 2 and all(s.name for s in plan.stages)
    again = compile_pipeline(ref, {"data": data}, data_root=str(tmp_path / "plan"))
    assert [s.id for s in again.stages] == [s.id for s in plan.stages]
    code = (
        "import json, sys; from pond_core.pipeline import compile_pipeline; "
        f"p = compile_pipeline({ref!r}, {{'data': {data!r}}}, data_root={str(tmp_path / 'plan')!r}); "
        "print(json.dumps([s.id for s in p.stages]))"
    )
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert json.loads(out.stdout.strip().splitlines()[-1]) == [s.id for s in plan.stages]
    sp = pond_core.init(data_root=str(tmp_path / "run"), executor="local")
    try:
        result = run_plan(plan, "sql-run", settings=sp.config, executor=sp.executor())
        assert len(result.stages) == len(plan.stages)
        rerun = run_plan(plan, "sql-run", settings=sp.config, executor=sp.executor())  # committed: resumes with nothing to do
        assert rerun.stages.keys() == result.stages.keys()
    finally:
        sp.shutdown()


def test_names_are_case_insensitive_like_duckdb(sql_sessions, tmp_path):
    con = duckdb.connect()
    (tmp_path / "T").mkdir()
    for i in range(3):
        con.execute(f"COPY (SELECT i AS \"UserId\", i % 4 AS \"Grp\" FROM range({i * 100}, {i * 100 + 100}) t(i)) TO '{tmp_path}/T/p{i}.parquet' (FORMAT parquet)")
    query = 'SELECT u."Grp", count(*) AS N, max(u.userid) FROM Users u JOIN users v ON u.UserId = v."UserId" GROUP BY u.grp ORDER BY 1'
    dq = plan_sql(sql_sessions("local"), query, {"Users": str(tmp_path / "T" / "*.parquet")}, npartitions=3,
                  options=PlanOptions(single_read_threshold=0, broadcast_threshold=0, partition_bytes=1))
    assert not dq.fallbacks, dq.explain()
    con.execute(f"CREATE VIEW users AS SELECT * FROM read_parquet('{tmp_path}/T/*.parquet')")
    cursor = con.execute(query)
    assert [c for c, _ in dq.output] == [d[0] for d in cursor.description]
    assert [tuple(r.values()) for r in dq.frame.take_all()] == cursor.fetchall()


def test_a_one_partition_reference_plan_and_catalog_names_through_a_lookup(sql_sessions, data):
    sp = sql_sessions("local")
    query = "SELECT g, sum(x) AS s FROM events GROUP BY g ORDER BY g"
    looked_up = []

    def lookup(name):
        looked_up.append(name)
        return [str(data / "t" / "*.parquet")] if name == "shop.events" else None

    reference = plan_sql(sp, query, {"events": "shop.events"}, lookup=lookup, options=PlanOptions(distribute=False))
    assert looked_up == ["shop.events"]
    assert not reference.distributed and "distribute=False" in reference.explain()
    planned = plan_sql(sp, query, {"events": "shop.events"}, lookup=lookup, npartitions=2,
                       options=PlanOptions(single_read_threshold=0, partition_bytes=1))
    assert planned.distributed and not planned.fallbacks
    assert planned.frame.take_all() == reference.frame.take_all()


def test_session_sql_is_the_distributed_planner(sql_sessions):
    data = tpch_dir(0.1)
    sp = sql_sessions("local")
    paths = table_paths(data)
    df = sp.sql("SELECT count(*) AS n, sum(o_totalprice) AS total FROM orders", orders=paths["orders"])
    rows = df.take_all()
    con = duckdb.connect()
    n, total = con.execute(f"SELECT count(*), sum(o_totalprice) FROM read_parquet({paths['orders']!r})").fetchone()
    assert rows == [{"n": n, "total": total}]
    assert df.explain().startswith("== distributed plan")


@pytest.mark.parametrize("q", [3, 7, 13, 18, 21])
def test_the_compiled_plan_has_a_schema_per_node(sql_sessions, q):
    """The compiler's output is pond's logical plan with every node's columns known (an
    exchange has its input's), the last node's being the statement's result."""
    from pond_core.plan.logical import walk
    from tests.tpch_queries import QUERIES

    dq = plan_sql(sql_sessions("local"), QUERIES[q], table_paths(tpch_dir(0.1)), npartitions=4)
    compiled = dq.compiled
    nodes = walk(compiled.plan)
    assert len(nodes) > 5
    missing = [n.label() for n in nodes if n.id not in compiled.schemas]
    assert not missing, missing
    assert [c for c, _ in compiled.schema_of(compiled.plan)] == [c for c, _ in dq.output]
