"""Transient faults are retried, memory pressure spills, and the executor is chosen as documented."""

from __future__ import annotations

import os

import duckdb

import pond_core
from pond_core.execute.executors import LocalExecutor
from pond_core.execute.ray_executor import RayExecutor


def test_a_ray_worker_that_dies_is_retried(ray_instance, tmp_path):
    session = pond_core.init(data_root=str(tmp_path / "p"), executor="ray")
    marker = tmp_path / "died-once"

    def die_once(row):
        if not marker.exists():
            marker.touch()
            os._exit(1)  # the worker process dies, as on a lost node or an OOM kill
        return row

    df = session.from_items([{"v": i} for i in range(10)]).repartition(2, by_rows=True).map(die_once)
    assert sorted(r["v"] for r in df.take_all()) == list(range(10))
    assert marker.exists()
    session.shutdown()


def test_larger_than_memory_work_spills_instead_of_failing(tmp_path):
    session = pond_core.init(data_root=str(tmp_path / "p"), executor="local", memory_limit="80MB", max_task_memory="80MB", task_threads=1)  # no retry with more memory
    df = session.partial_sql(
        "SELECT i % 3000000 AS k, count(*) AS n, any_value(repeat('x', 40)) AS pad FROM range(6000000) t(i) GROUP BY k"
    )
    assert df.count() == 3_000_000
    session.shutdown()


def test_default_executor_is_local_unless_a_ray_address_is_given(tmp_path):
    local = pond_core.init(data_root=str(tmp_path / "a"))
    assert isinstance(local.executor(), LocalExecutor)
    local.shutdown()
    config = pond_core.init(data_root=str(tmp_path / "b"), ray_address="127.0.0.1:6379").config
    assert config.use_ray and config.executor == "auto"


def test_explicit_ray_executor_reuses_a_running_ray(ray_instance, tmp_path):
    session = pond_core.init(data_root=str(tmp_path / "p"), executor="ray")
    assert isinstance(session.executor(), RayExecutor)
    assert session.from_items([1, 2, 3]).count() == 3
    session.shutdown()
    assert ray_instance.is_initialized(), "a session does not stop a Ray it did not start"


def test_tasks_get_a_memory_limit_threads_and_a_spill_dir(local_sp):
    df = local_sp.partial_sql(
        "SELECT current_setting('memory_limit') AS mem, current_setting('threads') AS threads, current_setting('temp_directory') AS spill"
    )
    row = df.take_all()[0]
    assert row["mem"] not in ("", None) and int(row["threads"]) >= 1
    assert row["spill"].startswith(local_sp.temp_dir)


def test_intermediate_outputs_are_parquet_in_storage(local_sp):
    df = local_sp.from_items([{"k": i} for i in range(20)]).repartition(4, hash_by="k")
    df.compute()
    staging = os.path.join(local_sp.job_root, "staging")
    parquet = [os.path.join(d, f) for d, _, fs in os.walk(staging) for f in fs if f.endswith(".parquet")]
    assert parquet, "stage outputs are files under the job's staging folder"
    total = duckdb.sql(f"SELECT count(*) FROM read_parquet({parquet!r}, hive_partitioning=false)").fetchone()[0]
    assert total == 20
