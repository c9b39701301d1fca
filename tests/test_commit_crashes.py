"""Fault injection at every step of a local commit: a child process running the write is killed
(`os._exit`, as SIGKILL) at crash point k for k = 1, 2, … until a run reaches no more points.
After each kill, a pond reader sees the old or the new dataset, never a mix; the first resume
of the same run id succeeds; and then a plain `read_parquet('ds/**/*.parquet')` sees exactly
the new dataset (no old hard links, no half-swapped partitions, no debris).

Both swap paths run: renameat2(RENAME_EXCHANGE), and the two-rename fallback of filesystems
without it (NFS, Lustre), selected with `swap.ATOMIC_EXCHANGE = False`.
"""

from __future__ import annotations

import multiprocessing
import os

import duckdb
import pytest

from pond_core.io import crashpoints, resolve_paths, swap
from pond_core.pipeline import compile_pipeline
from pond_core.runner import run_plan
from pond_core.sql_quote import quote_str, sql_list

DAYS = 3
ROWS = 30


def _pipeline(sp, value: int, out: str, mode: str):
    rows = sp.partial_sql(
        f"SELECT i AS id, $value AS v, 'd' || (i % {DAYS}) AS dt FROM range({ROWS}) t(i)", sp.from_items([{"z": 1}]), params={"value": value}
    )
    return rows.repartition(DAYS, hash_by="dt").sink_parquet(out, partition_by="dt", mode=mode)


def _run(root: str, out: str, value: int, mode: str, run_id: str) -> None:
    plan = compile_pipeline(_pipeline, {"value": value, "out": out, "mode": mode}, data_root=root)
    run_plan(plan, run_id, settings={"data_root": root, "executor": "local"}, record=False)


def _child(root: str, out: str, mode: str, k: int, atomic: bool) -> None:
    swap.ATOMIC_EXCHANGE = atomic
    crashpoints.arm(k)
    try:
        _run(root, out, 2, mode, "r1")
    except BaseException as exc:  # a failure is not a crash: report it
        os.write(2, f"child failed: {exc!r}\n".encode())
        os._exit(3)
    os._exit(0)  # no atexit handlers of the parent's sessions


def _pond_view(out: str) -> tuple[int, tuple[int, ...]]:
    files = resolve_paths(out, True, None)  # the committed manifest's files
    count, values = duckdb.sql(f"SELECT count(*), list(DISTINCT v ORDER BY v) FROM read_parquet({sql_list(files)})").fetchone()
    return count, tuple(values)


def _plain_glob(out: str) -> tuple[int, tuple[int, ...]]:
    pattern = quote_str(out + "/**/*.parquet")
    count, values = duckdb.sql(f"SELECT count(*), list(DISTINCT v ORDER BY v) FROM read_parquet({pattern})").fetchone()
    return count, tuple(values)


def _expected(mode: str) -> tuple[tuple[int, tuple[int, ...]], tuple[int, tuple[int, ...]]]:
    old = (ROWS, (1,))
    new = (2 * ROWS, (1, 2)) if mode == "append" else (ROWS, (2,))
    return old, new


def _trials(tmp_path, mode: str, atomic: bool) -> tuple[int, int, int]:
    """Kill at every point in turn; returns (points, inconsistent views, failed first resumes)."""
    ctx = multiprocessing.get_context("fork")
    old, new = _expected(mode)
    inconsistent = failed_resumes = 0
    k = 0
    while True:
        k += 1
        base = tmp_path / f"{mode}-{atomic}-{k}"
        root, out = str(base / "pond"), str(base / "ds")
        _run(root, out, 1, "overwrite", "base")
        child = ctx.Process(target=_child, args=(root, out, mode, k, atomic))
        child.start()
        child.join(120)
        assert child.exitcode in (0, 137), f"kill point {k}: the child exited {child.exitcode}"
        if _pond_view(out) not in (old, new):
            inconsistent += 1
        if child.exitcode == 0:
            assert _plain_glob(out) == new
            return k - 1, inconsistent, failed_resumes
        try:
            _run(root, out, 2, mode, "r1")  # the first resume
        except Exception:
            failed_resumes += 1
            continue
        assert _plain_glob(out) == new, f"kill point {k}: debris visible to a plain glob after the resume"
        assert _pond_view(out) == new
        assert not [n for n in os.listdir(base) if n.startswith(".ds.pond-staging")], "staging left after the resume"


