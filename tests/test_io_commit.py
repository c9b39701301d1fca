"""Atomic commits: a writer killed with SIGKILL mid-write, concurrent writers, live readers."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import duckdb
import pytest

from pond_core.errors import PondTransientError
from pond_core.io import SinkSpec, SinkWriter, read_dataset_files, resolve_paths
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


def start_writer(path, job, value, mode, options=None, tasks=4, rows=5000, days=20, partition_by=("dt",)):
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


def run_writer(path, job, value, mode, options=None, tasks=4, rows=5000, days=20, partition_by=("dt",)):
    """The same write as WRITER, in this process (for the writes nobody kills)."""
    sql = f"SELECT range AS id, {value} AS v, 'd' || (range % {days}) AS dt FROM range({rows})"
    write(path, [sql] * tasks, job, options, mode=mode, partition_by=list(partition_by) if partition_by else None)


def committed_by(path, job, options=None):
    """Did `job` reach its commit point (its record is in the dataset's log)?"""
    from pond_core.io import get_filesystem
    from pond_core.io.manifest import load_state

    state = load_state(get_filesystem(path, options), path).state
    return any(key.endswith(f"-{job}") for key in state.covered)


def kill_and_check(path, job, mode, phase, delay, old, new, options=None, **kw):
    proc = start_writer(path, job, new[1][0], mode, options, **kw)
    wait_for(proc, phase)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Before the commit point readers see exactly the old dataset; after it, exactly the new.
    committed = committed_by(path, job, options)
    assert summary(path, options) == (new if committed else old)
    return committed


@pytest.mark.parametrize("mode", ["overwrite", "overwrite_partitions"])
@pytest.mark.parametrize("phase", ["copying", "committing"])
def test_sigkill_mid_write_leaves_old_contents(tmp_path, mode, phase):
    path = str(tmp_path / "ds")
    run_writer(path, "old", 1, "error")
    old = (20000, (1,))
    assert summary(path) == old
    outcomes = [kill_and_check(path, f"killed{i}", mode, phase, delay, old, (20000, (2,)))
                for i, delay in enumerate((0.0, 0.01))]
    assert outcomes[0] is False  # killed right as it began: before the commit point
    # Staging debris is hidden next to the dataset and does not block the next write.
    assert all(n.startswith(".") for n in os.listdir(tmp_path) if n != "ds")
    run_writer(path, "after", 3, mode)
    assert summary(path) == (20000, (3,))


@pytest.mark.s3
def test_sigkill_mid_s3_commit_leaves_old_contents(s3_server, s3_options):
    path = f"s3://{s3_server.new_bucket()}/ds"
    size = dict(tasks=2, rows=2000, days=6)
    run_writer(path, "old", 1, "error", s3_options, **size)
    old, new = (4000, (1,)), (4000, (2,))
    assert kill_and_check(path, "k1", "overwrite", "copying", 0.1, old, new, s3_options, **size) is False
    assert kill_and_check(path, "k2", "overwrite", "committing", 0.0, old, new, s3_options, **size) is False
    kill_and_check(path, "k3", "overwrite_partitions", "committing", 0.1, old, new, s3_options, **size)
    run_writer(path, "after", 3, "overwrite", s3_options, **size)
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
    errors = []

    def one(day, value, job):
        try:
            write(path, [f"SELECT {value} AS v, '{day}' AS dt"], job, options, partition_by="dt", mode="overwrite_partitions")
        except Exception as exc:  # a thread's exception would otherwise only be a warning
            errors.append(exc)

    write(path, ["SELECT 0 AS v, 'base' AS dt"], "base", options, partition_by="dt")
    for r in range(rounds):
        threads = [threading.Thread(target=one, args=(day, r, f"r{r}{day}")) for day in ("x", "y")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    return read(path, options)


def test_concurrent_writers_of_different_partitions_local(tmp_path):
    assert concurrent_partition_writers(str(tmp_path / "ds"), None) == [(0, "base"), (2, "x"), (2, "y")]


@pytest.mark.s3
def test_concurrent_writers_of_different_partitions_s3(s3_server, s3_options):
    path = f"s3://{s3_server.new_bucket()}/ds"
    assert concurrent_partition_writers(path, s3_options) == [(0, "base"), (2, "x"), (2, "y")]


def test_readers_see_old_or_new_never_a_mix(tmp_path):
    path = str(tmp_path / "ds")
    run_writer(path, "v0", 0, "error", tasks=2, rows=2000, days=5)
    seen, errors, unexpected, stop = set(), [], [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.add(summary(path))
            except (duckdb.IOException, FileNotFoundError, PondTransientError) as exc:
                errors.append(exc)  # an old file deleted under an in-flight read: loud, never mixed
            except BaseException as exc:  # anything else fails the test below
                unexpected.append(exc)
                return

    t = threading.Thread(target=reader)
    t.start()
    for v in range(1, 4):
        run_writer(path, f"v{v}", v, "overwrite" if v % 2 else "overwrite_partitions", tasks=2, rows=2000, days=5)
    stop.set()
    t.join()
    assert not unexpected, unexpected
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
