"""Every construct docs/sql.md lists as run in one partition runs, and equals DuckDB.

PIVOT is the one DuckDB cannot put in a view when its values come from the data; the task then
computes that step into a temporary table (execute/task.py). Each query names the part that runs
in one partition in its plan, and nothing else of the statement is lost."""

from __future__ import annotations

import duckdb
import pytest

from pond_core.sqlplan import Op, PlanOptions, plan_sql
from tests.sql_compare import assert_same_result

FORCE = PlanOptions(single_read_threshold=0, broadcast_threshold=0, partition_bytes=1)

TABLES = {
    "s": "SELECT i AS id, i % 4 AS g, 'c' || (i % 3) AS cat, i * 2 AS v, TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE AS ts FROM range(60) t(i)",
    "q": "SELECT i * 3 AS id, TIMESTAMP '2026-01-01' + INTERVAL (i * 3 + 1) MINUTE AS ts, i AS price FROM range(20) t(i)",
}

# query -> (the output columns it orders by, where it runs in one partition: "whole query", a
# part's label, or None when it is distributed)
CONSTRUCTS: dict[str, tuple[list[int] | None, str | None]] = {
    "PIVOT s ON cat USING sum(v) ORDER BY id": ([0], "whole query"),
    "PIVOT s ON cat USING sum(v) GROUP BY g ORDER BY g": ([0], "whole query"),
    "PIVOT s ON cat IN ('c0', 'c2') USING sum(v) GROUP BY g ORDER BY g": ([0], "whole query"),
    "SELECT * FROM (PIVOT s ON cat USING count(*) GROUP BY g) p ORDER BY g": ([0], "whole query"),
    "WITH p AS (PIVOT s ON g USING sum(v) GROUP BY cat) SELECT * FROM p ORDER BY cat": ([0], "whole query"),
    "UNPIVOT (SELECT id, v, g FROM s) ON v, g INTO NAME col VALUE val ORDER BY id, col": ([0, 1], "whole query"),
    "SELECT g, cat, sum(v) FROM s GROUP BY GROUPING SETS ((g), (cat), ()) ORDER BY g NULLS FIRST, cat NULLS FIRST": ([0, 1], "whole query"),
    "SELECT g, cat, count(*) FROM s GROUP BY ROLLUP (g, cat) ORDER BY 1 NULLS FIRST, 2 NULLS FIRST": ([0, 1], "whole query"),
    "SELECT g, cat, count(*) FROM s GROUP BY CUBE (g, cat) ORDER BY 1 NULLS FIRST, 2 NULLS FIRST": ([0, 1], "whole query"),
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) "
    "SELECT n, (SELECT count(*) FROM s WHERE s.g = r.n % 4) FROM r ORDER BY n": ([0], "whole query"),
    "SELECT s.id, l.x FROM s, LATERAL (SELECT s.v + 1 AS x) l WHERE s.id < 10 ORDER BY s.id": ([0], "whole query"),
    "SELECT DISTINCT ON (g) g, id, v FROM s ORDER BY g, id DESC": ([0, 1], "whole query"),
    "WITH first AS (SELECT DISTINCT ON (g) g, id FROM s ORDER BY g, id) SELECT f.g, count(*) FROM first f JOIN s ON s.g = f.g "
    "GROUP BY f.g ORDER BY f.g": ([0], "CTE first"),
    "SELECT r.range AS n, s.v FROM range(5) r JOIN s ON s.id = r.range ORDER BY n": ([0], "whole query"),
    "SELECT x, y FROM (VALUES (1, 'a'), (2, 'b')) t(x, y) ORDER BY x": ([0], "whole query"),
    "SELECT s.id, q.price FROM s ASOF JOIN q ON s.ts >= q.ts ORDER BY s.id": ([0], "whole query"),
    "SELECT s.id, q.id AS qid FROM s POSITIONAL JOIN q ORDER BY s.id": ([0], "whole query"),
    "SELECT id, sum(v) OVER w AS rs FROM s WINDOW w AS (PARTITION BY g ORDER BY id) ORDER BY id": ([0], "whole query"),
    "SELECT id, g FROM s WHERE id < 3 UNION BY NAME SELECT g, id FROM s WHERE id > 57 ORDER BY id": ([0], "whole query"),
    "SELECT g, count(*) FROM s GROUP BY g HAVING count(*) > (SELECT count(*) FROM q WHERE q.price > s.g) ORDER BY g": ([0], "whole query"),
    "SELECT id FROM s ORDER BY id LIMIT (SELECT 3)": ([0], "whole query"),
    # distributed since docs/sql.md first listed it: a correlated subquery in a JOIN condition
    "SELECT s.id, q.price FROM s JOIN q ON q.id = s.id AND q.price < (SELECT max(v) FROM s s2 WHERE s2.g = s.g) ORDER BY 1": ([0], None),
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
    reference = duckdb.connect()  # over the same files: POSITIONAL JOIN depends on their row order
    for name, path in paths.items():
        reference.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
    return reference, paths


