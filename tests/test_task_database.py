"""A worker's reused DuckDB database: reused across tasks, with nothing carried from one task
to the next (settings, UDFs, secrets, views)."""

from __future__ import annotations

import duckdb

from pond_core.execute.task import run_task
from pond_core.execute.task_db import TaskDatabase
from pond_core.execute.task_spec import FilesTarget, Relation, TaskSpec
from pond_core.io.options import StorageOptions
from pond_core.plan.logical import UdfSpec
from pond_core.plan.physical import SqlStep
from pond_core.plan.pyfunc import PyFunc

PROBE = (
    "SELECT (SELECT count(*) FROM duckdb_secrets()) AS secrets, "
    "(SELECT count(*) FROM duckdb_functions() WHERE function_name = 'plus_one') AS udfs, "
    "current_setting('memory_limit') AS memory, current_setting('threads') AS threads, "
    "(SELECT count(*) FROM duckdb_views() WHERE NOT internal AND view_name = 'leftover') AS views"
)


def _spec(tmp_path, name: str, query: str, *, memory: int, threads: int, udfs=(), paths=(), storage=None) -> TaskSpec:
    return TaskSpec(
        run_id="r", stage_id="s", stage_name=name, partition=0, attempt=1,
        relations=(Relation("in0", "SELECT 1 AS x"),),
        steps=(SqlStep("s0", ("in0",), query, tuple(udfs)),),
        result="s0", target=FilesTarget(str(tmp_path / f"{name}.parquet")), threads=threads, memory_bytes=memory,
        spill_dir=str(tmp_path / "spill" / name), storage=storage or StorageOptions(), paths=tuple(paths),
    )


def _read(path) -> list[tuple]:
    return duckdb.connect().execute(f"SELECT * FROM read_parquet('{path}')").fetchall()


def test_one_database_serves_consecutive_tasks(tmp_path):
    db = TaskDatabase()
    for i in range(5):
        run_task(_spec(tmp_path, f"t{i}", "SELECT x + 1 AS y FROM {0}", memory=256 << 20, threads=1), db)
    assert db.opened == 1
    assert _read(tmp_path / "t4.parquet") == [(2,)]


def test_nothing_carries_over_from_one_task_to_the_next(tmp_path):
    db = TaskDatabase()
    plus_one = UdfSpec("plus_one", ("BIGINT",), "BIGINT", PyFunc.wrap(lambda v: v + 1, "udf"))
    secret = StorageOptions(access_key_id="AKIDLEAK", secret_access_key="very-secret", endpoint_url="http://127.0.0.1:1")
    first = _spec(
        tmp_path, "first", "SELECT plus_one(x) AS y FROM {0}", memory=300 << 20, threads=2, udfs=[plus_one],
        paths=["s3://bucket/never-read"], storage=secret,
    )
    run_task(first, db)
    assert _read(tmp_path / "first.parquet") == [(2,)]
    db_probe = TaskDatabase()  # what a fresh database reports, for comparison
    for database, name in ((db, "second"), (db_probe, "fresh")):
        run_task(_spec(tmp_path, name, PROBE.replace("leftover", "s0_gone"), memory=128 << 20, threads=1), database)
    second, fresh = _read(tmp_path / "second.parquet"), _read(tmp_path / "fresh.parquet")
    assert second == fresh
    secrets, udfs, memory, threads, views = second[0]
    assert (secrets, udfs, int(threads), views) == (0, 0, 1, 0)
    assert memory.startswith("128")  # the second task's own limit, not the first's


def test_the_first_tasks_views_are_gone_for_the_second(tmp_path):
    db = TaskDatabase()
    run_task(_spec(tmp_path, "a", "SELECT x FROM {0}", memory=64 << 20, threads=1), db)
    probe = "SELECT count(*) AS n FROM duckdb_views() WHERE NOT internal AND view_name IN ('in0', 's0') AND schema_name <> current_schema()"
    run_task(_spec(tmp_path, "b", probe, memory=64 << 20, threads=1), db)
    assert _read(tmp_path / "b.parquet") == [(0,)]


def test_a_task_that_spilled_or_failed_gets_a_new_database_next(tmp_path):
    db = TaskDatabase()
    big = "SELECT count(*) AS n FROM (SELECT i % 2000000 AS k, count(*) FROM range(4000000) t(i) GROUP BY k)"
    run_task(_spec(tmp_path, "spills", big, memory=64 << 20, threads=1), db)
    run_task(_spec(tmp_path, "after", "SELECT x FROM {0}", memory=64 << 20, threads=1), db)
    assert db.opened == 2
    try:
        run_task(_spec(tmp_path, "bad", "SELECT no_such_column FROM {0}", memory=64 << 20, threads=1), db)
    except Exception:
        pass
    run_task(_spec(tmp_path, "again", "SELECT x FROM {0}", memory=64 << 20, threads=1), db)
    assert db.opened == 3
