"""One SQL statement over named inputs, as both orchestrator integrations run it."""

from __future__ import annotations

import duckdb
import pytest

from pond_core.errors import PondConfigError
from pond_core.named_sql import check_named_inputs, named_sql


@pytest.fixture
def tables(tmp_path):
    duckdb.sql(f"COPY (SELECT i AS k, i * 10 AS v FROM range(20) t(i)) TO '{tmp_path}/facts.parquet' (FORMAT parquet)")
    duckdb.sql(f"COPY (SELECT i AS k, 'n' || i AS name FROM range(20) t(i)) TO '{tmp_path}/names.parquet' (FORMAT parquet)")
    return {"facts": str(tmp_path / "facts.parquet"), "names": str(tmp_path / "names.parquet")}


@pytest.mark.parametrize("hash_by", [None, "k"])
def test_named_inputs_read_like_tables(local_sp, tables, hash_by):
    df = named_sql(local_sp, "SELECT name, v FROM facts JOIN names USING (k) WHERE v >= 150;", tables, hash_by=hash_by)
    assert sorted(r["v"] for r in df.take_all()) == [150, 160, 170, 180, 190]


def test_bad_named_inputs_fail_before_anything_runs(tables):
    with pytest.raises(PondConfigError, match="bad names: \\['bad-name'\\]"):
        check_named_inputs({"bad-name": "x"})
    with pytest.raises(PondConfigError, match="npartitions must be a positive integer"):
        check_named_inputs(tables, npartitions=0)
    with pytest.raises(PondConfigError, match="hive_partitioning names no input: other"):
        check_named_inputs(tables, hive_partitioning={"other": True})
    check_named_inputs(tables, npartitions=3)  # several inputs, no hash_by: pond plans the exchanges


@pytest.fixture(scope="module")
def join3(tmp_path_factory):
    from tests.join3 import expected, write_tables

    paths = write_tables(tmp_path_factory.mktemp("join3"))
    return paths, expected(paths)


def _stage_partitions(df) -> list[int]:
    from pond_core.plan.compile import compile_plan

    return [s.npartitions for s in compile_plan(df._node).stages]


def test_three_datasets_joined_on_different_keys_are_planned_without_hash_by(local_sp, join3):
    """The orchestrators' SQL path plans exchanges itself: the big input is split over the
    partitions, the small sides broadcast, the result gathered; DuckDB's answer."""
    from tests.join3 import QUERY

    paths, want = join3
    df = named_sql(local_sp, QUERY, paths, npartitions=3)
    got = [tuple(r.values()) for r in df.take_all()]
    assert got == want
    counts = _stage_partitions(df)
    assert len(counts) >= 3 and max(counts) == 3 and 1 in counts, counts


def test_hash_by_partitions_the_inputs_that_hold_the_keys(local_sp, join3):
    """hash_by is an override: inputs holding the column are hashed on it (no DuckDB binder
    error for the others, which pond plans as usual)."""
    from tests.join3 import QUERY

    paths, want = join3
    df = named_sql(local_sp, QUERY, paths, hash_by="o_custkey", npartitions=2)
    assert [tuple(r.values()) for r in df.take_all()] == want
    assert "repartition(2, hash_by=['o_custkey'])" in df.explain()


def test_strict_refuses_a_statement_that_would_run_in_one_partition(local_sp, tables):
    from pond_core.errors import PondSqlError

    query = "SELECT k, sum(v) FROM facts GROUP BY ROLLUP (k)"
    with pytest.raises(PondSqlError, match=r"(?s)strict planning: 1 part\(s\).*whole query runs in one partition: GROUPING SETS"):
        named_sql(local_sp, query, tables, strict=True)
    assert len(named_sql(local_sp, query, tables).take_all()) == 21
