"""Careless input gets a clear error, before work is wasted (issue 14, point 5)."""

from __future__ import annotations

import logging
import pathlib

import duckdb
import pytest

import pond_core
from pond_core.errors import PondConfigError, PondDataError, PondStorageError
from pond_core.pipeline import compile_pipeline
from pond_core.plan.logical import MAX_PARTITIONS
from pond_core.runner import run_plan
from pond_core.sql_quote import sql_list

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_too_many_partitions_are_refused_naming_the_limit(local_sp):
    frame = local_sp.from_items([{"v": i} for i in range(30)])
    with pytest.raises(PondConfigError, match=f"npartitions=100000 is more than {MAX_PARTITIONS}"):
        frame.repartition(100_000)
    assert frame.repartition(MAX_PARTITIONS).num_partitions == MAX_PARTITIONS  # building it is free


@pytest.mark.parametrize("url", ["garbage-url", "mysql://u@h/db"])
def test_init_refuses_a_catalog_url_that_is_not_a_catalog(tmp_path, url):
    with pytest.raises(PondConfigError, match="catalog URL"):
        pond_core.init(data_root=str(tmp_path / "p"), catalog_url=url)


def test_an_explicit_sqlite_catalog_in_a_missing_directory_is_refused_not_created(tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(PondConfigError, match="does not exist"):
        pond_core.init(data_root=str(tmp_path / "p"), catalog_url=f"sqlite:///{missing}/x.sqlite")
    plan = compile_pipeline(_rows, {}, data_root=str(tmp_path / "p"))
    with pytest.raises(PondConfigError, match="does not exist"):
        run_plan(plan, "r1", settings={"data_root": str(tmp_path / "p"), "catalog_url": f"sqlite:///{missing}/x.sqlite"})
    assert not (tmp_path / "no").exists()
    pond_core.init(data_root=str(tmp_path / "p"), catalog_url=f"sqlite:///{tmp_path}/x.sqlite")  # an existing folder is fine


def _rows(sp):
    return sp.from_items([{"v": 1}])


def test_a_map_returning_a_wrong_type_names_the_column(local_sp):
    frame = local_sp.from_items([{"v": i, "name": "n"} for i in range(4)])
    bad = frame.map(lambda r: {"v": r["v"], "name": "x" if r["v"] % 2 else 7})
    with pytest.raises(PondDataError, match="column 'name' of the rows"):
        bad.take_all()


def test_a_filter_must_answer_true_or_false(local_sp):
    frame = local_sp.from_items([{"v": i} for i in range(4)])
    with pytest.raises(PondDataError, match="must return True or False, got str 'yes'"):
        frame.filter(lambda r: "yes").take_all()
    assert sorted(r["v"] for r in frame.filter(lambda r: r["v"] > 1).take_all()) == [2, 3]


def test_a_null_partition_value_is_written_as_the_hive_default_and_reads_back_as_null(local_sp, tmp_path):
    out = str(tmp_path / "ds")
    local_sp.from_items([{"v": 1, "p": "a"}, {"v": 2, "p": None}]).write_parquet(out, partition_by="p")
    assert (tmp_path / "ds" / "p=__HIVE_DEFAULT_PARTITION__").is_dir()
    files = sorted(str(f) for f in (tmp_path / "ds").rglob("*.parquet"))
    rows = duckdb.sql(f"SELECT v, p FROM read_parquet({sql_list(files)}, hive_partitioning=true) ORDER BY v").fetchall()
    assert rows == [(1, "a"), (2, None)]


def test_psycopg_is_a_default_dependency():
    text = (REPO / "pyproject.toml").read_text()
    dependencies = text.split("dependencies = [", 1)[1].split("]\n", 1)[0]  # the default install's list
    assert '"psycopg[binary]' in dependencies


def test_a_join_of_inputs_hashed_on_a_different_number_of_keys_is_refused(local_sp, caplog):
    a = local_sp.from_items([{"k": 1, "j": 2}]).repartition(4, hash_by=["k", "j"])
    b = local_sp.from_items([{"k": 1}]).repartition(4, hash_by="k")
    with pytest.raises(PondConfigError, match=r"input \{0\} is hashed on \['k', 'j'\] but input \{1\} on \['k'\]"):
        local_sp.partial_sql("SELECT * FROM {0} JOIN {1} USING (k)", a, b)
    c = local_sp.from_items([{"id": 1, "other": 1}]).repartition(4, hash_by="id")
    with caplog.at_level(logging.WARNING, logger="pond"):
        local_sp.partial_sql("SELECT * FROM {0} JOIN {1} ON {0}.k = {1}.other", b, c)
    assert "hashed on ['k'] but input {1} is hashed on ['id']: a per-partition join is right only" in caplog.text
    caplog.clear()
    d = local_sp.from_items([{"k": 2}]).repartition(4, hash_by="k").filter("k > 0")
    local_sp.partial_sql("SELECT * FROM {0} JOIN {1} USING (k)", b, d)  # alike through a filter: silent
    assert "hashed on" not in caplog.text


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM {0} JOIN {1} ON {0}.k = {1}.id",
        "SELECT * FROM {0} a JOIN {1} b ON b.id = a.k AND a.v > 0",
        "SELECT * FROM {0}, {1} WHERE k = id",
        "WITH l AS (SELECT * FROM {0}), o AS (SELECT * FROM {1}) SELECT * FROM l JOIN o ON l.k = o.id",
    ],
)
def test_a_join_on_the_two_hash_keys_is_silent_though_they_are_named_differently(local_sp, caplog, query):
    """TPC-H's shape: lineitem hashed on l_orderkey, orders on o_orderkey, joined on both."""
    b = local_sp.from_items([{"k": 1, "v": 1}]).repartition(4, hash_by="k")
    c = local_sp.from_items([{"id": 1, "other": 1}]).repartition(4, hash_by="id")
    with caplog.at_level(logging.WARNING, logger="pond"):
        local_sp.partial_sql(query, b, c)
    assert "a per-partition join is right only" not in caplog.text


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM {0} JOIN {1} ON {0}.k = {1}.other",  # not the hash key of {1}
        "SELECT * FROM {0} a JOIN {1} b ON a.k = b.id OR a.v = 1",  # an OR proves nothing
        "SELECT * FROM {0} a JOIN {1} b ON a.v = b.id",
    ],
)
def test_a_join_on_other_columns_still_warns(local_sp, caplog, query):
    b = local_sp.from_items([{"k": 1, "v": 1}]).repartition(4, hash_by="k")
    c = local_sp.from_items([{"id": 1, "other": 1}]).repartition(4, hash_by="id")
    with caplog.at_level(logging.WARNING, logger="pond"):
        local_sp.partial_sql(query, b, c)
    assert "a per-partition join is right only" in caplog.text