@pytest.mark.parametrize("atomic", [True, False], ids=["rename-exchange", "two-renames"])
@pytest.mark.parametrize("mode", ["overwrite_partitions", "overwrite", "append"])
def test_a_kill_at_any_commit_step_resumes_on_the_first_try(tmp_path, mode, atomic):
    if atomic and not swap.exchange_supported(str(tmp_path)):
        pytest.skip("this filesystem has no RENAME_EXCHANGE")
    points, inconsistent, failed = _trials(tmp_path, mode, atomic)
    print(f"{mode} {'exchange' if atomic else 'fallback'}: {points} kill points, {inconsistent} inconsistent, {failed} failed first resumes")
    assert points >= 3  # the enumeration really reached inside the commit
    assert (inconsistent, failed) == (0, 0)


# -- the same on S3 (a moto server on 127.0.0.1), in spawned children --------------------------


def _s3_run(root: str, out: str, value: int, mode: str, run_id: str, options: dict) -> None:
    from pond_core.io import StorageOptions

    plan = compile_pipeline(_pipeline, {"value": value, "out": out, "mode": mode}, data_root=root)
    run_plan(plan, run_id, settings={"data_root": root, "executor": "local"}, storage=StorageOptions.from_dict(options), record=False)


def _s3_child(root: str, out: str, mode: str, k: int, options: dict) -> None:
    crashpoints.arm(k)
    try:
        _s3_run(root, out, 2, mode, "r1", options)
    except BaseException as exc:
        os.write(2, f"child failed: {exc!r}\n".encode())
        os._exit(3)
    os._exit(0)


def _s3_views(out: str, options) -> tuple[tuple[int, tuple[int, ...]], set[str], set[str]]:
    """(what a pond reader sees, the committed files, every visible object under the dataset)."""
    from pond_core.io import configure_duckdb, get_filesystem
    from pond_core.io.fs import visible

    files = resolve_paths(out, True, options)
    con = duckdb.connect()
    configure_duckdb(con, options, files)
    count, values = con.execute(f"SELECT count(*), list(DISTINCT v ORDER BY v) FROM read_parquet({sql_list(files)})").fetchone()
    objects = {f.path for f in get_filesystem(out, options).list_files(out) if visible(f.path, out)}
    return (count, tuple(values)), set(files), objects


@pytest.mark.s3
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["overwrite_partitions", "overwrite", "append"])
def test_a_kill_at_any_s3_commit_step_resumes_on_the_first_try(s3_server, s3_options, tmp_path, mode):
    ctx = multiprocessing.get_context("spawn")  # a fork would inherit the AWS SDK's threads
    old, new = _expected(mode)
    inconsistent = failed = 0
    k = 0
    while True:
        k += 1
        root, out = str(tmp_path / f"{k}" / "pond"), f"s3://{s3_server.new_bucket()}/ds"
        _s3_run(root, out, 1, "overwrite", "base", s3_options.to_dict())
        child = ctx.Process(target=_s3_child, args=(root, out, mode, k, s3_options.to_dict()))
        child.start()
        child.join(120)
        assert child.exitcode in (0, 137), f"kill point {k}: the child exited {child.exitcode}"
        if _s3_views(out, s3_options)[0] not in (old, new):
            inconsistent += 1
        if child.exitcode == 0:
            break
        try:
            _s3_run(root, out, 2, mode, "r1", s3_options.to_dict())
        except Exception:
            failed += 1
            continue
        view, committed, objects = _s3_views(out, s3_options)
        assert view == new
        assert objects == committed, f"kill point {k}: objects beside the committed ones: {sorted(objects - committed)}"
    print(f"s3 {mode}: {k - 1} kill points, {inconsistent} inconsistent, {failed} failed first resumes")
    assert k - 1 >= 3 and (inconsistent, failed) == (0, 0)
