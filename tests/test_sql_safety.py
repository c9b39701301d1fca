"""Planning never executes a user statement (issue 21 item 2).

A SQL text is exactly one query, checked by DuckDB's parser and sqlglot before anything is read,
bound or run: a second statement, or a statement that is not a query, is a PondSqlError and no
file or database appears. Binding happens in a sealed DuckDB connection, so a table function
reading a path that is not an input is refused while planning. The same holds for partial_sql
text (checked when the DataFrame is built) and for the orchestrators' named_sql."""

from __future__ import annotations

import duckdb
import pytest

from pond_core.errors import PondSqlError
from pond_core.named_sql import named_sql
from pond_core.plan.statement import check_one_query, check_partition_query


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "t.parquet"
    duckdb.sql(f"COPY (SELECT i AS k, i * 10 AS v FROM range(10) t(i)) TO '{path}' (FORMAT parquet)")
    return str(path)


def test_a_copy_after_the_query_writes_nothing(local_sp, table, tmp_path):
    target = tmp_path / "PLANONLY.csv"
    with pytest.raises(PondSqlError, match=r"more than one statement \(SELECT, COPY\).*ran none"):
        local_sp.sql(f"SELECT * FROM t WHERE k<3; COPY (SELECT 42) TO '{target}'", t=table)
    assert not target.exists()


def test_an_attach_after_the_query_creates_no_database(local_sp, table, tmp_path):
    target = tmp_path / "x.db"
    for call in (
        lambda q: local_sp.sql(q, t=table),
        lambda q: local_sp.sql(q, t=table).explain(),
        lambda q: named_sql(local_sp, q, {"t": table}),
    ):
        with pytest.raises(PondSqlError, match=r"more than one statement \(SELECT, ATTACH\)"):
            call(f"SELECT * FROM t WHERE k<3; ATTACH '{target}' AS z")
    assert not target.exists()


@pytest.mark.parametrize(
    "statement",
    ["COPY (SELECT 42) TO '{d}/c.csv'", "ATTACH '{d}/a.db' AS z", "CREATE TABLE x AS SELECT 1", "SET threads = 1",
     "INSTALL spatial", "LOAD spatial", "PRAGMA enable_profiling", "PRAGMA memory_limit = '1GB'", "CALL pragma_version()", "EXPORT DATABASE '{d}/e'", "EXPLAIN SELECT 1"],
)
def test_a_statement_that_is_not_a_query_is_refused(local_sp, table, tmp_path, statement):
    with pytest.raises(PondSqlError, match="is not a query|more than one statement"):
        local_sp.sql(statement.format(d=tmp_path), t=table)
    assert not (tmp_path / "a.db").exists() and not (tmp_path / "c.csv").exists()


def test_queries_of_every_shape_pass_the_check():
    for query in ["SELECT 1;", "WITH a AS (SELECT 1) SELECT * FROM a", "VALUES (1)", "FROM t", "SELECT 1 UNION SELECT 2",
                  "PIVOT t ON a USING sum(b)", "PIVOT t ON a IN (1, 2) USING sum(b)", "UNPIVOT t ON a INTO NAME n VALUE v",
                  "-- a comment\nSELECT 1 ;; "]:
        check_one_query(query)
    with pytest.raises(PondSqlError, match="holds no statement"):
        check_one_query("-- nothing")
    with pytest.raises(PondSqlError, match="more than one statement"):
        check_one_query("PIVOT t ON a USING sum(b); PIVOT t ON a USING sum(b)")
    with pytest.raises(PondSqlError, match="more than one statement"):
        check_one_query("SELECT 1; PIVOT t ON a USING sum(b)")


def test_reading_a_path_that_is_not_an_input_is_refused_while_planning(local_sp, table, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    for reader in ("read_csv", "read_text", "read_parquet"):
        with pytest.raises(PondSqlError, match="not one of its inputs.*give it as an input"):
            local_sp.sql(f"SELECT * FROM t, {reader}('{other}')", t=table)


def test_partial_sql_text_is_one_query_checked_when_the_frame_is_built(local_sp, table, tmp_path):
    target = tmp_path / "PARTIAL.csv"
    df = local_sp.read_parquet(table)
    with pytest.raises(PondSqlError, match=r"partial_sql: the SQL text holds more than one statement \(SELECT, COPY\)"):
        local_sp.partial_sql(f"SELECT * FROM {{0}}; COPY (SELECT 1) TO '{target}'", df)
    with pytest.raises(PondSqlError, match="a COPY statement is not a query"):
        local_sp.partial_sql(f"COPY (SELECT * FROM {{0}}) TO '{target}'", df)
    with pytest.raises(PondSqlError, match="more than one statement"):
        df.filter(f"k < 3; COPY (SELECT 1) TO '{target}'")
    assert not target.exists()
    # one query, including a PIVOT over the data, is fine (and runs: see test_sql_constructs.py)
    check_partition_query("PIVOT {0} ON k USING sum(v)")
    assert local_sp.partial_sql("SELECT count(*) AS n FROM {0} WHERE k < 3", df).take_all() == [{"n": 3}]


def test_the_sealed_planning_connection_touches_nothing_outside_itself(tmp_path, table):
    """Even SQL a planner bug generated cannot write a file, attach a database, read a path or
    undo the seal once the inputs are set up."""
    import duckdb as _duckdb

    from pond_core.plan.sqlcompile import Shadow

    shadow = Shadow()
    try:
        shadow.create_table("t", [("k", "BIGINT")])
        shadow.seal()
        for statement in (f"COPY (SELECT 1) TO '{tmp_path}/c.csv'", f"ATTACH '{tmp_path}/a.db' AS z",
                          f"SELECT * FROM read_parquet('{table}')", "SET enable_external_access = true", "LOAD httpfs"):
            with pytest.raises(_duckdb.Error):
                shadow.con.execute(statement)
        assert shadow.describe("SELECT k + 1 AS j FROM t") == [("j", "BIGINT")]  # binding still works
    finally:
        shadow.close()
    assert not (tmp_path / "c.csv").exists() and not (tmp_path / "a.db").exists()
