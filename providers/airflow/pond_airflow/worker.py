"""A detached pond worker for deferrable stages: `python -m pond_airflow.worker`.

The deferring task starts this process in its own session (process group) and hands it the
job on stdin, so no setting or secret appears in a command line or environment listing. The
worker runs the stage (in process, or as the Ray driver when the connection names a cluster)
and reports through small files next to the run's state in pond storage, which the trigger
polls from wherever the triggerer runs:

    <data_root>/jobs/<run_id>/airflow/<stage>.<token>.heartbeat   rewritten every few seconds
    <data_root>/jobs/<run_id>/airflow/<stage>.<token>.status      the outcome, written once
    <data_root>/jobs/<run_id>/airflow/<stage>.<token>.cancel      written by the trigger's on_kill

On a cancel marker the worker records "cancelled" and kills its own process group, which
stops its local task threads and, as the Ray driver, the tasks it owns on the cluster.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

from pond_airflow.settings import PondSettings, scrub
from pond_core import api

HEARTBEAT_SECONDS = 2.0
CANCEL_CHECK_SECONDS = 0.5


class StateFiles:
    """The heartbeat, status and cancel files of one submission."""

    def __init__(self, fs: Any, prefix: str) -> None:
        self.fs = fs
        self.prefix = prefix

    def _path(self, kind: str) -> str:
        return f"{self.prefix}.{kind}"

    def beat(self) -> None:
        self.fs.write_bytes(self._path("heartbeat"), f"{time.time():.3f} {os.getpid()}".encode())

    def heartbeat(self) -> str | None:
        path = self._path("heartbeat")
        return self.fs.read_bytes(path).decode() if self.fs.exists(path) else None

    def write_status(self, status: dict[str, Any]) -> None:
        self.fs.write_bytes(self._path("status"), json.dumps(status, default=str).encode())

    def status(self) -> dict[str, Any] | None:
        path = self._path("status")
        return json.loads(self.fs.read_bytes(path)) if self.fs.exists(path) else None

    def cancel(self) -> None:
        self.fs.write_bytes(self._path("cancel"), b"cancel")

    def cancelled(self) -> bool:
        return self.fs.exists(self._path("cancel"))


def state_files(data_root: str, prefix: str, storage_options: dict[str, Any]) -> StateFiles:
    return StateFiles(api.get_filesystem(data_root, api.StorageOptions.from_env(**storage_options)), prefix)


def submit(
    plan: api.PhysicalPlan, stage: api.Stage, run_id: str, settings: PondSettings, *, force: bool, lineage_scope: str | None = None
) -> dict[str, Any]:
    """Start a detached worker for one stage; return where it reports."""
    root = settings.session_settings(job_id=run_id).data_root
    token = uuid.uuid4().hex[:12]
    prefix = api.join_path(api.RunLayout(root, run_id).orchestrator_dir("airflow"), f"{stage.name}.{token}")
    spec = {
        "plan": plan.to_json(),
        "stage_id": stage.id,
        "run_id": run_id,
        "force": force,
        "lineage_scope": lineage_scope,
        # Secrets included: the job goes to the worker on its stdin, never on a command line.
        "settings": {**settings.values.values, "data_root": root},
        "state_prefix": prefix,
    }
    log_dir = os.path.join(tempfile.gettempdir(), "pond-airflow-workers")
    os.makedirs(log_dir, exist_ok=True)
    log_path = os.path.join(log_dir, f"{run_id}.{stage.name}.{token}.log")
    spec["log"] = f"{socket.gethostname()}:{log_path}"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pond_airflow.worker"],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(spec).encode())
    proc.stdin.close()
    return {"pid": proc.pid, "state_prefix": prefix, "data_root": root, "log": log_path}


def _watch(state: StateFiles, done: threading.Event) -> None:
    last_beat = 0.0
    while not done.wait(CANCEL_CHECK_SECONDS):
        try:
            if state.cancelled():
                state.write_status({"status": "cancelled", "error": "cancelled by the Airflow task being killed", "retryable": False})
                os.killpg(os.getpgid(0), signal.SIGKILL)
            if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                state.beat()
                last_beat = time.monotonic()
        except OSError as exc:  # storage hiccup: the trigger tolerates a late heartbeat
            print(f"pond worker: state update failed: {exc}", file=sys.stderr, flush=True)


def main() -> int:
    spec = json.loads(sys.stdin.read())
    settings = PondSettings(**spec["settings"])
    state = state_files(settings.data_root, spec["state_prefix"], settings.storage_options())
    state.beat()
    done = threading.Event()
    threading.Thread(target=_watch, args=(state, done), daemon=True).start()
    try:
        plan = api.PhysicalPlan.from_json(spec["plan"])
        manifest = api.run_stage(
            plan, spec["stage_id"], spec["run_id"], settings=settings.session_settings(job_id=spec["run_id"]),
            storage=settings.storage(), force=spec["force"], recompute_upstream=True, lineage_scope=spec.get("lineage_scope"),
        )
        status: dict[str, Any] = {"status": "success", "result": manifest.result.to_dict()}
    except BaseException as exc:
        text = scrub(f"{type(exc).__name__}: {exc}", settings)
        retryable = api.is_retryable(exc) or not isinstance(exc, api.PondError)
        status = {"status": "failed", "error": text, "error_type": type(exc).__name__, "retryable": retryable, "log": spec.get("log")}
    done.set()
    state.write_status(status)
    print(f"pond worker: stage {spec['stage_id']} of run {spec['run_id']}: {status['status']}", flush=True)
    if status["status"] == "success" and spec.get("log"):
        try:  # the log only matters when something went wrong
            os.remove(spec["log"].split(":", 1)[1])
        except OSError:
            pass
    return 0 if status["status"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
