"""The 22 TPC-H queries through `plan_sql`, on both executors with 1, 3 and 8 partitions, equal
to DuckDB's single-process result over the same Parquet (SF0.1; SF1 is marked slow), with no
part of any query run in one partition (0 fallbacks); and through `named_sql` (the orchestrators'
path) and `pond sql` at 8 partitions under strict planning."""

from __future__ import annotations

import pytest

from pond_core.named_sql import named_sql
from pond_core.sqlplan import plan_sql
from tests.sql_compare import assert_same_result, order_columns
from tests.support.sql_tpch import tpch_dir
from tests.tpch_queries import QUERIES, table_paths

PARTITIONS = (1, 3, 8)
EXECUTORS = ("local", pytest.param("ray", marks=pytest.mark.ray))


def _check(sql_sessions, tpch_reference, executor: str, sf: float, q: int, n: int) -> None:
    sp = sql_sessions(executor)
    names, want = tpch_reference.result(sf, QUERIES[q])
    dq = plan_sql(sp, QUERIES[q], table_paths(tpch_dir(sf)), npartitions=n)
    assert dq.distributed, dq.explain()
    assert not dq.fallbacks, dq.explain()
    assert [c for c, _ in dq.output] == names
    rows = dq.frame.take_all()
    got = [tuple(r[c] for c in names) for r in rows] if rows else []
    assert_same_result(got, want, order_columns(QUERIES[q], names), f"Q{q} SF{sf} {executor} n={n}")


@pytest.mark.parametrize("n", PARTITIONS)
@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("q", sorted(QUERIES))
def test_tpch_sf01(sql_sessions, tpch_reference, executor, q, n):
    _check(sql_sessions, tpch_reference, executor, 0.1, q, n)


@pytest.mark.slow
@pytest.mark.parametrize("n", PARTITIONS)
@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("q", sorted(QUERIES))
def test_tpch_sf1(sql_sessions, tpch_reference, executor, q, n):
    _check(sql_sessions, tpch_reference, executor, 1.0, q, n)


@pytest.mark.parametrize("q", sorted(QUERIES))
def test_tpch_sf01_through_named_sql_strict(sql_sessions, tpch_reference, q):
    """strict: a query that would run any part in one partition fails instead (0 fallbacks)."""
    sp = sql_sessions("local")
    names, want = tpch_reference.result(0.1, QUERIES[q])
    rows = named_sql(sp, QUERIES[q], table_paths(tpch_dir(0.1)), npartitions=8, strict=True).take_all()
    got = [tuple(r[c] for c in names) for r in rows] if rows else []
    assert_same_result(got, want, order_columns(QUERIES[q], names), f"Q{q} named_sql n=8")


@pytest.mark.parametrize("q", [1, 5, 9, 18])
def test_tpch_sf01_through_pond_sql_strict(tpch_reference, tmp_path, monkeypatch, q):
    import duckdb
    from click.testing import CliRunner

    from pond_core.cli import pond

    monkeypatch.setenv("POND_DATA_ROOT", str(tmp_path / "root"))
    names, want = tpch_reference.result(0.1, QUERIES[q])
    args = [a for t, p in table_paths(tpch_dir(0.1)).items() for a in ("-i", f"{t}={p}")]
    out = tmp_path / "out"
    result = CliRunner().invoke(pond, ["sql", QUERIES[q], *args, "-n", "8", "--strict", "--executor", "local", "-o", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    got = duckdb.sql(f"SELECT {', '.join(chr(34) + n + chr(34) for n in names)} FROM read_parquet('{out}/*.parquet')").fetchall()
    assert_same_result(got, want, None, f"Q{q} pond sql n=8")
