"""Bad input: a clear message naming what is wrong, and nothing left visible after the failure."""

from __future__ import annotations

import threading

import duckdb
import pytest

import pond_core
from pond_core.errors import (
    PondConfigError,
    PondDataError,
    PondInputError,
    PondSerializationError,
    PondSqlError,
    PondTransientError,
)


def test_missing_path(sp, tmp_path):
    missing = tmp_path / "nope.parquet"
    with pytest.raises(PondInputError, match="nope.parquet"):
        sp.read_parquet(str(missing)).count()


def test_glob_matching_nothing(sp, tmp_path):
    with pytest.raises(PondInputError, match=r"no files match .*\*\.parquet"):
        sp.read_parquet(str(tmp_path / "*.parquet")).count()


def test_corrupt_file(sp, tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet at all, just text" * 10)
    with pytest.raises(PondInputError) as info:
        sp.read_parquet(str(bad)).count()
    message = str(info.value)
    assert "bad.parquet" in message and "partition 0" in message and "stage aggregate_bad" in message


def test_csv_not_matching_its_schema(sp, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("1,abc\nnot-a-number,def\n")
    with pytest.raises(PondInputError) as info:
        sp.read_csv(str(path), schema={"id": "BIGINT", "s": "VARCHAR"}).take_all()
    assert "not-a-number" in str(info.value) and "x.csv" in str(info.value)


def test_unknown_column_names_the_sql(sp):
    df = sp.from_items([{"a": 1}])
    with pytest.raises(PondSqlError) as info:
        sp.partial_sql("SELECT missing_col FROM {0}", df).count()
    message = str(info.value)
    assert "missing_col" in message and "SELECT missing_col FROM {0}" in message
    assert "partition 0" in message


def test_sql_syntax_error_contains_the_sql(sp):
    with pytest.raises(PondSqlError, match="SELEC oops"):
        sp.partial_sql("SELEC oops FROM {0}", sp.from_items([1])).count()


def test_placeholder_beyond_the_inputs(sp):
    a, b = sp.from_items([1]), sp.from_items([2])
    with pytest.raises(PondConfigError, match=r"placeholder \{2\} refers to input 2, but the query has 2 inputs"):
        sp.partial_sql("SELECT * FROM {0}, {1}, {2}", a, b)


@pytest.mark.parametrize("n", [0, -3])
def test_npartitions_below_one(sp, n):
    with pytest.raises(PondConfigError, match=f"npartitions must be an integer >= 1, got {n}"):
        sp.from_items([1]).repartition(n)


def test_joining_inputs_with_different_partition_counts(sp):
    a = sp.from_items([{"k": 1}]).repartition(3, hash_by="k")
    b = sp.from_items([{"k": 1}]).repartition(4, hash_by="k")
    with pytest.raises(PondConfigError, match="same number of partitions .* got 3, 4"):
        sp.partial_sql("SELECT * FROM {0} JOIN {1} USING (k)", a, b)


def test_unknown_keyword_to_init(tmp_path):
    with pytest.raises(PondConfigError, match="unknown setting 'num_cpus'; did you mean num_executors"):
        pond_core.init(data_root=str(tmp_path), num_cpus=4)


def test_partition_key_out_of_range(sp):
    df = sp.from_items([{"p": 0}, {"p": 5}]).repartition(3, by="p")
    with pytest.raises(PondDataError, match="partition key 5 is out of range 0-2"):
        df.count()


def test_unpicklable_function_says_so_and_why(sp):
    lock = threading.Lock()
    with pytest.raises(PondSerializationError, match=r"cannot pickle .* for remote execution: .*lock"):
        sp.from_items([1]).map(lambda r: {"held": lock.locked()})


def test_udf_that_raises_is_a_data_error(sp):
    @pond_core.udf(["BIGINT"], "BIGINT")
    def explode(x):
        raise ValueError("bad value %d" % x)

    with pytest.raises(PondDataError, match="bad value 1"):
        sp.from_items([{"v": 1}]).map("explode(v) AS e", udfs=[explode]).take_all()


def test_python_function_error_names_stage_and_partition(sp):
    def broken(row):
        raise KeyError("no_such_field")

    with pytest.raises(PondDataError) as info:
        sp.from_items([{"v": 1}]).map(broken).count()
    assert "no_such_field" in str(info.value) and "partition 0" in str(info.value) and "broken" in str(info.value)


def test_data_errors_are_not_retried(local_sp, tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()

    def failing(row):
        (calls / f"c{len(list(calls.iterdir()))}").touch()
        raise ValueError("always")

    with pytest.raises(PondDataError):
        local_sp.from_items([{"v": 1}]).map(failing).count()
    assert len(list(calls.iterdir())) == 1


def test_transient_failures_are_retried(sp, tmp_path):
    marker = tmp_path / "failed-once"

    def flaky(row):
        if not marker.exists():
            marker.touch()
            raise PondTransientError("service unavailable")
        return row

    assert sp.from_items([{"v": 1}, {"v": 2}]).map(flaky).count() == 2
    assert marker.exists()


def test_transient_failures_stop_after_max_retries(tmp_path):
    session = pond_core.init(data_root=str(tmp_path / "p"), executor="local", max_retries=1)
    attempts = tmp_path / "attempts"
    attempts.mkdir()

    def always_down(row):
        (attempts / f"a{len(list(attempts.iterdir()))}").touch()
        raise PondTransientError("still down")

    with pytest.raises(PondTransientError, match="still down"):
        session.from_items([{"v": 1}]).map(always_down).count()
    assert len(list(attempts.iterdir())) == 2
    session.shutdown()


def test_failed_write_leaves_nothing_visible(sp, tmp_path):
    out = tmp_path / "never"
    df = sp.from_items([{"p": 0}, {"p": 9}]).repartition(2, by="p")
    with pytest.raises(PondDataError):
        df.write_parquet(str(out))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "pond"] == []


def test_write_to_existing_path_in_error_mode(sp, tmp_path):
    out = tmp_path / "exists"
    out.mkdir()
    duckdb.sql(f"COPY (SELECT 1 AS v) TO '{out}/old.parquet' (FORMAT parquet)")
    with pytest.raises(PondConfigError, match=str(out)):
        sp.from_items([{"v": 2}]).write_parquet(str(out))
    assert sorted(p.name for p in out.iterdir()) == ["old.parquet"]


def test_failed_sink_stage_leaves_no_staging_debris(sp, tmp_path):
    out = tmp_path / "target"

    def fail_on_seven(row):
        if row["v"] == 7:
            raise ValueError("seven is not allowed")
        return row

    with pytest.raises(PondDataError, match="seven is not allowed"):
        sp.from_items([{"v": i} for i in range(10)]).map(fail_on_seven).write_parquet(str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pond"], "no dataset, no hidden staging folder"
