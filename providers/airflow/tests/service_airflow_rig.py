"""A real Airflow deployment in the client venv (no Ray), pointed at the session's pond service.

It runs what `airflow standalone` runs — api-server, scheduler (LocalExecutor), dag-processor,
triggerer — as separate processes, because standalone cannot be told to skip its task-log
servers, which Airflow 3.3 binds to every interface (`serve_logs` uses host ""): here the
scheduler and triggerer run with `--skip-serve-logs` (the tests read task logs from disk) and
the api-server binds 127.0.0.1, so nothing listens beyond this machine. SQLite, parallelism 4,
`simple_auth_manager_all_admins` so the REST API needs no login. Each process has its own
process group, stopped by its id (SIGTERM, then SIGKILL) at the end of the session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SERVICE_DAGS = HERE / "service_dags"
COMPONENTS = (
    ("api-server", ["api-server", "--host", "127.0.0.1"]),
    ("scheduler", ["scheduler", "--skip-serve-logs"]),
    ("dag-processor", ["dag-processor"]),
    ("triggerer", ["triggerer", "--skip-serve-logs"]),
)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def airflow_env(root: Path, bin_dir: Path, service_url: str, token: str, **extra: str) -> dict[str, str]:
    """A clean deployment under `root`: its DAGs are tests/service_dags, pond_default names the service."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "POND_", "PYTHONPATH", "RAY_"))}
    home = root / "airflow_home"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env.update({
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(SERVICE_DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),  # one secret for every component
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
        "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        "AIRFLOW_CONN_POND_DEFAULT": json.dumps({"conn_type": "pond", "password": token, "extra": {"service_url": service_url}}),
        "POND_EXAMPLES_ROOT": str(root / "examples"),
        # This checkout's code and the DAGs' helper modules (pond_test_pipelines, _pond_airflow_examples).
        "PYTHONPATH": os.pathsep.join(str(p) for p in (REPO, REPO / "providers/airflow", REPO / "dags", HERE)),
        **extra,
    })
    return env


@dataclasses.dataclass
class Deployment:
    """The running components; `api` is the REST API's base URL, `db` the SQLite metadata DB."""

    env: dict[str, str]
    root: Path
    procs: dict[str, subprocess.Popen[bytes]] = dataclasses.field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['AIRFLOW__API__PORT']}/api/v2"

    @property
    def db(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"]) / "airflow.db"

    @property
    def logs(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"]) / "logs"

    def start(self) -> None:
        bin_dir = Path(self.env["PATH"].split(os.pathsep)[0])
        subprocess.run([str(bin_dir / "airflow"), "db", "migrate"], env=self.env, check=True, capture_output=True, timeout=600)
        for name, args in COMPONENTS:
            with open(self.root / f"{name}.log", "wb") as out:
                self.procs[name] = subprocess.Popen(
                    [str(bin_dir / "airflow"), *args], env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
        self.wait("the API server", lambda: _get(f"{self.api}/monitor/health"), 300)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever of its group is left
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)

    def tail(self) -> str:
        return "\n".join(f"--- {n}\n{(self.root / f'{n}.log').read_text(errors='replace')[-3000:]}" for n, _ in COMPONENTS)

    def wait(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise AssertionError(f"airflow {dead} exited while waiting for {what}:\n{self.tail()}")
            value = check()
            if value:
                print(f"{what}: {time.monotonic() - started:.1f}s")
                return value
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}:\n{self.tail()}")

    def query(self, sql: str, *params: Any) -> list[tuple]:
        try:
            con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        except sqlite3.OperationalError:
            return []
        try:
            return con.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # tables not there yet, or locked
            return []
        finally:
            con.close()

    def rest(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        for _ in range(10):  # SQLite takes one writer: a write may meet the scheduler's
            response = httpx.request(method, f"{self.api}{path}", json=body, timeout=60)
            if response.status_code < 500:
                break
            time.sleep(2)
        assert response.status_code < 300, f"{method} {path}: HTTP {response.status_code} {response.text[:2000]}"
        return response.json()

    def trigger(self, dag_id: str, day: str) -> str:
        self.wait(f"{dag_id} to be parsed", lambda: self.query("SELECT 1 FROM serialized_dag WHERE dag_id = ?", dag_id), 300)
        run = self.rest("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": f"{day}T00:00:00Z"})
        return str(run["dag_run_id"])

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, tuple[str, str | None, int]]:
        """task_id -> (TI id, state, try number)."""
        rows = self.query("SELECT task_id, id, state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return {t: (str(uuid.UUID(str(i))), s, n) for t, i, s, n in rows}  # SQLite keeps the id without dashes

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return rows[0][0] if rows else None


def _get(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def deployment(root: Path, bin_dir: Path, service_url: str, token: str, **extra: str) -> Iterator[Deployment]:
    dep = Deployment(airflow_env(root, bin_dir, service_url, token, **extra), root)
    try:
        dep.start()
        yield dep
    finally:
        dep.stop()
