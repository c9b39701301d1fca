"""Small tasks batched per warm-worker call (execute/batches.py) on the session's shared Ray.

Every test runs a one-stage plan of tiny row-range partitions on warm workers, with a task hook
that leaves a marker per attempt (`p00005-a1-<pid>`): the hook runs where each task runs, so
the markers say exactly which attempts ran, in which worker process. What is checked: results
exact and tasks really batched; a task failing inside a batch retried alone while its
batch-mates ran once; a worker dying mid-batch costs only a re-run of what it had not
answered; a stop ends the batches at once (their workers killed); a driver killed mid-stage
leaves the tasks its batches committed, which the resumed stage does not run again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import psutil
import pytest

import pond_core
from pond_core.errors import PondInterruptedError, PondTransientError
from pond_core.execute.ray_executor import RayExecutor
from pond_core.execute.results import StageManifest
from pond_core.plan.compile import compile_plan
from pond_core.plan.physical import PhysicalPlan
from pond_core.runner import run_plan

REPO = Path(__file__).resolve().parents[1]
ROWS = 600


@dataclasses.dataclass(frozen=True)
class Mark:
    """Task hook: a marker per attempt; fails attempt 1 of `fail` (transient), kills the worker
    on attempt 1 of `die`, sleeps `sleep` seconds in every task."""

    dir: str
    fail: int = -1
    die: int = -1
    sleep: float = 0.0

    def __call__(self, spec: Any) -> contextlib.AbstractContextManager[None]:
        Path(self.dir).mkdir(parents=True, exist_ok=True)
        Path(self.dir, f"p{spec.partition:05d}-a{spec.attempt}-{os.getpid()}").touch()
        if spec.attempt == 1 and spec.partition == self.fail:
            raise PondTransientError(f"injected failure of partition {spec.partition}")
        if spec.attempt == 1 and spec.partition == self.die:
            os._exit(1)  # the worker process dies mid-batch, as under the kernel's OOM killer
        if self.sleep:
            time.sleep(self.sleep)
        return contextlib.nullcontext()


def attempts_by_partition(marker_dir: Path) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for name in sorted(os.listdir(marker_dir)) if marker_dir.exists() else []:
        part, attempt, _pid = name.split("-")
        out.setdefault(int(part[1:]), []).append(int(attempt[1:]))
    return out


def worker_pids(marker_dir: Path) -> set[int]:
    return {int(name.rsplit("-", 1)[1]) for name in os.listdir(marker_dir)}


def tiny_plan(tmp_path: Path, n: int) -> PhysicalPlan:
    """One stage of `n` row ranges over a small Parquet file: every partition is small."""
    src = tmp_path / "tiny.parquet"
    duckdb.sql(f"COPY (SELECT i AS key, i % 97 AS v FROM range({ROWS}) t(i)) TO '{src}' (FORMAT parquet)")
    session = pond_core.init(data_root=str(tmp_path / "planning"), executor="local")
    df = session.partial_sql("SELECT key, v * 2 AS v2 FROM {0}", session.read_parquet(str(src)).repartition(n, by_rows=True))
    plan = compile_plan(df._node, options=session.compile_options())
    session.shutdown()
    assert len(plan.stages) == 1 and plan.stages[0].npartitions == n
    return plan


def run(plan: PhysicalPlan, root: Path, executor: RayExecutor, run_id: str = "batch", **options: Any) -> StageManifest:
    result = run_plan(plan, run_id, settings={"data_root": str(root), "executor": "ray"}, executor=executor, record=False, **options)
    return result.manifests[plan.final.name]


def rows_of(manifest: StageManifest) -> list[tuple[int, int]]:
    files = [f.path for f in manifest.files]
    return duckdb.sql(f"SELECT key, v2 FROM read_parquet({files!r}) ORDER BY key").fetchall()


EXPECTED = [(i, 2 * (i % 97)) for i in range(ROWS)]


def records(root: Path, run_id: str, stage_id: str) -> dict[int, dict[str, Any]]:
    folder = root / "jobs" / run_id / "staging" / stage_id / "_tasks"
    return {int(p.name[1:6]): json.loads(p.read_text()) for p in folder.glob("p*.json")} if folder.exists() else {}


def test_small_partitions_run_in_batches_with_exact_results_and_hooks_per_task(ray_instance: Any, tmp_path: Path) -> None:
    plan = tiny_plan(tmp_path, 120)
    executor = RayExecutor(warm=True, task_hooks=[Mark(str(tmp_path / "marks"))])
    manifest = run(plan, tmp_path / "root", executor)
    assert rows_of(manifest) == EXPECTED
    assert executor._warm is not None and executor._warm.calls <= 12  # 120 tasks in a few calls, not 120
    assert attempts_by_partition(tmp_path / "marks") == {k: [1] for k in range(120)}  # every task's hook, once
    assert manifest.result.task_retries == 0 and manifest.result.npartitions == 120


def test_a_task_failing_inside_a_batch_is_retried_alone_and_its_batch_mates_run_once(ray_instance: Any, tmp_path: Path) -> None:
    plan = tiny_plan(tmp_path, 60)
    executor = RayExecutor(warm=True, task_hooks=[Mark(str(tmp_path / "marks"), fail=5)])
    manifest = run(plan, tmp_path / "root", executor)
    assert rows_of(manifest) == EXPECTED
    assert attempts_by_partition(tmp_path / "marks") == {k: ([1, 2] if k == 5 else [1]) for k in range(60)}
    record = records(tmp_path / "root", "batch", plan.final.id)[5]
    assert record["retries"] == 1 and record["attempt"] == 2
    assert "injected failure of partition 5" in record["history"][0]["error"]
    assert manifest.result.task_retries == 1


def test_a_worker_dying_mid_batch_reruns_only_what_it_had_not_answered(ray_instance: Any, tmp_path: Path) -> None:
    plan = tiny_plan(tmp_path, 60)
    executor = RayExecutor(warm=True, task_hooks=[Mark(str(tmp_path / "marks"), die=20)])
    manifest = run(plan, tmp_path / "root", executor)
    assert rows_of(manifest) == EXPECTED
    attempts = attempts_by_partition(tmp_path / "marks")
    assert attempts[20] == [1, 2]
    rerun = {k for k, a in attempts.items() if len(a) > 1}
    assert rerun == {20}  # its batch-mates after it had not started: each ran once, as a new attempt
    recs = records(tmp_path / "root", "batch", plan.final.id)
    assert recs[20]["memory_retries"] == 1  # a dead worker reads as the kernel's OOM killer
    interrupted = [k for k, r in recs.items() if any("stopped first" in (h.get("error") or "") for h in r["history"])]
    assert interrupted and all(recs[k]["retries"] == 0 for k in interrupted)  # not counted against them
    assert all(attempts[k] == [recs[k]["attempt"]] for k in interrupted)


def test_a_stop_ends_running_batches_at_once(ray_instance: Any, tmp_path: Path) -> None:
    plan = tiny_plan(tmp_path, 40)
    marks = tmp_path / "marks"
    executor = RayExecutor(warm=True, task_hooks=[Mark(str(marks), sleep=0.5)])  # batches of 5: 2.5 s each
    stop = threading.Event()
    failed: list[BaseException] = []

    def drive() -> None:
        try:
            run(plan, tmp_path / "root", executor, stop=stop)
        except BaseException as exc:
            failed.append(exc)

    driver = threading.Thread(target=drive)
    driver.start()
    deadline = time.monotonic() + 60
    while len(os.listdir(marks) if marks.exists() else []) < 3:
        assert time.monotonic() < deadline and driver.is_alive(), failed
        time.sleep(0.05)
    stop.set()
    driver.join(timeout=30)
    assert not driver.is_alive()
    assert failed and isinstance(failed[0], PondInterruptedError), failed
    ran = set(os.listdir(marks))
    pids = worker_pids(marks)
    assert all(_gone(pid) for pid in pids), "the stopped batches' workers still run"
    time.sleep(1.5)
    assert set(os.listdir(marks)) == ran  # nothing of the stopped batches ran after the stop
    assert len(ran) < 40


def test_a_driver_killed_mid_stage_resumes_without_rerunning_what_its_batches_committed(ray_instance: Any, tmp_path: Path) -> None:
    plan = tiny_plan(tmp_path, 60)
    plan_file, root = tmp_path / "plan.json", tmp_path / "root"
    plan_file.write_text(plan.to_json())
    address = ray_instance.get_runtime_context().gcs_address
    script = (
        "import json, sys\n"
        "from pond_core.execute.ray_executor import RayExecutor\n"
        "from pond_core.plan.physical import PhysicalPlan\n"
        "from pond_core.runner import run_plan\n"
        "from tests.test_ray_batch import Mark\n"
        "plan_file, root, marks, address = sys.argv[1:]\n"
        "plan = PhysicalPlan.from_dict(json.loads(open(plan_file).read()))\n"
        "executor = RayExecutor(address, warm=True, task_hooks=[Mark(marks, sleep=0.15)])\n"
        "run_plan(plan, 'killed', settings={'data_root': root, 'executor': 'ray'}, executor=executor, record=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(plan_file), str(root), str(tmp_path / "first"), address],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(records(root, "killed", plan.final.id)) < 12:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
            assert time.monotonic() < deadline, "the driver committed too few tasks"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    committed = set(records(root, "killed", plan.final.id))
    assert 12 <= len(committed) < 60

    second = tmp_path / "second"
    manifest = run(plan, root, RayExecutor(warm=True, task_hooks=[Mark(str(second))]), run_id="killed")
    assert rows_of(manifest) == EXPECTED
    resumed = set(attempts_by_partition(second))
    assert resumed.isdisjoint(committed)  # what the killed driver's batches committed is kept
    assert resumed | committed == set(range(60))
    first_runs = attempts_by_partition(tmp_path / "first")
    assert all(first_runs[k] == [1] for k in committed)


def _gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


def test_what_is_small_comes_from_the_bytes_each_partition_reads() -> None:
    from pond_core.execute import batches
    from pond_core.execute.inputs import Part
    from pond_core.execute.stage_run import estimated_bytes

    sizes: dict[str, tuple[int, int | None]] = {"a.parquet": (1000, 100), "b.parquet": (5000, None)}
    assert estimated_bytes([Part(("a.parquet",), (("a.parquet", 0, 9),))], sizes) == 100  # a row range: its share
    assert estimated_bytes([Part(("a.parquet", "b.parquet"))], sizes) == 6000  # whole files
    assert estimated_bytes([Part(("b.parquet",), (("b.parquet", 0, 9),))], sizes) is None  # rows unknown
    assert estimated_bytes([Part(("t/part-0.parquet",))], sizes) is None  # a table's file: not listed with sizes
    # Runs of small partitions in batches (order kept), large ones alone; slots x WAVES calls at least.
    small = {0, 1, 2, 3, 5, 6, 7}
    assert batches.groups(list(range(8)), small.__contains__, 1) == [[0, 1], [2, 3], [4], [5, 6], [7]]
    assert batches.groups(list(range(8)), small.__contains__, 8) == [[k] for k in range(8)]
    assert max(map(len, batches.groups(list(range(10_000)), lambda k: True, 2))) == batches.MAX_BATCH


def test_partitions_above_the_small_size_run_one_per_call(ray_instance: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pond_core.execute import batches

    monkeypatch.setattr(batches, "SMALL_TASK_BYTES", 0)  # every partition reads more than this
    plan = tiny_plan(tmp_path, 24)
    executor = RayExecutor(warm=True, task_hooks=[Mark(str(tmp_path / "marks"))])
    assert rows_of(run(plan, tmp_path / "root", executor)) == EXPECTED
    assert executor._warm is not None and executor._warm.calls == 24
