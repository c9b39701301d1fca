"""Screenshots of the example pipelines in a real Airflow and a real Prefect server.

Airflow: starts `airflow standalone` (SQLite, LocalExecutor, no login) in a scratch AIRFLOW_HOME
with this checkout's dags/ and code; runs pond_daily_revenue for one day and
pond_daily_revenue_checked twice (a run that publishes with a warning, and one with
`min_orders` too high, whose check fails). Shots: the run's grid, its graph, a stage's SQL and
log, the asset graph of the written dataset (source -> task -> dataset), the failed checks
task. Prefect: starts `prefect server start` in a scratch PREFECT_HOME and runs
flows/daily_revenue.py twice (the second run: every stage Cached), then a pipeline whose middle
stage rejects its data (`failing_revenue` below). Shots: the flow run, a stage's artifact, the
cached rerun, a Cached stage's artifact, the failed run. PNGs are taken by headless Chromium
(`apt-get install chromium`) into docs/images/. Everything it starts it stops (SIGINT, then
the process group it started).

    .venv/bin/python tools/ui_screens.py [airflow|prefect|both] [--out docs/images] [--day 2026-11-20]
"""

from __future__ import annotations

import argparse
import datetime as dt
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
CHECKED_DAG_ID = "pond_daily_revenue_checked"
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


def shoot_after(chromium: str, url: str, path: Path, setup: str, action: str = "", wait_s: float = 25.0) -> None:
    """A screenshot of `url` after running JavaScript in the page: `setup` on the site's origin
    before the page loads (e.g. a UI preference in localStorage), `action` once it has loaded
    (e.g. a click on a view's toggle). Drives headless Chromium over its DevTools protocol."""
    import asyncio
    import base64

    import websockets

    port = free_port()
    profile = tempfile.mkdtemp(prefix="pond-ui-chromium-")
    browser = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1600,1000",
         f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )

    async def drive() -> None:
        pages = wait("Chromium's DevTools", lambda: _devtools_pages(port), 60)
        async with websockets.connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as ws:
            n = 0

            async def call(method: str, **params: object) -> dict:
                nonlocal n
                n += 1
                await ws.send(json.dumps({"id": n, "method": method, "params": params}))
                while True:
                    reply = json.loads(await ws.recv())
                    if reply.get("id") == n:
                        return reply.get("result", {})

            origin = "/".join(url.split("/")[:3])
            await call("Page.navigate", url=origin)
            await asyncio.sleep(3)
            await call("Runtime.evaluate", expression=setup)
            await call("Page.navigate", url=url)
            await asyncio.sleep(wait_s)
            if action:
                await call("Runtime.evaluate", expression=action)
                await asyncio.sleep(wait_s)
            shot = await call("Page.captureScreenshot", format="png")
            path.write_bytes(base64.b64decode(shot["data"]))

    try:
        asyncio.run(drive())
        print(f"saved {path} ({url})")
    finally:
        stop(browser)
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_pages(port: int) -> list[dict]:
    try:
        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5).read())
    except OSError:
        return []
    return [p for p in pages if p.get("type") == "page"]


# The innermost element whose text is the label (a segmented toggle is a radio in a label, not a button).
CLICK = "[...document.querySelectorAll('button,label,[role=radio],span,div')].filter(e => e.textContent.trim() === {label!r}).pop()?.click()"


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


def failing_revenue(sp, ds: str, source_root: str, output_root: str):  # type: ignore[no-untyped-def]
    """daily_revenue whose joined rows meet a rule they break: the middle stage fails, so the
    stages after it never run (the failed-run screenshot)."""
    orders = sp.read_parquet(os.path.join(source_root, "orders", f"dt={ds}", "*.parquet"), hive_partitioning=False)
    customers = sp.read_parquet(os.path.join(source_root, "customers.parquet"))
    joined = sp.partial_sql(
        "SELECT c.segment, c.country, o.amount FROM {0} o JOIN {1} c ON o.customer_id = c.customer_id",
        orders.repartition(2, hash_by="customer_id"), customers.repartition(2, hash_by="customer_id"),
    )
    rejected = joined.map_batches(_reject)
    totals = sp.partial_sql("SELECT segment, sum(amount) AS revenue FROM {0} GROUP BY ALL", rejected.repartition(1))
    return totals.sink_parquet(output_root, mode="overwrite")


def _reject(batch):  # type: ignore[no-untyped-def]
    raise ValueError("amount must be below 10,000 for segment 'consumer' (an injected data error)")


