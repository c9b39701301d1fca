"""Several processes writing one catalog at once: nothing lost, nothing doubled, no "locked".

Each worker opens the catalog itself (so the first open of a fresh database races too), then
records 50 stages of a shared run, restarts one shared stage and overwrites one hot partition
key after each, and every fifth stage appends to one shared partition and records lineage, all
interleaved with the other workers.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
import traceback

import pytest

from pond_core.catalog import Catalog

WORKERS, STAGES, EVERY = 4, 50, 5


def _worker(url: str, worker: int, barrier, errors) -> None:
    try:
        barrier.wait(timeout=60)
        catalog = Catalog(url)
        catalog.start_run("shared", "concurrency", {"workers": WORKERS}, "fp", "local")
        for j in range(STAGES):
            _one_stage(catalog, f"w{worker}-s{j}", worker, j)
        catalog.close()
    except BaseException:
        errors.put(f"worker {worker}: {traceback.format_exc()}")
        raise


def _one_stage(catalog: Catalog, stage_id: str, worker: int, j: int) -> None:
    catalog.start_stage("shared", stage_id, "stage", 2)
    catalog.start_stage("shared", "hot", "hot", 1)
    catalog.finish_stage(
        "shared",
        stage_id,
        "success",
        rows=j,
        bytes=10 * j,
        files=1,
        duration_s=0.01,
        result={"worker": worker, "j": j},
        error=None,
        task_retries=1,
        node_failures=worker % 2,
    )
    mine = {
        "key": f"w={worker}/j={j}",
        "values": {"w": worker, "j": j},
        "files": 1,
        "rows": j,
        "bytes": j,
    }
    hot = {"key": "hot", "files": 1, "rows": worker, "bytes": 1}
    catalog.record_partitions("/lake/out", [mine, hot], "shared", stage_id)
    if j % EVERY == 0:  # appends and lineage on every EVERY-th stage keep the test short
        log = [{"key": "", "files": 1, "rows": 1, "bytes": 1}]
        catalog.record_partitions("/lake/log", log, "shared", stage_id, mode="append")
        inputs, outputs = [{"uri": "/lake/in", "rows": 10}], [{"uri": "/lake/out", "rows": j}]
        catalog.record_lineage("shared", stage_id, inputs, outputs, "SELECT 1")


def _run_workers(url: str, context: str = "spawn") -> None:
    ctx = multiprocessing.get_context(context)
    barrier, errors = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, i, barrier, errors)) for i in range(WORKERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert failures == [] and [p.exitcode for p in procs] == [0] * WORKERS, "\n".join(failures)


def _check(url: str) -> None:
    with Catalog(url) as catalog:
        run = catalog.get_run("shared")
        assert (run["status"], run["attempts"]) == ("running", 1)  # all four joined one attempt
        stages = {s["stage_id"]: s for s in run["stages"]}
        assert len(stages) == WORKERS * STAGES + 1
        assert stages["hot"]["attempts"] == WORKERS * STAGES  # no lost increment
        mine = [s for sid, s in stages.items() if sid != "hot"]
        assert {s["status"] for s in mine} == {"success"}
        assert sum(s["task_retries"] for s in mine) == WORKERS * STAGES
        assert sum(s["node_failures"] for s in mine) == STAGES * (WORKERS // 2)
        assert sum(s["rows"] for s in mine) == WORKERS * sum(range(STAGES))
        assert catalog.stage_result("shared", "w3-s49") == {"worker": 3, "j": 49}

        out = {p["key"]: p for p in catalog.list_partitions("/lake/out")}
        assert len(out) == WORKERS * STAGES + 1
        assert out["hot"]["commits"] == 1  # every overwrite replaced the previous one
        assert (out["w=2/j=7"]["rows"], out["w=2/j=7"]["values"]) == (7, {"w": 2, "j": 7})
        (log,) = catalog.list_partitions("/lake/log")
        assert (log["commits"], log["rows"], log["files"]) == (WORKERS * STAGES // EVERY,) * 3

        assert len(catalog.run_lineage("shared")) == WORKERS * STAGES // EVERY
        assert len(catalog.lineage("/lake/in")["downstream"]) == WORKERS * STAGES // EVERY
        assert len(catalog.list_datasets()) == 3


def test_four_processes_writing_one_sqlite_file_at_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    _run_workers(url)
    _check(url)
    with sqlite3.connect(tmp_path / "catalog.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


@pytest.mark.postgres
def test_four_processes_writing_one_postgresql_catalog_at_once(postgres_schema_url):
    _run_workers(postgres_schema_url)
    _check(postgres_schema_url)


def test_forked_children_can_keep_using_the_parents_catalog(tmp_path):
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    parent = Catalog(url)
    parent.start_run("forked", "concurrency", {}, None, "local")
    ctx = multiprocessing.get_context("fork")

    def child(worker: int) -> None:
        for j in range(10):
            parent.start_stage("forked", f"c{worker}-{j}", "stage", 1)

    procs = [ctx.Process(target=child, args=(i,)) for i in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(parent.get_run("forked")["stages"]) == 20
    parent.close()


def test_a_write_waits_for_another_writer_instead_of_failing_with_locked(tmp_path):
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    catalog = Catalog(url)
    other = sqlite3.connect(
        tmp_path / "catalog.sqlite", isolation_level=None, check_same_thread=False
    )
    other.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.5, other.execute, args=("COMMIT",))
    release.start()
    started = time.monotonic()
    catalog.start_run("r1", "daily", {}, None, "local")
    assert time.monotonic() - started >= 0.4
    assert catalog.get_run("r1")["status"] == "running"
    release.join()
    other.close()
    catalog.close()


@pytest.mark.postgres
def test_a_postgresql_connection_killed_under_the_catalog_is_replaced(postgres_schema_url):
    import psycopg

    catalog = Catalog(postgres_schema_url)
    catalog.start_run("r1", "daily", {}, None, "local")
    with catalog._tx.engine.connect() as conn:  # the pooled connection the next call reuses
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    url = catalog._tx.engine.url
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database
    ) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    assert catalog.start_stage("r1", "s1", "scan", 1) == 1
    catalog.close()


def test_threads_sharing_one_catalog_object(catalog_db_url):
    catalog = Catalog(catalog_db_url)
    catalog.start_run("r1", "daily", {}, None, "local")
    errors: list[str] = []

    def work(thread: int) -> None:
        try:
            for j in range(25):
                catalog.start_stage("r1", "hot", "hot", 1)
                catalog.record_partitions("/lake/t", [{"key": f"{thread}-{j}"}], "r1", f"s{thread}")
        except Exception:  # reported below: an assertion in a thread would be lost
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert catalog.get_run("r1")["stages"][0]["attempts"] == 200
    assert len(catalog.list_partitions("/lake/t")) == 200
    catalog.close()
