"""Atomic commits: a writer killed with SIGKILL mid-write, concurrent writers, live readers."""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import duckdb
import pytest

from pond_core.io import SinkSpec, SinkWriter, StorageOptions, read_dataset_files, resolve_paths
from pond_core.io.fs import LocalFileSystem
from tests.test_io_sink import read, write

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A writer process: N partitions of `rows` rows each, value `value` in every row. It prints a
# line when the tasks start and when commit starts, so the test can kill it in either phase.
WRITER = r"""
import json, sys, duckdb
from pond_core.io import SinkSpec, SinkWriter, StorageOptions, configure_duckdb
cfg = json.loads(sys.stdin.read())
opts = StorageOptions.from_dict(cfg["options"]) if cfg["options"] else None
w = SinkWriter(SinkSpec(cfg["path"], mode=cfg["mode"], partition_by=cfg["partition_by"]), cfg["job"], opts)
w.prepare()
con = duckdb.connect()
configure_duckdb(con, opts, [cfg["path"]])
print("copying", flush=True)
outs = []
for k in range(cfg["tasks"]):
    sql = f"SELECT range AS id, {cfg['value']} AS v, 'd' || (range % {cfg['days']}) AS dt FROM range({cfg['rows']})"
    outs.append(w.run_copy(con, sql, k))
print("committing", flush=True)
w.commit(outs)
print("done", flush=True)
"""


