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
    assert df.num_partitions == (4 if hash_by else 1)
    assert sorted(r["v"] for r in df.take_all()) == [150, 160, 170, 180, 190]


def test_bad_named_inputs_fail_before_anything_runs(tables):
    with pytest.raises(PondConfigError, match="bad names: \\['bad-name'\\]"):
        check_named_inputs({"bad-name": "x"})
    with pytest.raises(ValueError, match="npartitions without hash_by"):
        check_named_inputs(tables, npartitions=3)
    with pytest.raises(PondConfigError, match="hive_partitioning names no input: other"):
        check_named_inputs(tables, hive_partitioning={"other": True})
