"""Resume: SIGKILL `pond run` while a stage is in flight, run the same run id again, and get
every row exactly once without redoing what was committed (stages, and partitions of the
killed stage).

The stage in flight is held deterministically: its partition 3 waits for a gate file, while
partitions 0-2 commit. The kill happens only once those three are committed and partition 3 is
inside its Python step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from pond_core.catalog import Catalog
from pond_core.pipeline import compile_pipeline
from tests.test_pipeline_defs import PARTS, ROWS_PER_PART, write_parts

REPO = Path(__file__).resolve().parents[1]
POND = str(Path(sys.executable).with_name("pond"))
REF = "tests.test_pipeline_defs:gated_totals"
RUN_ID = "resume-test"
DAY = "2026-11-20"


def pond_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POND_", "SP_"))}
    env.update(PYTHONPATH=str(REPO), POND_NUM_EXECUTORS="4", **extra)
    return env


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"pond exited early with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("the gated stage never reached the kill point")
        time.sleep(0.05)


def calls_per_part(gate: Path) -> dict[int, int]:
    counts = {p: 0 for p in range(PARTS)}
    for name in os.listdir(gate / "calls"):
        counts[int(name.split("-")[0].removeprefix("part"))] += 1
    return counts


def output_rows(out: Path) -> tuple[int, int, int]:
    files = sorted(str(p) for p in out.glob(f"dt={DAY}/*.parquet"))
    if not files:
        return (0, 0, 0)
    return duckdb.sql(f"SELECT count(*), count(DISTINCT id), sum(amount) FROM read_parquet({files!r})").fetchone()


@pytest.mark.parametrize("gate_at", ["middle", "sink"])
def test_sigkill_mid_stage_then_rerun_gives_every_row_once(tmp_path: Path, gate_at: str) -> None:
    src, out, gate, root = tmp_path / "src", tmp_path / "out", tmp_path / "gate", tmp_path / "root"
    total = write_parts(str(src))
    params = {"source": str(src), "output_root": str(out), "gate_dir": str(gate), "ds": DAY, "gate_at": gate_at}
    plan = compile_pipeline(REF, params, data_root=str(root))  # the subprocess compiles the same ids
    first, gated = plan.stages[0], plan.stages[1]
    staging = root / "jobs" / RUN_ID / "staging"
    records = [staging / gated.id / "_tasks" / f"p{k:05d}.json" for k in range(PARTS - 1)]
    argv = [POND, "run", REF, *(f"-p{k}={v}" for k, v in params.items()), "--run-id", RUN_ID,
            "--data-root", str(root), "--executor", "local", "--json"]

    proc = subprocess.Popen(argv, cwd=REPO, env=pond_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: (gate / f"blocked-part{PARTS - 1}").exists() and all(r.exists() for r in records), proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # At the kill: stage 1 committed, the gated stage not; no row of this run is visible.
    assert (staging / first.id / "_manifest.json").exists()
    assert not (staging / gated.id / "_manifest.json").exists()
    assert output_rows(out)[0] == 0
    with Catalog(Catalog.default_url(str(root))) as catalog:
        assert catalog.get_run(RUN_ID)["status"] == "running"
    kept = {p: p.stat().st_mtime_ns for p in [staging / first.id / "_manifest.json", *records]}

    (gate / "open").touch()
    rerun = subprocess.run(argv, cwd=REPO, env=pond_env(), capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)

    assert report["status"] == "success"
    assert [s["state"] for s in report["stages"]] == ["skipped"] + ["ran"] * (len(plan.stages) - 1)
    ids_sum = sum(range(total))
    assert output_rows(out) == (total, total, 2 * ids_sum)
    # Partitions 0-2 of the gated stage ran once (before the kill), partition 3 twice.
    assert calls_per_part(gate) == {**{p: 1 for p in range(PARTS - 1)}, PARTS - 1: 2}
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    with Catalog(Catalog.default_url(str(root))) as catalog:
        run = catalog.get_run(RUN_ID)
    attempts = {s["stage_id"]: s["attempts"] for s in run["stages"]}
    assert run["status"] == "success"
    assert attempts[first.id] == 1 and attempts[gated.id] == 2
    assert sum(s["rows"] for s in run["stages"] if s["stage_id"] == plan.final.id) == total
    assert ROWS_PER_PART * PARTS == total


def test_a_kill_after_the_sink_commit_but_before_the_stage_manifest_resumes(tmp_path: Path) -> None:
    """The one window a mid-stage kill cannot hit: the dataset is published, the stage is not
    recorded. The state is made exactly (the stage's manifest removed after a full run); a rerun
    must finish, keep the dataset as published, and leave no staging next to it."""
    from pond_core.runner import run_plan

    src, out, gate, root = tmp_path / "src", tmp_path / "out", tmp_path / "gate", tmp_path / "root"
    total = write_parts(str(src))
    gate.mkdir()
    (gate / "open").touch()
    params = {"source": str(src), "output_root": str(out), "gate_dir": str(gate), "ds": DAY, "gate_at": "sink"}
    plan = compile_pipeline(REF, params, data_root=str(root))
    run_plan(plan, RUN_ID, settings={"data_root": str(root), "executor": "local"})
    published = sorted(p.name for p in out.glob(f"dt={DAY}/*.parquet"))
    (root / "jobs" / RUN_ID / "staging" / plan.final.id / "_manifest.json").unlink()

    result = run_plan(plan, RUN_ID, settings={"data_root": str(root), "executor": "local"})

    assert result.stages[plan.final.name].rows == total
    assert sorted(p.name for p in out.glob(f"dt={DAY}/*.parquet")) == published
    assert output_rows(out) == (total, total, 2 * sum(range(total)))
    assert sorted(os.listdir(tmp_path)) == ["gate", "out", "root", "src"]  # no staging debris


def test_a_forced_sink_stage_writes_anew_and_a_plain_rerun_does_not(tmp_path: Path) -> None:
    from pond_core.runner import run_plan, run_stage

    src, out, gate, root = tmp_path / "src", tmp_path / "out", tmp_path / "gate", tmp_path / "root"
    total = write_parts(str(src))
    gate.mkdir()
    (gate / "open").touch()
    params = {"source": str(src), "output_root": str(out), "gate_dir": str(gate), "ds": DAY, "gate_at": "sink"}
    plan = compile_pipeline(REF, params, data_root=str(root))
    settings = {"data_root": str(root), "executor": "local"}
    run_plan(plan, RUN_ID, settings=settings)
    first = sorted(p.name for p in out.glob(f"dt={DAY}/*.parquet"))

    run_stage(plan, plan.final.id, RUN_ID, settings=settings)  # committed: nothing happens
    assert sorted(p.name for p in out.glob(f"dt={DAY}/*.parquet")) == first
    run_stage(plan, plan.final.id, RUN_ID, force=True, settings=settings)  # forced: a new write replaces the day
    second = sorted(p.name for p in out.glob(f"dt={DAY}/*.parquet"))
    assert second != first and not set(second) & set(first)
    assert output_rows(out) == (total, total, 2 * sum(range(total)))