def api_post(base: str, path: str, body: dict) -> list[dict]:
    request = urllib.request.Request(f"{base}/api{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


def prefect_screens(chromium: str, out: Path, day: str) -> None:
    home = Path(tempfile.mkdtemp(prefix="pond-ui-prefect-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "POND_"))}
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in (".", "providers/airflow", "providers/prefect", "tools")),
        "PREFECT_HOME": str(home / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": f"{base}/api", "POND_EXAMPLES_ROOT": str(home / "examples"), "POND_EXECUTOR": "local",
    })
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait("the Prefect API", lambda: healthy(f"{base}/api/health"), 120)
        code = (
            "import runpy, json, sys; from prefect import flow; from pond_prefect import run_pipeline;"
            "f = runpy.run_path('flows/daily_revenue.py', run_name='screens');"
            f"ids = [str(f['daily_revenue'](ds='{day}', return_state=True).state_details.flow_run_id) for _ in range(2)];"
            "d = runpy.run_path('flows/_pond_example_data.py');"
            "failing = flow(name='pond-failing-revenue')(lambda ds: run_pipeline('ui_screens:failing_revenue', "
            "{'ds': ds, 'source_root': d['SHOP'], 'output_root': d['OUTPUT'] + '/failing'}, config=d['pond_config'](), retries=0));"
            f"ids.append(str(failing('{day}', return_state=True).state_details.flow_run_id)); print(json.dumps(ids))"
        )
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise SystemExit(f"the flows failed to run:\n{done.stderr[-4000:]}")
        first, cached, failed = json.loads(done.stdout.strip().splitlines()[-1])

        def stage_artifact(flow_run: str, stage: str) -> str:
            runs = api_post(base, "/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run]}}})
            task_run = next(r["id"] for r in runs if r["name"] == stage)
            found = api_post(base, "/artifacts/filter", {"artifacts": {"task_run_id": {"any_": [task_run]}}})
            return found[0]["id"]

        shoot(chromium, f"{base}/runs/flow-run/{first}", out / "prefect-flow-run.png")
        shoot(chromium, f"{base}/artifacts/artifact/{stage_artifact(first, 'join_aggregate_customers_orders')}", out / "prefect-stage-artifact.png")
        shoot(chromium, f"{base}/runs/flow-run/{cached}", out / "prefect-cached-rerun.png")
        shoot(chromium, f"{base}/artifacts/artifact/{stage_artifact(cached, 'join_aggregate_customers_orders')}", out / "prefect-cached-stage-artifact.png")
        shoot(chromium, f"{base}/runs/flow-run/{failed}", out / "prefect-failed-run.png")
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


def trigger(env: dict[str, str], db: Path, dag_id: str, day: str, conf: dict | None = None, suffix: str = "") -> str:
    """Trigger a run of `dag_id` for `day` and wait until it ends; its run id."""
    run_id = f"manual__{day}{suffix}"
    args = [str(BIN / "airflow"), "dags", "trigger", dag_id, "--logical-date", f"{day}T00:00:00+00:00", "--run-id", run_id]
    if conf:
        args += ["--conf", json.dumps(conf)]
    subprocess.run(args, env=env, check=True, capture_output=True)
    state = lambda: query(db, "SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)  # noqa: E731
    ((end,),) = wait(f"{dag_id} {run_id} to finish", lambda: [r for r in state() if r[0] in ("success", "failed")], 600)
    print(f"{dag_id} {run_id}: {end}")
    return run_id


def airflow_screens(chromium: str, out: Path, day: str) -> None:
    home = Path(tempfile.mkdtemp(prefix="pond-ui-"))
    port = free_port()
    env = airflow_env(home, port)
    db = home / "airflow" / "airflow.db"
    log = open(home / "standalone.log", "wb")
    proc = subprocess.Popen([str(BIN / "airflow"), "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for dag_id in (DAG_ID, CHECKED_DAG_ID):
            wait(f"{dag_id} to be serialized", lambda: query(db, "SELECT 1 FROM serialized_dag WHERE dag_id = ?", dag_id))  # noqa: B023
        base = f"http://127.0.0.1:{port}"
        wait("the API server", lambda: healthy(f"{base}/api/v2/monitor/health"))
        run = urllib.parse.quote(trigger(env, db, DAG_ID, day), safe="")
        shoot(chromium, f"{base}/dags/{DAG_ID}/runs/{run}", out / "airflow-run-stages.png")
        graph_view = "localStorage.setItem('default_dag_view', JSON.stringify('graph'))"
        expand = "document.querySelector('[aria-label*=\"xpand\"]')?.click()"  # open the pipeline's task group
        shoot_after(chromium, f"{base}/dags/{DAG_ID}/runs/{run}", out / "airflow-run-graph.png", graph_view, expand)
        shoot(chromium, f"{base}/dags/{DAG_ID}/runs/{run}/tasks/{STAGE}/rendered_templates", out / "airflow-stage-sql.png")
        shoot(chromium, f"{base}/dags/{DAG_ID}/runs/{run}/tasks/{STAGE}", out / "airflow-stage-log.png")
        output = "file://" + str(home / "examples" / "daily_revenue")
        ((asset_id,),) = query(db, "SELECT id FROM asset WHERE uri = ?", output)
        fit = "; setTimeout(() => document.querySelector('.react-flow__controls-fitview')?.click(), 8000)"
        shoot_after(chromium, f"{base}/assets/{asset_id}", out / "airflow-asset-graph.png", "0", CLICK.format(label="Task Dependencies") + fit)
        warned = urllib.parse.quote(trigger(env, db, CHECKED_DAG_ID, day), safe="")
        next_day = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()  # one run per logical date
        failed = urllib.parse.quote(trigger(env, db, CHECKED_DAG_ID, next_day, {"min_orders": 100000}), safe="")
        ((checks,),) = query(db, "SELECT task_id FROM task_instance WHERE dag_id = ? AND task_id LIKE '%\\_checks' ESCAPE '\\' LIMIT 1", CHECKED_DAG_ID)
        shoot(chromium, f"{base}/dags/{CHECKED_DAG_ID}/runs/{warned}/tasks/{checks}", out / "airflow-checks-warned.png")
        shoot(chromium, f"{base}/dags/{CHECKED_DAG_ID}/runs/{failed}", out / "airflow-checks-failed-grid.png")
        shoot(chromium, f"{base}/dags/{CHECKED_DAG_ID}/runs/{failed}/tasks/{checks}", out / "airflow-checks-failed.png")
    finally:
        stop(proc)
        log.close()
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
