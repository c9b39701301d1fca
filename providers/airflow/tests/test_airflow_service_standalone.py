"""Truly deferrable stages on a real Airflow deployment that has no Ray, against the pond service.

The deployment (service_airflow_rig: api-server, scheduler with the LocalExecutor, dag-processor,
triggerer, all from the client venv, on 127.0.0.1) runs the service-mode test DAGs:

- `pond_service_deferrable` (daily_revenue, every stage deferrable) runs to success with the
  exact rows DuckDB computes; each stage task deferred (its log has the trigger's part) and the
  stage's own log lines, written by the trigger, are in the task's log;
- `pond_service_slow` (one stage sleeping for minutes): while its task instance is deferred no
  process of that task is alive, yet the stage is running on the service; marking the task
  failed through the REST API makes the triggerer call the trigger's on_kill, and the service
  reports the stage cancelled within seconds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from airflow_rig import expected_daily_revenue, read_dataset
from service_airflow_rig import Deployment, deployment
from test_airflow_service import client_python

from pond_core import api

DAY = "2026-11-14"
SLOW_DAY = "2026-11-15"
SLOW_SECONDS = 300.0
STAGES = ("orders_by_customer_id", "customers_by_customer_id", "join_aggregate_customers_orders", "write_daily_revenue")


@pytest.fixture(scope="session")
def service_airflow(pond_service, tmp_path_factory):
    root = tmp_path_factory.mktemp("airflow-service-deployment")
    bin_dir = client_python().parent
    with deployment(root, bin_dir, pond_service.url, pond_service.token, POND_SERVICE_SLOW_SECONDS=str(SLOW_SECONDS)) as dep:
        yield dep


@pytest.fixture(scope="module")
def shop(service_airflow: Deployment) -> Path:
    from pond_core.examples import ensure_shop_day

    root = service_airflow.root / "examples" / "shop"
    for day in (DAY, SLOW_DAY):
        ensure_shop_day(day, str(root))
    return root


def _task_processes(ti_id: str) -> list[str]:
    """Command lines of live processes running the task instance `ti_id` (Airflow titles its
    supervisor `airflow worker -- LocalExecutor: <ti id>` and the task `airflow worker -- <ti id>`)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            line = " ".join(proc.info["cmdline"] or [])
            if ti_id in line and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.pid}: {line}")
        except psutil.Error:
            continue
    return found


def _alive(pid: int, ti_id: str) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and ti_id in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def _service_status(pond_service: Any, run_id: str, stage_id: str) -> api.StageStatus:
    with api.ServiceClient(pond_service.url, pond_service.token) as client:
        return client.status(run_id, stage_id, log_offset=1 << 30)


