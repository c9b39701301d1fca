"""Hive layouts: detection, typed partition columns, directory pruning and safe values."""

import os
import re

import duckdb
import pytest

from pond_core.errors import PondConfigError, PondDataError, PondInputError
from pond_core.io import (
    SinkSpec,
    SinkWriter,
    detect_hive_partitioning,
    hive_read_options,
    infer_hive_types,
    prune_files,
    resolve_paths,
    validate_partition_value,
)
from tests.test_io_sink import write


def scan(files, opts=""):
    return f"read_parquet({files!r}{opts})"


@pytest.fixture()
def lake(tmp_path):
    """dt (dates) / n (ints) / tag (strings, one NULL, one with an encoded space)."""
    root = str(tmp_path / "lake")
    sql = (
        "SELECT * FROM (VALUES (1, DATE '2024-01-01', 1, 'a b'), (2, DATE '2024-01-01', 2, NULL), "
        "(3, DATE '2024-01-02', 1, 'c')) t(id, dt, n, tag)"
    )
    write(root, [sql], "j1", partition_by=["dt", "n", "tag"])
    return root


def test_detects_columns_and_types(lake):
    files = resolve_paths(lake)
    assert detect_hive_partitioning(files, lake) == ["dt", "n", "tag"]
    assert detect_hive_partitioning(files) == ["dt", "n", "tag"]
    assert infer_hive_types(files, lake) == {"dt": "DATE", "n": "BIGINT", "tag": "VARCHAR"}
    rows = duckdb.sql(f"SELECT id, dt, n, tag FROM {scan(files, hive_read_options(files, lake))} ORDER BY id").fetchall()
    assert [(r[0], str(r[1]), r[2], r[3]) for r in rows] == [(1, "2024-01-01", 1, "a b"), (2, "2024-01-01", 2, None), (3, "2024-01-02", 1, "c")]
    types = dict(duckdb.sql(f"DESCRIBE SELECT * FROM {scan(files, hive_read_options(files, lake))}").fetchall()[i][:2] for i in range(4))
    assert types["dt"] == "DATE" and types["n"] == "BIGINT" and types["tag"] == "VARCHAR"


def test_type_inference_rules():
    files = [f"/r/a={a}/b={b}/c={c}/d={d}/x.parquet" for a, b, c, d in
             [("1.5", "true", "2024-01-01 10:00:00", "007"), ("2", "FALSE", "2024-01-02T11:30", "x")]]
    assert infer_hive_types(files, "/r") == {"a": "DOUBLE", "b": "BOOLEAN", "c": "TIMESTAMP", "d": "VARCHAR"}


def test_no_hive_when_layouts_differ_or_are_absent(tmp_path):
    assert detect_hive_partitioning(["/r/x.parquet", "/r/y.parquet"], "/r") is None
    assert detect_hive_partitioning(["/r/a=1/x.parquet", "/r/b=1/y.parquet"], "/r") is None
    assert detect_hive_partitioning(["/r/a=1/x.parquet", "/r/y.parquet"], "/r") is None
    assert hive_read_options(["/r/x.parquet"], "/r") == ", hive_partitioning=false"
    with pytest.raises(PondInputError, match="hive_partitioning=True but the files under /r"):
        hive_read_options(["/r/x.parquet"], "/r", hive_partitioning=True)
    assert hive_read_options(["/r/a=1/x.parquet"], "/r", hive_partitioning=False) == ", hive_partitioning=false"


def test_filters_on_partition_columns_skip_whole_directories(lake):
    files = resolve_paths(lake)
    # Poison every file of dt=2024-01-02: a query that opened it would fail.
    for f in files:
        if "dt=2024-01-02" in f:
            with open(f, "wb") as fh:
                fh.write(b"not parquet at all")
    kept = prune_files(files, "dt = DATE '2024-01-01' AND n >= 1", lake)
    assert kept and all("dt=2024-01-01" in f for f in kept)
    assert prune_files(files, "tag IS NULL", lake) == [f for f in files if "__HIVE_DEFAULT_PARTITION__" in f]
    # DuckDB itself also prunes hive directories from a filter, given the same options.
    sql = f"SELECT sum(id) FROM {scan(files, hive_read_options(files, lake))} WHERE dt = DATE '2024-01-01'"
    assert duckdb.sql(sql).fetchone()[0] == 3
    with pytest.raises(duckdb.Error):
        duckdb.sql(f"SELECT sum(id) FROM {scan(files, hive_read_options(files, lake))}").fetchall()


@pytest.mark.s3
def test_hive_on_s3(s3_server, s3_options):
    root = f"s3://{s3_server.new_bucket()}/lake"
    write(root, ["SELECT range AS id, 'd' || (range % 3) AS dt FROM range(30)"], "j1", s3_options, partition_by="dt")
    files = resolve_paths(root, True, s3_options)
    assert detect_hive_partitioning(files, root) == ["dt"]
    assert len(prune_files(files, "dt = 'd1'", root)) == 1


@pytest.mark.parametrize("value", ["a/b", "..", "../etc", "x\\y", "", "tab\there", "nl\n"])
def test_validate_partition_value_rejects_escapes(value):
    with pytest.raises(PondDataError, match=r"invalid partition key value for column 'dt'"):
        validate_partition_value(value, "dt")


def test_validate_partition_value_accepts_normal_values():
    for v in ("2024-01-01", "a b", "x=y", "100%", "ünïcode", None, 5, 1.5):
        validate_partition_value(v, "k")


@pytest.mark.parametrize("bad", ["a/b", "..", "../../etc"])
def test_writing_a_bad_partition_value_fails_clearly_and_writes_nothing(tmp_path, bad):
    path = str(tmp_path / "ds")
    writer = SinkWriter(SinkSpec(path, partition_by=["dt"]), "j1")
    writer.prepare()
    con = duckdb.connect()
    with pytest.raises(PondDataError, match=f"cannot write {path}: invalid partition key value for column \"dt\": '{re.escape(bad)}'"):
        writer.run_copy(con, f"SELECT 1 AS id, 'ok' AS dt UNION ALL SELECT 2, '{bad}'", 0)
    writer.abort()
    assert os.listdir(tmp_path) == []


def test_missing_partition_column_is_named(tmp_path):
    writer = SinkWriter(SinkSpec(str(tmp_path / "ds"), partition_by=["region"]), "j1")
    writer.prepare()
    with pytest.raises(PondConfigError, match="partition_by column 'region' is not a column of the data written to .*ds .the data has: \"id\""):
        writer.run_copy(duckdb.connect(), "SELECT 1 AS id", 0)
    writer.abort()
    assert os.listdir(tmp_path) == []
