"""Warm Ray workers (execute/ray_workers.py) on the multi-node rig: drivers started one after
another, as Airflow stage tasks are, run on the same worker processes; nothing of one driver's
tasks is visible to the next; a different pond environment never shares them; idle ones exit.

Each driver is a `pond run` process connected by address (where warm workers are the default).
Worker processes are named by the pid each task's Probe marker records.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import duckdb
import psutil

from tests.scaleout_pipelines import markers
from tests.support.ray_cluster import LocalRayCluster, pond_command, pond_driver_env

REF = "tests.scaleout_pipelines:worker_state"
REPO = Path(__file__).resolve().parents[1]


def drive(cluster: LocalRayCluster, root: Path, name: str, *, with_udf: bool = False, **env: str) -> tuple[set[int], list[tuple]]:
    """One `pond run` driver of the worker_state pipeline: its tasks' worker pids and output rows."""
    out, marker_dir = root / f"out-{name}", root / f"markers-{name}"
    argv = [*pond_command(), "run", REF, f"-poutput_root={out}", f"-pmarker_dir={marker_dir}", f"-pwith_udf={with_udf}", "--run-id", name]
    driver_env = pond_driver_env(cluster, root / "data", f"sqlite:///{root}/catalog.db", **env)
    done = subprocess.run(argv, cwd=REPO, env=driver_env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = duckdb.sql(f"SELECT secrets, udfs, memory_limit, threads FROM read_parquet('{out}/**/*.parquet') ORDER BY ALL").fetchall()
    return {m["pid"] for m in markers(str(marker_dir), "started")}, rows


def test_a_new_driver_runs_on_the_workers_an_earlier_driver_started(ray_cluster: LocalRayCluster, tmp_path: Path) -> None:
    first, _ = drive(ray_cluster, tmp_path, "first")
    second, _ = drive(ray_cluster, tmp_path, "second")
    # One worker per CPU of each node (2 nodes x 2 CPUs), and the second driver started none.
    assert 1 <= len(first) <= 4 and second <= first, (first, second)


def test_a_reused_worker_keeps_nothing_of_an_earlier_drivers_tasks(ray_cluster: LocalRayCluster, tmp_path: Path) -> None:
    first, rows = drive(ray_cluster, tmp_path, "udf", with_udf=True, POND_MEMORY_LIMIT="300MiB", POND_TASK_THREADS="2")
    assert {r[2:] for r in rows} == {("300.0 MiB", 2)}
    second, rows = drive(ray_cluster, tmp_path, "after", POND_MEMORY_LIMIT="200MiB", POND_TASK_THREADS="1")
    assert second & first, "the second driver was meant to reuse the first one's workers"
    assert len(rows) == 16 and set(rows) == {(0, 0, "200.0 MiB", 1)}  # no secret, no plus_one, its own limits


def test_a_driver_whose_environment_differs_gets_workers_of_its_own_which_exit_when_idle(
    ray_cluster: LocalRayCluster, tmp_path: Path,
) -> None:
    shared, _ = drive(ray_cluster, tmp_path, "shared")
    extra = tmp_path / "site"  # another import path: code that may differ, so another environment
    extra.mkdir()
    pythonpath = f"{pond_driver_env(ray_cluster, tmp_path, '')['PYTHONPATH']}:{extra}"
    own, _ = drive(ray_cluster, tmp_path, "other-env", PYTHONPATH=pythonpath, POND_WORKER_IDLE_SECONDS="2")
    assert own and not own & shared, (own, shared)
    assert wait_until(lambda: not any(_alive(pid) for pid in own), timeout=30), "idle workers did not exit"
    assert all(_alive(pid) for pid in shared)  # the default environment's workers stay up


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()