def _pond_run_id(dag_id: str, run_id: str, scope: str) -> str:
    from pond_airflow.runs import pond_run_id

    class DagRun:
        pass

    dag_run = DagRun()
    dag_run.dag_id, dag_run.run_id = dag_id, run_id  # type: ignore[attr-defined]
    return pond_run_id({"dag_run": dag_run}, scope)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_deferred_task_process_ends_and_mark_failed_cancels_on_the_service(service_airflow, pond_service, shop):
    dep = service_airflow
    plan = api.compile_pipeline("pond_test_pipelines:slow_copy", {"source_root": str(shop), "seconds": SLOW_SECONDS})
    task_id = f"slow.{plan.final.name}"
    run_id = dep.trigger("pond_service_slow", SLOW_DAY)

    def deferred() -> Any:
        tis = dep.task_instances("pond_service_slow", run_id)
        if tis.get(task_id, ("", None, 0))[1] in ("failed", "success", "up_for_retry"):
            raise AssertionError(f"{task_id} ended before it deferred: {tis}\n{dep.tail()}")
        return tis[task_id] if tis.get(task_id, ("", None, 0))[1] == "deferred" else None

    ti_id, _, _ = dep.wait(f"{task_id} to defer", deferred, 420)
    pond_run = _pond_run_id("pond_service_slow", run_id, "slow")
    # The task process exits once it deferred (give the supervisor a moment to reap it).
    dep.wait("the deferred task's processes to end", lambda: not _task_processes(ti_id), 60)
    ((pid,),) = dep.query("SELECT pid FROM task_instance WHERE id = ?", ti_id.replace("-", ""))
    assert pid and not _alive(pid, ti_id)  # the process that ran and deferred the task is gone
    status = _service_status(pond_service, pond_run, plan.final.id)
    assert status.state is api.AttemptState.RUNNING  # the stage goes on with no task process
    assert dep.task_instances("pond_service_slow", run_id)[task_id][1] == "deferred"

    # Airflow calls on_kill only on a trigger the triggerer runs: marked failed in the seconds
    # before the triggerer picks the trigger up, the stage is not cancelled (docs/airflow.md).
    dep.wait("the triggerer to run the trigger", lambda: "waiting for stage" in _trigger_log(dep, "pond_service_slow", task_id), 120)
    dep.rest("PATCH", f"/dags/pond_service_slow/dagRuns/{run_id}/taskInstances/{task_id}", {"new_state": "failed"})
    marked = time.monotonic()
    cancelled = dep.wait(
        "the service to cancel the stage",
        lambda: (s := _service_status(pond_service, pond_run, plan.final.id)).state is api.AttemptState.CANCELLED and s,
        120,
    )
    print(f"mark failed -> stage cancelled on the service: {time.monotonic() - marked:.1f}s")
    assert cancelled.finished_at is not None and cancelled.finished_at - cancelled.submitted_at < SLOW_SECONDS
    assert dep.task_instances("pond_service_slow", run_id)[task_id][1] == "failed"
    trigger_log = _trigger_log(dep, "pond_service_slow", task_id)
    dep.wait("the trigger's on_kill to be logged", lambda: "cancelled on the pond service" in _trigger_log(dep, "pond_service_slow", task_id), 60)
    assert pond_service.token not in trigger_log


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_deferrable_dag_runs_on_the_service_with_stage_logs_in_the_task_log(service_airflow, pond_service, shop):
    dep = service_airflow
    run_id = dep.trigger("pond_service_deferrable", DAY)

    def finished() -> str | None:
        state = dep.run_state("pond_service_deferrable", run_id)
        return state if state in ("success", "failed") else None

    assert dep.wait("the deferrable DAG run", finished, 600) == "success", dep.tail()
    tis = dep.task_instances("pond_service_deferrable", run_id)
    assert {t: (s, n) for t, (_, s, n) in tis.items()} == {f"daily_revenue.{s}": ("success", 1) for s in STAGES}
    examples = dep.root / "examples"
    got = read_dataset(str(examples / "service_deferred_revenue"), "segment, country, revenue, orders", f"dt = DATE '{DAY}'")
    assert got == expected_daily_revenue(str(shop), DAY)
    for stage in STAGES:
        log = _trigger_log(dep, "pond_service_deferrable", f"daily_revenue.{stage}")
        assert f"pond stage {stage} done" in log, log[-3000:]  # the service's own line, via the trigger
        task_log = _task_log(dep, "pond_service_deferrable", f"daily_revenue.{stage}")
        assert "submitted on the pond service" in task_log or "attached to the running attempt" in task_log
        assert pond_service.token not in log + task_log


def _attempt_logs(dep: Deployment, dag_id: str, task_id: str) -> list[Path]:
    return sorted((dep.logs / f"dag_id={dag_id}").glob(f"run_id=*/task_id={task_id}/attempt=1.log*"))


def _trigger_log(dep: Deployment, dag_id: str, task_id: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in _attempt_logs(dep, dag_id, task_id) if ".trigger." in p.name)


def _task_log(dep: Deployment, dag_id: str, task_id: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in _attempt_logs(dep, dag_id, task_id) if ".trigger." not in p.name)
