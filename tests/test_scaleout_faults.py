"""Faults on a real multi-node Ray cluster (tests/support/ray_cluster.py): a node lost mid-stage,
the driver killed mid-pipeline, a straggler, and tasks killed for lack of memory.

Drivers are `pond run` processes connected to the rig by address, with a PostgreSQL catalog, as
in a deployment. Each fault test compares the output, partition file by partition file, with a
clean run of the same pipeline on the local executor, and checks the retries the catalog
recorded against what the test caused (counted from the markers `tests.scaleout_pipelines.Probe`
leaves where each partition task runs).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import psutil
import pytest

from pond_core.catalog import Catalog
from pond_core.cli.common import parse_params
from pond_core.execute.task_memory import limit_within
from pond_core.pipeline import compile_pipeline
from tests.scaleout_pipelines import SPILL_QUERY, markers, probed, write_source
from tests.support.ray_cluster import LocalRayCluster, memory_cgroups_available, pond_command, pond_driver_env

REF = "tests.scaleout_pipelines:probed"
REPO = Path(__file__).resolve().parents[1]
GiB = 1 << 30

pytestmark = pytest.mark.postgres


@pytest.fixture
def job(tmp_path: Path, postgres_schema_url: str) -> Job:
    source = tmp_path / "source"
    write_source(str(source))
    return Job(tmp_path, source, postgres_schema_url)


class Job:
    """One test's pipeline runs: a faulty run on a cluster, and the clean run it must equal."""

    def __init__(self, root: Path, source: Path, catalog_url: str) -> None:
        self.root, self.source, self.catalog_url = root, source, catalog_url
        self.output, self.marker_dir = root / "out", root / "markers"

    def params(self, **extra: Any) -> dict[str, Any]:
        return {"source": self.source, "output_root": self.output, "marker_dir": self.marker_dir, **extra}

    def argv(self, run_id: str, params: dict[str, Any]) -> list[str]:
        return [*pond_command(), "run", REF, *(f"-p{k}={v}" for k, v in params.items()), "--run-id", run_id, "--json"]

    def start(self, cluster: LocalRayCluster, run_id: str, params: dict[str, Any], **env: str) -> subprocess.Popen:
        return subprocess.Popen(
            self.argv(run_id, params), cwd=REPO, env=pond_driver_env(cluster, self.root / "data", self.catalog_url, **env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )

    def clean_checksums(self, **params: Any) -> list[str]:
        """Run the pipeline once on the local executor, without faults; its files' checksums."""
        out = self.root / "clean-out"
        clean = {**self.params(**params), "output_root": out, "marker_dir": self.root / "clean-markers"}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POND_", "SP_"))}
        env.update(PYTHONPATH=str(REPO), POND_EXECUTOR="local", POND_DATA_ROOT=str(self.root / "clean-data"))
        done = subprocess.run(self.argv("clean", clean), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return file_checksums(out)

    def plan_stage_id(self, **params: Any) -> str:
        """The id of the probed stage, compiled from the parameters as `pond run` reads them."""
        pairs = tuple(f"{k}={v}" for k, v in self.params(**params).items())
        plan = compile_pipeline(REF, parse_params(probed, pairs), data_root=str(self.root / "data"))
        return plan.final.id

    def run(self, run_id: str) -> dict[str, Any]:
        with Catalog(self.catalog_url) as catalog:
            return catalog.get_run(run_id)

    def stage_row(self, run_id: str, stage_id: str) -> dict[str, Any]:
        return next(s for s in self.run(run_id)["stages"] if s["stage_id"] == stage_id)


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, dict[str, Any] | None, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"pond run did not finish in {timeout} s: {err[-3000:]}")
    assert out.strip().startswith("{"), f"stdout is not the JSON report: {out[:2000]}"
    report = json.loads(out)
    return proc.returncode, report, err


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"pond exited ({proc.returncode}) before {what}: {proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.send_signal(signal.SIGUSR1)  # its stacks, to stderr
            time.sleep(1)
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"timed out waiting for {what}: {proc.communicate()[1][-10000:]}")
        time.sleep(0.05)


def file_checksums(root: Path) -> list[str]:
    """A checksum of each visible Parquet file's rows (sorted), as a sorted list."""
    sums = []
    for path in dataset_files(root):
        rows = duckdb.sql(f"SELECT * FROM read_parquet('{path}') ORDER BY ALL").fetchall()
        sums.append(hashlib.sha256(repr(rows).encode()).hexdigest())
    return sorted(sums)


def dataset_files(root: Path) -> list[Path]:
    """The data files a reader of the dataset sees (hidden `_`/`.` entries are pond's own)."""
    return [p for p in sorted(root.rglob("*.parquet")) if not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts)]


