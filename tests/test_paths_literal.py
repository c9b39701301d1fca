"""Paths are data, not patterns (docs/storage.md "Paths"): a dataset or root whose name holds
`*`, `?` or `[` is written and read back as named, pond never globs its own files, a pattern
still matches when nothing has its literal spelling, and a path too long for its storage fails
with a clear error before any folder is made.

Before: `no files match .../ds[x]` on reading back what pond wrote; `[` in data_root broke
from_arrow; DuckDB's readers globbed `ds[x]/f.parquet` into `dsx/f.parquet`; a 5,000-character
dataset path gave a raw `OSError: [Errno 36]` and left 21 empty folders.
"""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa
import pytest

import pond_core
from pond_core.errors import PondConfigError, PondInputError

NAMES = ["ds[x]", "a*b", "q?", "lit[[]eral]"]


@pytest.fixture
def sp(tmp_path):
    session = pond_core.init(data_root=str(tmp_path / "pond[1]"), executor="local")  # `[` in data_root too
    yield session
    session.shutdown()


def table(n: int, offset: int = 0) -> pa.Table:
    return pa.table({"p": [i % 2 for i in range(n)], "x": list(range(offset, offset + n))})


@pytest.mark.parametrize("name", NAMES)
def test_a_dataset_named_with_glob_characters_reads_back_as_named(sp, tmp_path, name):
    path = str(tmp_path / name)
    sp.from_arrow(table(5)).write_parquet(path)
    # A sibling that the name, taken as a pattern, would match: it must not be read.
    decoy = str(tmp_path / name.replace("[", "").replace("]", "").replace("*", "").replace("?", ""))
    if decoy != path:
        sp.from_arrow(table(7, 100)).write_parquet(decoy)
    got = sp.read_parquet(path).to_arrow().column("x").to_pylist()
    assert sorted(got) == [0, 1, 2, 3, 4]


def test_a_partitioned_dataset_with_glob_characters_and_a_multi_stage_read(sp, tmp_path):
    path = str(tmp_path / "out*[v1]?")
    sp.from_arrow(table(10)).write_parquet(path, partition_by="p", mode="overwrite_partitions")
    df = sp.read_parquet(path, hive_partitioning=True).repartition(3, hash_by="x")  # exchange files under `pond[1]`
    rows = sp.partial_sql("SELECT p, count(*) AS n, sum(x) AS s FROM {0} GROUP BY p", df).to_arrow().to_pylist()
    totals = {}
    for r in rows:
        n, s = totals.get(r["p"], (0, 0))
        totals[r["p"]] = (n + r["n"], s + r["s"])
    assert totals == {0: (5, 0 + 2 + 4 + 6 + 8), 1: (5, 1 + 3 + 5 + 7 + 9)}


def test_from_arrow_under_a_data_root_with_a_bracket(sp):
    assert sp.from_arrow(table(4)).count() == 4
    assert "[" in sp.job_root


def test_a_pattern_still_matches_when_no_path_has_its_spelling(sp, tmp_path):
    for day in ("1", "2"):
        sp.from_arrow(table(3, int(day) * 10)).write_parquet(str(tmp_path / f"day{day}"))
    assert sp.read_parquet(str(tmp_path / "day[12]" / "*.parquet")).count() == 6
    # The documented escape: bracket a glob character to match it literally inside a pattern.
    sp.from_arrow(table(2)).write_parquet(str(tmp_path / "ds[x]"))
    assert sp.read_parquet(str(tmp_path / "ds[[]x]" / "*.parquet")).count() == 2


def test_duckdb_reads_escaped_paths_as_named(tmp_path):
    """What pond relies on (sql_quote.quote_path): DuckDB 1.5 globs every path it reads, and
    bracketed glob characters match themselves."""
    from pond_core.sql_quote import path_list

    for folder, n in (("ds[x]", 1), ("dsx", 2)):
        os.makedirs(tmp_path / folder)
        duckdb.sql(f"COPY (SELECT range AS x FROM range({n})) TO '{tmp_path / folder / 'f.parquet'}' (FORMAT parquet)")
    literal = str(tmp_path / "ds[x]" / "f.parquet")
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet(['{literal}'])").fetchone() == (2,)  # globbed: the wrong file
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet({path_list([literal])})").fetchone() == (1,)