@pytest.mark.parametrize("query", list(CONSTRUCTS))
def test_a_construct_runs_and_equals_duckdb(sql_sessions, tables, query):
    con, paths = tables
    order, single = CONSTRUCTS[query]
    dq = plan_sql(sql_sessions("local"), query, paths, npartitions=3, options=FORCE)
    rows = dq.frame.take_all()
    cursor = con.execute(query)
    want = cursor.fetchall()
    names = [d[0] for d in cursor.description]
    assert [list(r) for r in rows[:1]] == [names][: len(rows[:1])]
    got = [tuple(r[c] for c in names) for r in rows]
    assert_same_result(got, want, order, query)
    assert [f.where for f in dq.fallbacks] == ([single] if single else []), dq.explain()
    if single:  # the plan names the part that runs in one partition, and why
        assert any(n.op is Op.SINGLE_PARTITION for n in dq.root.walk()), dq.explain()
        assert "runs in one partition" in dq.frame.explain() or single != "whole query"


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


def test_a_fallback_is_named_in_explain_the_log_and_the_stage(sql_sessions, tables, caplog):
    """A part run in one partition is a decision the user sees: explain(), a warning on the
    `pond.sql` logger, and a comment heading the stage's SQL (its description in plans, its
    lineage record in the catalog)."""
    import logging

    from pond_core.plan.compile import compile_plan

    _, paths = tables
    query = "SELECT g, cat, count(*) AS n FROM s GROUP BY ROLLUP (g, cat)"
    with caplog.at_level(logging.WARNING, logger="pond.sql"):
        dq = plan_sql(sql_sessions("local"), query, paths, npartitions=3, options=FORCE)
    assert "whole query: GROUPING SETS / ROLLUP / CUBE" in dq.explain()
    assert "pond sql: whole query runs in one partition: GROUPING SETS / ROLLUP / CUBE" in caplog.text
    (stage,) = [s for s in compile_plan(dq.frame._node).stages if any("GROUP BY ROLLUP" in q for q in s.sql)]
    assert stage.sql[-1].startswith("/* pond: whole query runs in one partition: GROUPING SETS / ROLLUP / CUBE */")
    assert "runs in one partition" in stage.description
    assert stage.name == "whole_query_in_one_partition"
    with caplog.at_level(logging.INFO, logger="pond.stage"):
        dq.frame.recompute().take_all()
    assert "pond stage whole_query_in_one_partition starts: " in caplog.text  # the stage log names it


def test_the_sql_strict_setting_makes_a_fallback_an_error(tables, tmp_path):
    """`init(sql_strict=True)` (POND_SQL_STRICT, the Airflow connection's and the Prefect block's
    field): a part that would run in one partition is an error naming it; without it, it runs."""
    import pond_core
    from pond_core.errors import PondSqlError

    _, paths = tables
    query = "SELECT g, cat, count(*) AS n FROM s GROUP BY ROLLUP (g, cat)"
    strict = pond_core.init(data_root=str(tmp_path / "strict"), sql_strict=True)
    with pytest.raises(PondSqlError, match=r"(?s)strict planning: 1 part.*GROUPING SETS / ROLLUP / CUBE"):
        strict.sql(query, **paths)
    lenient = pond_core.init(data_root=str(tmp_path / "lenient"))
    assert lenient.sql(query, **paths).count() > 0
    strict.shutdown()
    lenient.shutdown()