def spill_dirs(job: Job, stage_id: str) -> list[Path]:
    """Spill directories of the stage's attempts left on disk (the rig's nodes share one disk)."""
    return sorted((job.root / "data").rglob(f"{stage_id}-p*-a*"))


def stage_of(report: dict[str, Any], stage_id: str) -> dict[str, Any]:
    return next(s for s in report["stages"] if s["stage_id"] == stage_id)


def test_a_node_lost_mid_stage_costs_only_its_tasks(ray_cluster: LocalRayCluster, job: Job) -> None:
    params = job.params(seconds=5)
    clean = job.clean_checksums(seconds=0)
    proc = job.start(ray_cluster, "node-loss", params, POND_SPECULATION="off")

    def busy_node() -> str | None:
        """A node running both the tasks its 2 CPUs hold, each in its Python step (5 s)."""
        done = {m["token"] for m in markers(str(job.marker_dir), "finished")}
        nodes = [m["node"] for m in markers(str(job.marker_dir), "started") if m["token"] not in done]
        return next((n for n in nodes if nodes.count(n) == 2), None)

    try:
        wait_for(lambda: busy_node() is not None, proc, "two tasks of the slow stage on one node")
        (victim,) = [w for w in ray_cluster.workers if w.node_id == busy_node()]  # that node dies
        ray_cluster.kill_worker(victim)
        code, report, err = finish(proc)
    finally:
        ray_cluster.ensure_workers(2)
    assert code == 0, err[-3000:]

    finished = {m["token"] for m in markers(str(job.marker_dir), "finished")}
    started = markers(str(job.marker_dir), "started")
    lost = [m for m in started if m["node"] == victim.node_id and m["token"] not in finished]
    assert len(lost) == 2  # both tasks running on the victim
    assert len(finished) == 8 and len(started) == 8 + len(lost)  # only the lost tasks ran again
    stage_id = job.plan_stage_id(seconds=5)
    row = job.stage_row("node-loss", stage_id)
    # Attempts the driver had already handed to the victim's workers but that had not started
    # (memory admission queues them there) are lost with the node too: each is a node failure
    # and retried once. What must hold: every retry is for the lost node, none is speculative,
    # and (markers above) no task that finished elsewhere ran again.
    assert (row["status"], row["speculative_attempts"]) == ("success", 0)
    assert row["node_failures"] == row["task_retries"] >= len(lost)
    assert stage_of(report, stage_id)["node_failures"] == row["node_failures"]
    shown = subprocess.run([*pond_command(), "runs", "node-loss"], env=pond_driver_env(ray_cluster, job.root / "data", job.catalog_url),
                           capture_output=True, text=True, timeout=60)
    header = [c.strip() for c in next(x for x in shown.stdout.splitlines() if "┃" in x).split("┃")]
    (cells,) = [[c.strip() for c in x.split("│")] for x in shown.stdout.splitlines() if x.split()[:1] == [row["stage_name"]]]
    shown_row = dict(zip(header, cells))
    assert [shown_row[c] for c in ("RETRIES", "NODES LOST", "SPECULATIVE")] == [str(row["task_retries"]), str(row["node_failures"]), "0"], shown.stdout
    assert file_checksums(job.output) == clean  # every partition identical to the clean run's
    assert spill_dirs(job, stage_id) == []  # the lost attempts' too, removed from the nodes left


def test_a_stage_with_fewer_partitions_than_cluster_cpus_fits_on_one_node(ray_cluster: LocalRayCluster, job: Job) -> None:
    # One partition on 2 nodes x 2 CPUs: the task gets a whole node (2 threads), not the
    # cluster's 4 CPUs, which no node could grant (Ray would wait forever).
    code, report, err = finish(job.start(ray_cluster, "one-partition", job.params(partitions=1)), timeout=120)
    assert code == 0, err[-3000:]
    stage_id = job.plan_stage_id(partitions=1)
    (record,) = [json.loads(p.read_text()) for p in (job.root / "data" / "jobs" / "one-partition" / "staging" / stage_id / "_tasks").glob("p*.json")]
    assert record["threads"] == 2 and record["rows"] == 1000


