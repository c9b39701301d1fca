"""Deferrable stages: a detached pond worker does the work, the trigger polls, a kill cancels it."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import signal
import time

import pytest
from airflow_rig import expected_daily_revenue, read_dataset, run_dag, task_states

from pond_airflow import worker
from pond_airflow.hooks.pond import PondHook
from pond_airflow.triggers.stage import PondStageTrigger

DAY = "2026-11-23"


@pytest.fixture(scope="module")
def shop(airflow_db, rig):
    from _pond_airflow_examples import ensure_shop_day

    ensure_shop_day(DAY, str(rig["examples"] / "shop"))
    return str(rig["examples"] / "shop")


def test_deferred_pipeline_runs_every_stage_in_a_worker(shop, rig):
    run = run_dag("pond_test_deferrable", DAY)
    assert run.state == "success"
    assert set(task_states(run).values()) == {("success", 1)}
    output = str(rig["tmp"] / "outputs" / "deferred_revenue")
    assert read_dataset(output, "segment, country, revenue, orders", f"dt = DATE '{DAY}'") == expected_daily_revenue(shop, DAY)
    from pond_airflow.runs import pond_run_id

    run_root = rig["pond_root"] / "jobs" / pond_run_id({"dag_run": run}, "daily_revenue")
    statuses = [json.loads(open(p).read()) for p in glob.glob(str(run_root / "airflow" / "*.status"))]
    assert sorted(s["result"]["stage"] for s in statuses) == ["customers_by_customer_id", "join_aggregate_customers_orders", "orders_by_customer_id", "write_daily_revenue"]
    assert {s["status"] for s in statuses} == {"success"}


def test_deferred_data_error_fails_without_retry(shop):
    run = run_dag("pond_test_deferrable_bad_data", DAY)
    states = task_states(run)
    assert states["bad_totals.orders_by_customer_id"] == ("success", 1)
    assert states["bad_totals.write_bad_totals"] == ("failed", 1)


def _submit_slow(shop: str, run_id: str, seconds: float, beat_dir: str | None = None, **settings: object) -> dict:
    from pond_core.pipeline import compile_pipeline

    plan = compile_pipeline("pond_test_pipelines:slow_copy", {"source_root": shop, "seconds": seconds, "beat_dir": beat_dir})
    return worker.submit(plan, plan.final, run_id, PondHook(**settings).settings, force=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie has exited: reap it if it is ours
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _trigger(handle: dict, **kwargs) -> PondStageTrigger:
    trigger = PondStageTrigger(state_prefix=handle["state_prefix"], data_root=handle["data_root"], poll_interval=0.2, **kwargs)
    classpath, args = trigger.serialize()
    assert classpath == "pond_airflow.triggers.stage.PondStageTrigger"
    return PondStageTrigger(**args)  # what a triggerer does: rebuild from the serialized form


async def _first_event(trigger: PondStageTrigger, timeout: float) -> dict:
    async def first() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("trigger ended without an event")

    return await asyncio.wait_for(first(), timeout)


def test_killing_the_task_cancels_the_worker(shop):
    handle = _submit_slow(shop, "airflow-kill-test", seconds=120)
    trigger = _trigger(handle)
    state = worker.state_files(handle["data_root"], handle["state_prefix"], {})

    async def scenario() -> None:
        polling = asyncio.create_task(_first_event(trigger, timeout=60))
        deadline = time.monotonic() + 30
        while state.heartbeat() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        assert not polling.done()  # still waiting: the trigger polls without blocking the loop
        polling.cancel()  # what the triggerer does before calling on_kill
        await trigger.on_kill()

    asyncio.run(scenario())
    assert state.status()["status"] == "cancelled"
    deadline = time.monotonic() + 10
    while _alive(handle["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(handle["pid"])
    catalog = PondHook().catalog()
    run = catalog.get_run("airflow-kill-test")
    assert run is None or all(s["status"] != "success" for s in run["stages"])


def test_a_lost_worker_is_a_transient_failure(shop):
    handle = _submit_slow(shop, "airflow-lost-test", seconds=120)
    state = worker.state_files(handle["data_root"], handle["state_prefix"], {})
    deadline = time.monotonic() + 30
    while state.heartbeat() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(handle["pid"], signal.SIGKILL)  # the machine running it went away
    event = asyncio.run(_first_event(_trigger(handle, heartbeat_timeout=3), timeout=30))
    assert event["status"] == "lost" and event["retryable"] is True
    assert not _alive(handle["pid"])


def _running(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


@pytest.mark.ray
def test_killing_the_task_cancels_the_stage_on_ray(shop, ray_instance, tmp_path):
    """The worker is the Ray driver: when it goes, Ray stops the partition task it owned."""
    address = ray_instance.get_runtime_context().gcs_address
    beats = tmp_path / "beats"
    beats.mkdir()
    handle = _submit_slow(shop, "airflow-ray-kill-test", 120, str(beats), ray_address=address, executor="ray")
    deadline = time.monotonic() + 90
    while not list(beats.glob("*.beat")) and time.monotonic() < deadline:
        time.sleep(0.2)
    (beat,) = beats.glob("*.beat")
    ray_worker = int(beat.stem)
    assert ray_worker != handle["pid"] and _running(ray_worker)  # the partition runs in a Ray worker

    asyncio.run(_trigger(handle).on_kill())
    deadline = time.monotonic() + 30
    while (_alive(handle["pid"]) or _running(ray_worker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(handle["pid"])
    assert not _running(ray_worker), "the Ray task kept running after the Airflow task was killed"
