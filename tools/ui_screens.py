"""Screenshots of the example pipeline in a real Airflow and a real Prefect server: named
stages, a stage's SQL, its log.

Airflow: starts `airflow standalone` (SQLite, LocalExecutor, no login) in a scratch AIRFLOW_HOME
with this checkout's dags/ and code and runs pond_daily_revenue for one day. Prefect: starts
`prefect server start` in a scratch PREFECT_HOME and runs flows/daily_revenue.py against it.
PNGs are taken by headless Chromium (`apt-get install chromium`) into docs/images/. Everything
it starts it stops (SIGINT, then the process group it started).

    .venv/bin/python tools/ui_screens.py [airflow|prefect|both] [--out docs/images] [--day 2026-11-20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAG_ID = "pond_daily_revenue"
STAGE = "daily_revenue.join_aggregate_customers_orders"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def airflow_env(home: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "POND_"))}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in (".", "providers/airflow", "providers/prefect")),
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow/airflow.db",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",
            "AIRFLOW_CONN_POND_DEFAULT": json.dumps({"conn_type": "pond", "extra": {"data_root": str(home / "pond"), "executor": "local"}}),
            "POND_EXAMPLES_ROOT": str(home / "examples"),
        }
    )
    return env


def query(db: Path, sql: str, *params: object) -> list[tuple]:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:
        return []


def wait(what: str, check, timeout: float = 300):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise SystemExit(f"timed out waiting for {what}")


def healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=5).status == 200
    except OSError:
        return False


def shoot(chromium: str, url: str, path: Path, size: str = "1600,1000") -> None:
    subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={size}",
         "--virtual-time-budget=20000", f"--screenshot={path}", url],
        check=True, capture_output=True, timeout=120,
    )
    print(f"saved {path} ({url})")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the session this script started: its leftovers only
    except ProcessLookupError:
        pass


def prefect_screens(chromium: str, out: Path, day: str) -> None:
    home = Path(tempfile.mkdtemp(prefix="pond-ui-prefect-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "POND_"))}
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in (".", "providers/airflow", "providers/prefect")),
        "PREFECT_HOME": str(home / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": f"{base}/api", "POND_EXAMPLES_ROOT": str(home / "examples"), "POND_EXECUTOR": "local",
    })
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait("the Prefect API", lambda: healthy(f"{base}/api/health"), 120)
        code = (
            "import runpy, json; f = runpy.run_path('flows/daily_revenue.py', run_name='screens');"
            f"s = f['daily_revenue'](ds='{day}', return_state=True); print(json.dumps(str(s.state_details.flow_run_id)))"
        )
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=True)
        flow_run = json.loads(done.stdout.strip().splitlines()[-1])
        runs = json.loads(urllib.request.urlopen(urllib.request.Request(
            f"{base}/api/task_runs/filter", data=json.dumps({"flow_runs": {"id": {"any_": [flow_run]}}}).encode(),
            headers={"Content-Type": "application/json"}), timeout=10).read())
        join = next(r["id"] for r in runs if r["name"] == "join_aggregate_customers_orders")
        artifacts = json.loads(urllib.request.urlopen(urllib.request.Request(
            f"{base}/api/artifacts/filter", data=json.dumps({"artifacts": {"task_run_id": {"any_": [join]}}}).encode(),
            headers={"Content-Type": "application/json"}), timeout=10).read())
        shoot(chromium, f"{base}/runs/flow-run/{flow_run}", out / "prefect-flow-run.png")
        shoot(chromium, f"{base}/artifacts/artifact/{artifacts[0]['id']}", out / "prefect-stage-artifact.png")
    finally:
        stop(proc)
        log.close()
    shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", nargs="?", choices=["airflow", "prefect", "both"], default="both")
    parser.add_argument("--out", default=str(REPO / "docs" / "images"))
    parser.add_argument("--day", default="2026-11-20")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("needs headless Chromium: apt-get install chromium")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.which in ("prefect", "both"):
        prefect_screens(chromium, out, args.day)
    if args.which in ("airflow", "both"):
        airflow_screens(chromium, out, args.day)
    return 0


def airflow_screens(chromium: str, out: Path, day: str) -> None:
    home = Path(tempfile.mkdtemp(prefix="pond-ui-"))
    port = free_port()
    env = airflow_env(home, port)
    db = home / "airflow" / "airflow.db"
    log = open(home / "standalone.log", "wb")
    proc = subprocess.Popen([str(BIN / "airflow"), "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait("the DAG to be serialized", lambda: query(db, "SELECT 1 FROM serialized_dag WHERE dag_id = ?", DAG_ID))
        base = f"http://127.0.0.1:{port}"
        wait("the API server", lambda: healthy(f"{base}/api/v2/monitor/health"))
        subprocess.run([str(BIN / "airflow"), "dags", "trigger", DAG_ID, "--logical-date", f"{day}T00:00:00+00:00"], env=env, check=True, capture_output=True)
        states = lambda: query(db, "SELECT run_id, state FROM dag_run WHERE dag_id = ?", DAG_ID)  # noqa: E731
        ((run_id, state),) = wait("the run to finish", lambda: [r for r in states() if r[1] in ("success", "failed")], 600)
        print(f"run {run_id}: {state}")
        run = urllib.parse.quote(run_id, safe="")
        shoot(chromium, f"{base}/dags/{DAG_ID}/runs/{run}", out / "airflow-run-stages.png")
        shoot(chromium, f"{base}/dags/{DAG_ID}/runs/{run}/tasks/{STAGE}/rendered_templates", out / "airflow-stage-sql.png")
        shoot(chromium, f"{base}/dags/{DAG_ID}/runs/{run}/tasks/{STAGE}", out / "airflow-stage-log.png")
    finally:
        stop(proc)
        log.close()
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