# -- over-long paths -------------------------------------------------------------------------


def entries(root) -> set[str]:
    """Every folder and file under `root`, but the session's own (its data_root `pond[1]`)."""
    return {os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files if "pond[1]" not in os.path.join(d, n)}


def test_a_dataset_path_too_long_fails_before_any_folder_is_made(sp, tmp_path):
    df = sp.from_arrow(table(3))
    before = entries(tmp_path)
    deep = str(tmp_path / "out") + "/abcdefghij" * 500
    with pytest.raises(PondConfigError, match=r"dataset path .* is too long: .*PATH_MAX"):
        df.write_parquet(deep)
    long_name = str(tmp_path / ("n" * 300))
    with pytest.raises(PondConfigError, match=r"name of 300 bytes.*NAME_MAX"):
        df.write_parquet(long_name)
    # A name that fits, but not with the staging folder's prefix and suffix beside it.
    with pytest.raises(PondConfigError, match="staging folder"):
        df.write_parquet(str(tmp_path / ("m" * 240)))
    assert entries(tmp_path) == before


def test_an_input_path_too_long_is_a_clear_input_error(sp, tmp_path):
    with pytest.raises(PondInputError, match=r"input path .* is too long"):
        sp.read_parquet(str(tmp_path) + "/abcdefghij" * 500).count()


def test_a_data_root_too_long_fails_at_init_and_creates_nothing(tmp_path):
    before = entries(tmp_path)
    with pytest.raises(PondConfigError, match=r"data_root.*NAME_MAX"):
        pond_core.init(data_root=str(tmp_path / ("r" * 300)), executor="local")
    with pytest.raises(PondConfigError, match=r"data_root.*PATH_MAX"):
        pond_core.init(data_root=str(tmp_path) + "/abcdefghij" * 395, executor="local")
    assert entries(tmp_path) == before


# -- S3 --------------------------------------------------------------------------------------


def test_s3_datasets_named_with_glob_characters_read_back(s3_server, s3_options, tmp_path):
    bucket = s3_server.new_bucket()
    sp = pond_core.init(data_root=str(tmp_path / "pond"), executor="local", storage_options=s3_options)
    try:
        for name in ("ds[x]", "a*b"):
            sp.from_arrow(table(5)).write_parquet(f"s3://{bucket}/lake/{name}", partition_by="p", mode="overwrite_partitions")
        sp.from_arrow(table(7, 100)).write_parquet(f"s3://{bucket}/lake/dsx")
        assert sorted(sp.read_parquet(f"s3://{bucket}/lake/ds[x]").to_arrow().column("x").to_pylist()) == [0, 1, 2, 3, 4]
        assert sp.read_parquet(f"s3://{bucket}/lake/a*b", hive_partitioning=True).count() == 5
        with pytest.raises(PondConfigError, match="cannot hold '[?]'"):  # DuckDB's S3 client: a query string
            sp.from_arrow(table(1)).write_parquet(f"s3://{bucket}/lake/q?")
        assert sp.read_parquet(f"s3://{bucket}/lake/ds[[]x]/*/*.parquet").count() == 5  # the escape, on S3
    finally:
        sp.shutdown()


def test_an_s3_key_too_long_fails_before_anything_is_written(s3_server, s3_options, tmp_path):
    bucket = s3_server.new_bucket()
    sp = pond_core.init(data_root=str(tmp_path / "pond"), executor="local", storage_options=s3_options)
    try:
        with pytest.raises(PondConfigError, match="too long for S3"):
            sp.from_arrow(table(2)).write_parquet(f"s3://{bucket}/" + "k" * 1000)
    finally:
        sp.shutdown()
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_sql_over_a_dataset_named_with_glob_characters(sp, tmp_path):
    """Session.sql resolves its inputs and reads their footers to plan (sqlplan/inputs.py), then runs."""
    path = str(tmp_path / "sales[eu]")
    sp.from_arrow(table(6)).write_parquet(path)
    sp.from_arrow(table(9, 100)).write_parquet(str(tmp_path / "salese"))  # what `[eu]` would match
    rows = sp.sql("SELECT p, sum(x) AS s FROM t GROUP BY p ORDER BY p", t=path).to_arrow().to_pylist()
    assert rows == [{"p": 0, "s": 0 + 2 + 4}, {"p": 1, "s": 1 + 3 + 5}]
