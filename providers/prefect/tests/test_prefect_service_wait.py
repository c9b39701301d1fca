"""Service mode's waiting: cancelling a served flow run stops its stage on the service, and
stages waiting on the service hold no thread of the flow process.

Both run the flow in the client venv (no Ray) against the real pond service and the session's
Prefect server. The cancel goes the way a user's does: the flow is served by a Prefect runner
(`flow.serve()`, a subprocess), its run is created from the deployment and set Cancelling
through the Prefect API, as `prefect flow-run cancel` does.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import prefect_api as reads
import pytest
from prefect.client.orchestration import get_client
from prefect.states import Cancelling
from service_client import REPO, client_env, client_python, run_flow

from pond_core import api

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

SERVED_FLOW = """
from prefect import flow
from pond_prefect import run_pipeline


@flow(name="pond-service-slow")
def slow(source_root: str, seconds: float, beat_dir: str):
    params = {"source_root": source_root, "seconds": seconds, "beat_dir": beat_dir}
    return run_pipeline("service_pipelines:slow", params, retries=0)


if __name__ == "__main__":
    slow.serve(name="cancel-me")
"""


def poll(what: str, check: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@contextlib.contextmanager
def served(script: str, env: dict[str, str], log_path: str) -> Iterator[subprocess.Popen[bytes]]:
    """`python script` (a flow's `.serve()`) in the client venv, in its own process group,
    stopped by that group's id."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(client_python()), script], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
                break


def submitted(flow_run_id: Any, stage: str) -> tuple[str, str] | None:
    """(pond run id, stage id) from the stage's 'submitted' line in the flow-run log."""
    pattern = re.compile(rf"stage {stage}: submitted on the pond service at \S+ \(pond run (\S+), stage id (\S+),")
    for g in reads.logs(flow_run_id):
        found = pattern.search(g.message)
        if found:
            return found.group(1), found.group(2)
    return None


def newest_beat(beat_dir: str) -> float:
    beats = [os.path.join(beat_dir, f) for f in os.listdir(beat_dir) if f.endswith(".beat")]
    return max((os.path.getmtime(b) for b in beats), default=0.0)


def test_cancelling_a_served_flow_run_stops_its_stage_on_the_service(pond_service, prefect_api, shop, tmp_path):
    beat_dir = tmp_path / "beats"
    beat_dir.mkdir()
    script = tmp_path / "slow_flow.py"
    script.write_text(SERVED_FLOW)
    env = client_env(pond_service, prefect_api)
    with served(str(script), env, str(tmp_path / "serve.log")) as server, get_client(sync_client=True) as client:
        deployment = poll("the deployment", lambda: _deployment(client, "pond-service-slow/cancel-me"), timeout=180, every=1.0)
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"source_root": shop, "seconds": 120, "beat_dir": str(beat_dir)}
        )
        ids = poll("the slow stage's submission", lambda: submitted(run.id, "map_batches_customers"), timeout=240, every=1.0)
        run_id, stage_id = ids
        service = api.ServiceClient(pond_service.url, pond_service.token)
        poll("the stage running on the service", lambda: service.status(run_id, stage_id).state is api.AttemptState.RUNNING, timeout=120)
        poll("heartbeats of the stage's tasks", lambda: time.time() - newest_beat(str(beat_dir)) < 2, timeout=120)

        asked = time.monotonic()
        client.set_flow_run_state(run.id, Cancelling(message="cancelled by the test"), force=True)
        status = poll(
            "the service to cancel the stage",
            lambda: (s := service.status(run_id, stage_id)).state.finished and s, timeout=60, every=0.1,
        )
        stopped_after = time.monotonic() - asked
        assert status.state is api.AttemptState.CANCELLED, status
        print(f"stage cancelled on the service {stopped_after:.2f} s after the flow run was set Cancelling")

        # Its tasks stopped: no heartbeat after the service said cancelled (a beat every 0.2 s).
        ended = time.time()
        time.sleep(3)
        assert newest_beat(str(beat_dir)) < ended + 1.0
        final = poll("the flow run to end", lambda: (s := client.read_flow_run(run.id).state) and s.is_final() and s, timeout=120, every=1.0)
        assert final.is_cancelled(), final
        stage_run = reads.task_runs(run.id)["map_batches_customers"]
        assert stage_run.state.name == "Cancelled", stage_run.state
        assert "cancelled on the pond service" in stage_run.state.message
        assert server.poll() is None  # the runner lives on; only the flow run ended


def _deployment(client: Any, name: str) -> Any:
    try:
        return client.read_deployment_by_name(name)
    except Exception:
        return None


def test_stages_waiting_on_the_service_hold_no_thread(pond_service, prefect_api, shop, tmp_path):
    """Eight stages wait on the service at once in a flow whose task runner has one thread; the
    flow process's thread count, sampled every 50 ms while they wait, grows by a few threads
    that serve the whole flow run (the cancel watcher, Prefect's log and event workers), not
    by one per waiting stage."""
    branches = 8
    beat_dir = tmp_path / "beats"
    beat_dir.mkdir()
    env = client_env(pond_service, prefect_api)
    program = f"""
        import threading, time
        from prefect import flow
        from prefect.task_runners import ThreadPoolTaskRunner
        from pond_prefect import run_pipeline

        counts, peak_names = [], []
        stop = threading.Event()

        def sample():
            while not stop.wait(0.05):
                names = [t.name for t in threading.enumerate()]
                if not counts or len(names) > max(counts):
                    peak_names[:] = names
                counts.append(len(names))

        @flow(name="pond-service-fan-in", task_runner=ThreadPoolTaskRunner(max_workers=1))
        def fan_in():
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            time.sleep(0.2)
            before = [t.name for t in threading.enumerate()]
            try:
                params = {{"source_root": {shop!r}, "branches": {branches}, "seconds": 4, "beat_dir": {str(beat_dir)!r}}}
                return {{"before": before, "result": run_pipeline("service_pipelines:fan_in", params, retries=0)}}
            finally:
                stop.set()

        state = fan_in(return_state=True)
        before = state.result()["before"]
        extra = {{"baseline": len(before), "peak": max(counts), "samples": len(counts), "before": before, "at_peak": peak_names}}
    """
    report = run_flow(program, env)
    assert report["type"] == "COMPLETED", report["output"]
    assert not report["ray_imported"]
    runs = reads.task_runs(report["flow_run_id"])
    waits = [runs[f"branch_{i}"] for i in range(branches)]
    assert all(r.state.name == "Completed" for r in waits)
    # All eight were running at once (each one's interval overlaps every other's)...
    latest_start = max(r.start_time for r in waits)
    earliest_end = min(r.end_time for r in waits)
    assert latest_start < earliest_end, [(r.name, r.start_time, r.end_time) for r in waits]
    # ... on a task runner with one thread, and the process gained a few threads, not one per stage.
    extra = report["extra"]
    added = sorted(set(extra["at_peak"]) - set(extra["before"]))
    print(f"threads: {extra['baseline']} before, {extra['peak']} at most while {branches} stages waited "
          f"{(earliest_end - latest_start).total_seconds():.1f} s together ({extra['samples']} samples); added: {added}")
    # A thread per waiting stage would add at least `branches`; the flow run's own helpers add a
    # few whatever the count (AnyIO's worker, the lease and cancel watchers, the sync loop).
    assert extra["peak"] - extra["baseline"] < branches, extra