def test_a_driver_killed_mid_pipeline_resumes_with_the_same_run_id(ray_cluster: LocalRayCluster, job: Job, monkeypatch) -> None:
    params = job.params(seconds=2)
    clean = job.clean_checksums(seconds=0)
    stage_id = job.plan_stage_id(seconds=2)
    records = job.root / "data" / "jobs" / "driver-kill" / "staging" / stage_id / "_tasks"
    beats = {"POND_SPECULATION": "off", "POND_HEARTBEAT_SECONDS": "0.5"}  # stale after 1.5 s without a beat
    monkeypatch.setenv("POND_HEARTBEAT_SECONDS", "0.5")  # for this process's catalog reads too
    proc = job.start(ray_cluster, "driver-kill", params, **beats)
    try:
        wait_for(lambda: len(list(records.glob("p*.json"))) >= 3, proc, "three committed partitions")
        alive = job.run("driver-kill")  # the stage has run for more than 2 s: its driver beats
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (alive["stale"], {s["stage_id"]: s["stale"] for s in alive["stages"]}[stage_id]) == (False, False)
    kept = {p: p.stat().st_mtime_ns for p in records.glob("p*.json")}  # (not a record being written at the kill)
    assert 3 <= len(kept) < 8 and dataset_files(job.output) == []  # nothing of the run is visible yet
    started_before = len(markers(str(job.marker_dir), "started"))
    assert wait_until(lambda: job.run("driver-kill")["stale"], timeout=20), "the dead driver's run never went stale"
    dead = job.run("driver-kill")
    assert dead["status"] == "running" and [s["stage_id"] for s in dead["stages"] if s["stale"]] == [stage_id]
    listed = subprocess.run([*pond_command(), "runs"], env=pond_driver_env(ray_cluster, job.root / "data", job.catalog_url, **beats),
                            capture_output=True, text=True, timeout=60)
    assert re.search(r"driver-kill\s.*\sstale\s", listed.stdout) and "pond resume RUN_ID" in listed.stdout, listed.stdout
    time.sleep(2)  # Ray stops the dead driver's tasks; a late marker would be theirs, not the rerun's
    started_before = max(started_before, len(markers(str(job.marker_dir), "started")))

    code, report, err = finish(job.start(ray_cluster, "driver-kill", params, **beats))
    assert code == 0, err[-3000:]
    assert [s["state"] for s in report["stages"]] == ["skipped", "ran"]  # the exchange stage was committed
    assert len(markers(str(job.marker_dir), "started")) - started_before == 8 - len(kept)  # only what was not committed ran
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert file_checksums(job.output) == clean and len(dataset_files(job.output)) == 8
    run = job.run("driver-kill")
    assert (run["status"], run["stale"]) == ("success", False)  # (a run left "running" by a dead driver is joined, not counted again)
    assert {s["stage_id"]: s["attempts"] for s in run["stages"]}[stage_id] == 2


def test_a_straggler_gets_a_speculative_copy_and_the_first_to_commit_wins(ray_cluster: LocalRayCluster, job: Job) -> None:
    params = job.params(straggle_key=7, straggle_seconds=300)
    clean = job.clean_checksums()
    started_at = time.monotonic()
    code, report, err = finish(job.start(ray_cluster, "straggler", params, POND_SPECULATION="on"), timeout=200)
    assert code == 0, err[-3000:]
    assert time.monotonic() - started_at < 120  # far less than the straggler's 300 s

    stage_id = job.plan_stage_id(straggle_key=7, straggle_seconds=300)
    row = job.stage_row("straggler", stage_id)
    assert (row["speculative_attempts"], row["task_retries"], row["node_failures"]) == (1, 0, 0)
    assert stage_of(report, stage_id)["speculative_attempts"] == 1
    started = markers(str(job.marker_dir), "started")
    assert {m["node"] for m in started} == {w.node_id for w in ray_cluster.workers}  # tasks spread over both nodes
    (straggler,) = [m for m in started if m["straggler"]]
    finished = markers(str(job.marker_dir), "finished")
    assert len(finished) == 8 and not any(m["straggler"] for m in finished)
    assert wait_until(lambda: not psutil.pid_exists(straggler["pid"])), "the losing attempt was not stopped"
    # Never both: exactly the clean run's files, and the winner's record names a speculative attempt.
    assert file_checksums(job.output) == clean and len(dataset_files(job.output)) == 8
    records = job.root / "data" / "jobs" / "straggler" / "staging" / stage_id / "_tasks"
    histories = [json.loads(p.read_text())["history"] for p in records.iterdir()]
    (raced,) = [h for h in histories if len(h) == 2]
    assert [(h["speculative"], h.get("outcome")) for h in raced] == [(False, "cancelled"), (True, "committed")]
    # The copy ran away from the node the straggler said it runs on.
    (copy,) = [m for m in started if m["keys"] == straggler["keys"] and not m["straggler"]]
    assert raced[1]["avoided_node"] == straggler["node"] != copy["node"] == raced[1]["node"]
    assert not list((records.parent / "_running").glob("*"))  # running records are swept on commit
    assert spill_dirs(job, stage_id) == []  # the killed loser could not remove its own