@pytest.mark.s3
def test_a_missing_sink_bucket_fails_before_any_upstream_stage_runs(s3_server, s3_options, tmp_path):
    ran = tmp_path / "upstream-ran"

    def mark(row):
        ran.touch()
        return row

    def pipeline(sp):
        frame = sp.from_items([{"v": i} for i in range(4)]).map(mark).repartition(2, hash_by="v")
        return frame.sink_parquet("s3://no-such-bucket-pond/ds", mode="overwrite")

    plan = compile_pipeline(pipeline, {}, data_root=str(tmp_path / "p"))
    with pytest.raises(PondStorageError, match="bucket not found: 'no-such-bucket-pond'"):
        run_plan(plan, "r1", settings={"data_root": str(tmp_path / "p"), "executor": "local"}, storage=s3_options, record=False)
    assert not ran.exists()


def test_a_task_reserves_its_limit_plus_the_measured_overhead():
    from pond_core.execute.task_memory import TASK_OVERHEAD_BYTES, reserved_bytes

    limit = 800 << 20
    assert reserved_bytes(limit) == limit * 5 // 2 + TASK_OVERHEAD_BYTES  # the measured bound (tests/test_task_memory.py)
    assert reserved_bytes(0) == 0


def test_a_ray_task_reserves_its_limit_plus_overhead_but_never_more_than_a_node(ray_instance, tmp_path):
    from pond_core.execute.ray_executor import RayExecutor

    session = pond_core.init(data_root=str(tmp_path / "p"), executor="ray", memory_limit="64MB", max_task_memory="64MB")
    executor = session.executor()
    assert isinstance(executor, RayExecutor)
    seen = []
    original = executor._remote.options

    def spy(**options):
        seen.append(options.get("memory"))
        return original(**options)

    executor._remote.options = spy  # type: ignore[method-assign]
    assert session.from_items([{"v": 1}, {"v": 2}]).count() == 2
    session.shutdown()
    limit = 64 * 10**6 >> 20 << 20  # the task's limit, whole MiB
    assert seen and all(m is not None and m > limit for m in seen)