def start_writer(path, job, value, mode, options=None, tasks=4, rows=20000, days=40, partition_by=("dt",)):
    cfg = dict(path=path, job=job, value=value, mode=mode, options=options.to_dict() if options else None,
               tasks=tasks, rows=rows, days=days, partition_by=list(partition_by) if partition_by else None)
    proc = subprocess.Popen([sys.executable, "-c", WRITER], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdin.write(json.dumps(cfg))
    proc.stdin.close()
    proc.stdin = None  # so communicate() does not flush it again
    return proc


def wait_for(proc, line, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = proc.stdout.readline().strip()
        if got == line:
            return
        if not got and proc.poll() is not None:
            raise AssertionError(f"writer exited early: {proc.stderr.read()}")
    raise AssertionError(f"writer never printed {line!r}")


def summary(path, options=None):
    """(rows, distinct v values) as a pond reader sees the dataset."""
    files = resolve_paths(path, True, options)
    con = duckdb.connect()
    from pond_core.io import configure_duckdb

    configure_duckdb(con, options, files)
    count, values = con.execute(f"SELECT count(*), list(DISTINCT v ORDER BY v) FROM read_parquet({files!r})").fetchone()
    return count, tuple(values)


def run_writer(path, job, value, mode, options=None, **kw):
    proc = start_writer(path, job, value, mode, options, **kw)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err


@pytest.mark.parametrize("mode", ["overwrite", "overwrite_partitions"])
@pytest.mark.parametrize("phase", ["copying", "committing"])
def test_sigkill_mid_write_leaves_old_contents(tmp_path, mode, phase):
    path = str(tmp_path / "ds")
    run_writer(path, "old", 1, "error")
    assert summary(path) == (80000, (1,))
    rng = random.Random(f"{mode}{phase}")
    for attempt in range(2):
        proc = start_writer(path, f"killed{attempt}", 2, mode)
        wait_for(proc, phase)
        time.sleep(rng.uniform(0, 0.05))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # Every file the old manifest lists is there with its old bytes: readers see v=1 only.
        assert summary(path) == (80000, (1,))
        assert not [f for f in resolve_paths(path) if "killed" in f]
    # Staging debris is hidden next to the dataset and does not block the next write.
    assert [n for n in os.listdir(tmp_path) if n != "ds"] and all(n.startswith(".") for n in os.listdir(tmp_path) if n != "ds")
    run_writer(path, "after", 3, mode)
    assert summary(path) == (80000, (3,))


@pytest.mark.s3
def test_sigkill_mid_s3_commit_leaves_old_contents(s3_server, s3_options):
    path = f"s3://{s3_server.new_bucket()}/ds"
    run_writer(path, "old", 1, "error", s3_options, tasks=2, rows=2000, days=6)
    for phase in ("copying", "committing"):
        proc = start_writer(path, f"killed-{phase}", 2, "overwrite", s3_options, tasks=2, rows=2000, days=6)
        wait_for(proc, phase)
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert summary(path, s3_options) == (4000, (1,))
    run_writer(path, "after", 3, "overwrite", s3_options, tasks=2, rows=2000, days=6)
    assert summary(path, s3_options) == (4000, (3,))


@pytest.mark.s3
def test_sigkill_during_first_s3_write_hides_partial_objects(s3_server, s3_options):
    path = f"s3://{s3_server.new_bucket()}/ds"
    proc = start_writer(path, "first", 1, "error", s3_options, tasks=2, rows=2000, days=6)
    wait_for(proc, "committing")
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    files = read_dataset_files(path, s3_options)
    assert files in ([], None) or len(files) == 12  # nothing half-copied is ever listed
    run_writer(path, "first", 1, "error", s3_options, tasks=2, rows=2000, days=6)  # the rerun succeeds
    assert summary(path, s3_options) == (4000, (1,))


def test_interrupted_two_rename_swap_is_finished_by_the_next_writer(tmp_path):
    # What a crash between "rename old away" and "rename new in" leaves on a filesystem
    # without RENAME_EXCHANGE (NFS): no dataset, a complete new tree and an intent in staging.
    path = str(tmp_path / "ds")
    write(path, ["SELECT 1 AS x"], "j1")
    staging = tmp_path / ".ds.pond-staging-j2"
    os.makedirs(staging / "trash")
    write(str(staging / "new"), ["SELECT 2 AS x"], "j2")
    os.rename(path, staging / "trash" / "root")
    (staging / "swap-intent.json").write_text(
        json.dumps({"new": str(staging / "new"), "target": path, "trash": str(staging / "trash" / "root")})
    )
    SinkWriter(SinkSpec(path, mode="append"), "j3").prepare()
    assert read(path) == [(2,)]


def concurrent_partition_writers(path, options, rounds=3):
    """Two writers overwrite different partitions of one dataset at the same moments."""
    def one(day, value, job):
        write(path, [f"SELECT {value} AS v, '{day}' AS dt"], job, options, partition_by="dt", mode="overwrite_partitions")

    write(path, ["SELECT 0 AS v, 'base' AS dt"], "base", options, partition_by="dt")
    for r in range(rounds):
        threads = [threading.Thread(target=one, args=(day, r, f"r{r}{day}")) for day in ("x", "y")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return read(path, options)


def test_concurrent_writers_of_different_partitions_local(tmp_path):
    assert concurrent_partition_writers(str(tmp_path / "ds"), None) == [(0, "base"), (2, "x"), (2, "y")]


@pytest.mark.s3
def test_concurrent_writers_of_different_partitions_s3(s3_server, s3_options):
    path = f"s3://{s3_server.new_bucket()}/ds"
    assert concurrent_partition_writers(path, s3_options) == [(0, "base"), (2, "x"), (2, "y")]


def test_readers_see_old_or_new_never_a_mix(tmp_path):
    path = str(tmp_path / "ds")
    run_writer(path, "v0", 0, "error", tasks=2, rows=2000, days=10)
    seen, errors, stop = set(), [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.add(summary(path))
            except (duckdb.IOException, FileNotFoundError) as exc:
                errors.append(exc)  # an old file deleted under an in-flight read: loud, never mixed

    t = threading.Thread(target=reader)
    t.start()
    for v in range(1, 4):
        run_writer(path, f"v{v}", v, "overwrite" if v % 2 else "overwrite_partitions", tasks=2, rows=2000, days=10)
    stop.set()
    t.join()
    assert seen and all(s[0] == 4000 and len(s[1]) == 1 for s in seen), seen
    assert summary(path) == (4000, (3,))


def test_local_write_leaves_nothing_but_the_dataset(tmp_path):
    path = str(tmp_path / "ds")
    run_writer(path, "a", 1, "error", tasks=2, rows=100, days=3)
    run_writer(path, "b", 2, "overwrite_partitions", tasks=2, rows=100, days=3)
    assert os.listdir(tmp_path) == ["ds"]
    names = [os.path.relpath(f.path, path) for f in LocalFileSystem().list_files(path)]
    assert all(n.startswith(("dt=", "_pond_")) for n in names)
    assert len([n for n in names if n.endswith(".parquet")]) == 6  # old names unlinked after commit