def test_a_partition_larger_than_its_memory_limit_completes_by_spilling(ray_cluster: LocalRayCluster, job: Job) -> None:
    con = duckdb.connect(config={"memory_limit": "300MiB", "threads": 1, "temp_directory": ""})
    with pytest.raises(duckdb.OutOfMemoryException):  # the partition's work does not fit in its limit...
        con.execute(f"COPY ({SPILL_QUERY}) TO '{job.root / 'unspilled.parquet'}' (FORMAT parquet)")
    con.close()
    argv = [*pond_command(), "run", "tests.scaleout_pipelines:spilling", "--run-id", "spill", "--json"]
    env = pond_driver_env(ray_cluster, job.root / "data", job.catalog_url, POND_MEMORY_LIMIT="300MiB", POND_TASK_THREADS="1")
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]  # ...and completes on the cluster by spilling
    (stage,) = json.loads(done.stdout)["stages"]
    assert (stage["rows"], stage["task_retries"]) == (3_000_000, 0)
    record = json.loads(next((job.root / "data" / "jobs" / "spill" / "staging" / stage["stage_id"] / "_tasks").glob("p*.json")).read_text())
    assert [h["memory"] for h in record["history"]] == [300 << 20]  # one attempt, within its limit


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


# -- memory: a worker node in a 2.5 GiB memory cgroup, so the kernel's OOM killer is real -------

NODE_MEMORY = int(2.5 * GiB)


@pytest.fixture(scope="module")
def small_node_cluster():
    """A head and one worker node (2 CPUs) that has 2.5 GiB, enforced by a memory cgroup."""
    reason = memory_cgroups_available()
    if reason:
        pytest.skip(f"the memory tests need a memory cgroup: {reason}")
    cluster = LocalRayCluster(workers=1, memory=NODE_MEMORY, cgroup_limit=NODE_MEMORY)
    yield cluster
    cluster.shutdown()


def test_a_task_killed_for_memory_is_retried_with_twice_the_memory(small_node_cluster: LocalRayCluster, job: Job) -> None:
    # Two partitions of 1.4 GiB each start together on the 2.5 GiB node (each task's default
    # limit, 384 MiB, reserves 1 GiB: execute/task_memory.py), but hold 1.4 GiB outside DuckDB:
    # one is OOM-killed; its retry reserves twice as much, so it runs alone, and it fits.
    params = job.params(partitions=2, hog_mb=1400)
    clean = job.clean_checksums(partitions=2)
    group = small_node_cluster.cgroup(small_node_cluster.workers[0])
    kills_before = group.oom_kills()
    code, report, err = finish(job.start(small_node_cluster, "oom-retry", params))
    assert code == 0, err[-3000:]
    assert group.oom_kills() > kills_before  # the kernel's OOM killer did it

    stage_id = job.plan_stage_id(partitions=2, hog_mb=1400)
    records = job.root / "data" / "jobs" / "oom-retry" / "staging" / stage_id / "_tasks"
    histories = [json.loads(p.read_text())["history"] for p in sorted(records.iterdir())]
    killed = [h for history in histories for h in history if "error" in h]
    assert killed and all("worker process died" in h["error"] or "memory monitor" in h["error"] for h in killed)
    first = limit_within(int(0.8 * NODE_MEMORY) // 2)  # two tasks at once share 80% of the node
    assert first == 384 << 20
    for history in histories:  # every retry had twice the memory of the attempt before
        assert [h["memory"] for h in history] == [first * 2**i for i in range(len(history))]
        assert history[-1]["outcome"] == "committed"
    row = job.stage_row("oom-retry", stage_id)
    assert (row["status"], row["task_retries"], row["node_failures"]) == ("success", len(killed), 0)
    assert file_checksums(job.output) == clean
    assert spill_dirs(job, stage_id) == []


def test_a_task_out_of_memory_at_the_bound_fails_naming_stage_and_partition(small_node_cluster: LocalRayCluster, job: Job) -> None:
    params = job.params(partitions=2, hog_mb=3000, hog_key=0)  # more than the whole node has
    code, report, err = finish(job.start(small_node_cluster, "oom-bound", params))
    assert code == 1
    pattern = (
        r"stage \S+ partition \d ran out of memory on every attempt \(4 attempts with 384\.0 MiB, 768\.0 MiB, 1\.5 GiB, "
        r"2\.5 GiB\); 2\.5 GiB is the most a task may have"
    )
    assert re.search(pattern, err), err[-3000:]
    assert dataset_files(job.output) == []  # nothing half-written is visible
    stage_id = job.plan_stage_id(partitions=2, hog_mb=3000, hog_key=0)
    row = job.stage_row("oom-bound", stage_id)
    assert row["status"] == "failed" and re.search(pattern, row["error"])
    assert (row["task_retries"], row["node_failures"]) == (3, 0)  # with 768 MiB, 1.5 GiB, then 2.5 GiB
    assert spill_dirs(job, stage_id) == []  # a failed stage removes its killed attempts' too
