"""Every construct docs/sql.md lists as run in one partition runs, and equals DuckDB.

PIVOT is the one DuckDB cannot put in a view when its values come from the data; the task then
computes that step into a temporary table (execute/task.py). Each query names the part that runs
in one partition in its plan, and nothing else of the statement is lost."""

from __future__ import annotations

import duckdb
import pytest

from pond_core.sqlplan import Op, PlanOptions, plan_sql
from tests.sql_compare import assert_same_result, order_columns

FORCE = PlanOptions(single_read_threshold=0, broadcast_threshold=0, partition_bytes=1)

TABLES = {
    "s": "SELECT i AS id, i % 4 AS g, 'c' || (i % 3) AS cat, i * 2 AS v, TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE AS ts FROM range(60) t(i)",
    "q": "SELECT i * 3 AS id, TIMESTAMP '2026-01-01' + INTERVAL (i * 3 + 1) MINUTE AS ts, i AS price FROM range(20) t(i)",
}

# query -> whether the whole statement runs in one partition (else only a part of it)
CONSTRUCTS = {
    "PIVOT s ON cat USING sum(v) ORDER BY id": True,
    "PIVOT s ON cat USING sum(v) GROUP BY g ORDER BY g": True,
    "PIVOT s ON cat IN ('c0', 'c2') USING sum(v) GROUP BY g ORDER BY g": True,
    "SELECT * FROM (PIVOT s ON cat USING count(*) GROUP BY g) p ORDER BY g": True,
    "WITH p AS (PIVOT s ON g USING sum(v) GROUP BY cat) SELECT * FROM p ORDER BY cat": True,
    "UNPIVOT (SELECT id, v, g FROM s) ON v, g INTO NAME col VALUE val ORDER BY id, col": True,
    "SELECT g, cat, sum(v) FROM s GROUP BY GROUPING SETS ((g), (cat), ()) ORDER BY g NULLS FIRST, cat NULLS FIRST": False,
    "SELECT g, cat, count(*) FROM s GROUP BY ROLLUP (g, cat) ORDER BY 1 NULLS FIRST, 2 NULLS FIRST": False,
    "SELECT g, cat, count(*) FROM s GROUP BY CUBE (g, cat) ORDER BY 1 NULLS FIRST, 2 NULLS FIRST": False,
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT n, (SELECT count(*) FROM s WHERE s.g = r.n % 4) FROM r ORDER BY n": False,
    "SELECT s.id, l.x FROM s, LATERAL (SELECT s.v + 1 AS x) l WHERE s.id < 10 ORDER BY s.id": False,
    "SELECT DISTINCT ON (g) g, id, v FROM s ORDER BY g, id DESC": False,
    "SELECT r.range AS n, s.v FROM range(5) r JOIN s ON s.id = r.range ORDER BY n": False,
    "SELECT x, y FROM (VALUES (1, 'a'), (2, 'b')) t(x, y) ORDER BY x": False,
    "SELECT s.id, q.price FROM s ASOF JOIN q ON s.ts >= q.ts ORDER BY s.id": False,
    "SELECT s.id, q.id AS qid FROM s POSITIONAL JOIN q ORDER BY s.id": False,
    "SELECT id, sum(v) OVER w AS rs FROM s WINDOW w AS (PARTITION BY g ORDER BY id) ORDER BY id": False,
    "SELECT id, g FROM s WHERE id < 3 UNION BY NAME SELECT g, id FROM s WHERE id > 57 ORDER BY id": False,
    "SELECT s.id, q.price FROM s JOIN q ON q.id = s.id AND q.price < (SELECT max(v) FROM s s2 WHERE s2.g = s.g) ORDER BY 1": False,
    "SELECT g, count(*) FROM s GROUP BY g HAVING count(*) > (SELECT count(*) FROM q WHERE q.price > s.g) ORDER BY g": False,
    "SELECT id FROM s ORDER BY id LIMIT (SELECT 3)": False,
}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("sqlconstructs")
    con = duckdb.connect()
    paths = {}
    for name, sql in TABLES.items():
        (root / name).mkdir()
        con.execute(f"CREATE TABLE {name} AS {sql}")
        for i in range(2):
            con.execute(f"COPY (SELECT * FROM {name} WHERE id % 2 = {i}) TO '{root}/{name}/p{i}.parquet' (FORMAT parquet)")
        paths[name] = str(root / name / "*.parquet")
    return con, paths


@pytest.mark.parametrize("query", list(CONSTRUCTS))
def test_a_construct_run_in_one_partition_equals_duckdb(sql_sessions, tables, query):
    con, paths = tables
    dq = plan_sql(sql_sessions("local"), query, paths, npartitions=3, options=FORCE)
    rows = dq.frame.take_all()
    cursor = con.execute(query)
    want = cursor.fetchall()
    names = [d[0] for d in cursor.description]
    assert list(rows[0]) == names if rows else not want
    got = [tuple(r[c] for c in names) for r in rows]
    assert_same_result(got, want, order_columns(query, names), query)
    assert dq.fallbacks, dq.explain()  # the plan names what runs in one partition
    whole = [f for f in dq.fallbacks if f.where == "whole query"]
    assert bool(whole) == CONSTRUCTS[query], dq.explain()
    assert any(n.op is Op.SINGLE_PARTITION for n in dq.root.walk()), dq.explain()


def test_a_pivot_over_the_data_names_its_columns_only_when_it_runs(sql_sessions, tables):
    con, paths = tables
    query = "PIVOT s ON cat USING sum(v) GROUP BY g ORDER BY g"
    dq = plan_sql(sql_sessions("local"), query, paths)
    assert dq.output == ()
    assert "columns that come from the data (PIVOT)" in dq.explain()
    assert "PIVOT takes its columns from the data" in dq.explain()
    got = [tuple(r.values()) for r in dq.frame.take_all()]
    assert_same_result(got, con.execute(query).fetchall(), [0], query)


@pytest.mark.ray
def test_pivot_on_ray(sql_sessions, tables):
    con, paths = tables
    query = "PIVOT s ON cat USING sum(v) GROUP BY g ORDER BY g"
    got = [tuple(r.values()) for r in plan_sql(sql_sessions("ray"), query, paths).frame.take_all()]
    assert_same_result(got, con.execute(query).fetchall(), [0], query)
