"""On Ray: log lines written inside workers reach the flow run; cancelling the flow run stops the work."""

from __future__ import annotations

import glob
import os
import threading
import time

import prefect_api
import psutil
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelling

from pond_prefect import PondConfig, run_pipeline

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("prefect_api", "ray_cluster")]


@flow(name="pond-test-on-ray")
def ray_flow(pipeline: str, params: dict, storage_root: str) -> dict:
    return run_pipeline(pipeline, params, config=PondConfig(data_root=storage_root, executor="ray"), retry_delay_seconds=0)


def test_log_lines_from_ray_workers_reach_the_flow_run(shop, pond_root):
    state = ray_flow("prefect_pipelines:chatty", {"source_root": shop, "npartitions": 2}, pond_root, return_state=True)
    assert state.is_completed(), state
    flow_run_id = state.state_details.flow_run_id
    runs = prefect_api.task_runs(flow_run_id)

    def hellos(found):
        return [log for log in found if "hello from pid" in log.message]

    found = prefect_api.logs(flow_run_id, until=lambda f: len(hellos(f)) >= 2)
    lines = hellos(found)
    assert len(lines) == 2, [log.message for log in found]
    worker_pids = {int(line.message.split("hello from pid ")[1].split(",")[0]) for line in lines}
    assert os.getpid() not in worker_pids  # written in Ray worker processes, not here
    task_run_ids = {r.id for r in runs.values()}
    assert {line.task_run_id for line in lines} <= task_run_ids
    assert all(line.message.startswith("[") and " p" in line.message for line in lines)  # "[<stage> p<k> a<attempt>] ..."
    done = [log for log in found if log.name == "pond.task" and " done in " in log.message]
    assert len(done) >= 2 and all(f"pid {os.getpid()}" not in log.message for log in done)


def test_progress_shows_while_running_and_cancelling_the_flow_run_cancels_its_ray_tasks(shop, pond_root, tmp_path):
    beats = tmp_path / "beats"
    beats.mkdir()
    params = {"source_root": shop, "seconds": 120.0, "beat_dir": str(beats)}
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("state", ray_flow("prefect_pipelines:slow", params, pond_root, return_state=True)))
    runner.start()
    deadline = time.monotonic() + 60
    while len(glob.glob(str(beats / "*.beat"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = [int(os.path.basename(p).split(".")[0]) for p in glob.glob(str(beats / "*.beat"))]
    assert len(workers) == 2, "both partition tasks should be running on Ray workers"

    with get_client(sync_client=True) as client:
        (flow_run,) = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["pond-test-on-ray"])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))),
        )
        # Mid-run progress: the exchange stage is done, the sleeping stage has no partition done.
        (progress,) = [a for a in prefect_api.artifacts(flow_run.id) if a.type == "progress"]
        assert float(progress.data) == 50.0
        client.set_flow_run_state(flow_run.id, Cancelling(), force=True)
    cancelled_at = time.monotonic()
    runner.join(timeout=60)
    assert not runner.is_alive()
    assert time.monotonic() - cancelled_at < 30
    state = outcome["state"]
    assert state.is_cancelled(), state
    time.sleep(1.0)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in workers), "Ray workers still running"
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(flow_run.id).state.is_cancelled()
