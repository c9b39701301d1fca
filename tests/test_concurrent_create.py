"""Writers of disjoint partitions of a dataset that does not exist yet all commit.

Each race starts WRITERS writers (threads, or processes) on a fresh dataset path with
`mode="overwrite_partitions"`, each staging one partition; a barrier releases their commits at
once, so every writer decides "the dataset is new" before any has published. Before the fix,
all but the first local writer failed with `[Errno 39] Directory not empty: .../commit-.../new
-> .../out`. Every race must end with every writer committed and every partition readable with
its own rows, locally and on S3 (moto).
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

import duckdb
import pytest

from pond_core.io import SinkSpec, SinkWriter, configure_duckdb, resolve_paths

RACES = 20
WRITERS = 4


def rows_of(p: int) -> int:
    return 3 + 5 * p


def write_partition(root: str, p: int, job: str, options: Any, barrier: Any, mode: str = "overwrite_partitions") -> None:
    """What a stage writing partition p=`p` does: prepare, COPY into staging, commit."""
    writer = SinkWriter(SinkSpec(root, mode=mode, partition_by="p"), job, options)
    writer.prepare()
    con = duckdb.connect()
    try:
        configure_duckdb(con, options, [root])
        staged = writer.run_copy(con, f"SELECT {p} AS p, range AS x FROM range({rows_of(p)})", 0)
    finally:
        con.close()
    barrier.wait(timeout=60)
    writer.commit([staged])


def check_dataset(root: str, options: Any) -> None:
    con = duckdb.connect()
    try:
        files = resolve_paths(root, True, options)
        configure_duckdb(con, options, files)
        listed = ", ".join(f"'{f}'" for f in files)
        got = con.sql(f"SELECT p, count(*), sum(x) FROM read_parquet([{listed}], hive_partitioning=true) GROUP BY p ORDER BY p").fetchall()
    finally:
        con.close()
    assert got == [(p, rows_of(p), rows_of(p) * (rows_of(p) - 1) // 2) for p in range(WRITERS)], root


def race_threads(roots: list[str], options: Any, mode: str = "overwrite_partitions") -> list[str]:
    failures: list[str] = []
    for r, root in enumerate(roots):
        barrier = threading.Barrier(WRITERS)

        def one(p: int, root: str = root, barrier: threading.Barrier = barrier, r: int = r) -> None:
            try:
                write_partition(root, p, f"race{r}-w{p}", options, barrier)
            except BaseException as exc:
                failures.append(f"race {r} writer {p}: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=one, args=(p,)) for p in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return failures


def process_writer(roots: list[str], p: int, options: Any, barrier: Any, failures: Any) -> None:
    for r, root in enumerate(roots):
        try:
            write_partition(root, p, f"race{r}-w{p}", options, barrier)
        except BaseException as exc:
            failures.put(f"race {r} writer {p}: {type(exc).__name__}: {exc}")
            barrier.abort()
            return


def race_processes(roots: list[str], options: Any) -> list[str]:
    """WRITERS processes, started once, each writing its partition in every race."""
    ctx = multiprocessing.get_context("spawn")
    barrier, failures = ctx.Barrier(WRITERS), ctx.Queue()
    procs = [ctx.Process(target=process_writer, args=(roots, p, options, barrier, failures)) for p in range(WRITERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
        if proc.is_alive():
            proc.kill()
            proc.join()
    out = []
    while not failures.empty():
        out.append(failures.get())
    assert all(proc.exitcode == 0 for proc in procs), [proc.exitcode for proc in procs]
    return out


RACERS: dict[str, Callable[[list[str], Any], list[str]]] = {"threads": race_threads, "processes": race_processes}


@pytest.mark.parametrize("how", sorted(RACERS))
def test_local_writers_of_a_new_dataset_all_commit(tmp_path, how):
    roots = [str(tmp_path / f"out{r}") for r in range(RACES)]
    assert RACERS[how](roots, None) == []
    for root in roots:
        check_dataset(root, None)


@pytest.mark.parametrize("how", sorted(RACERS))
def test_s3_writers_of_a_new_dataset_all_commit(s3_server, s3_options, how):
    bucket = s3_server.new_bucket()
    roots = [f"s3://{bucket}/lake/out{r}" for r in range(RACES)]
    assert RACERS[how](roots, s3_options) == []
    for root in roots:
        check_dataset(root, s3_options)


def test_local_appenders_to_a_new_dataset_all_commit(tmp_path):
    roots = [str(tmp_path / f"out{r}") for r in range(RACES)]
    assert race_threads(roots, None, mode="append") == []
    for root in roots:
        check_dataset(root, None)
