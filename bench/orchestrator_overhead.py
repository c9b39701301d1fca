"""Per-stage orchestrator overhead: the example 4-stage pipeline on one day of the example shop,
as Airflow `dag.test()` tasks and as Prefect task runs; for each stage, the task's wall time,
pond's own stage seconds and the difference. Prefect also runs a second time (every stage
Cached). `parse` measures what a task's start pays to parse the DAG file (Airflow parses it
again in every task's process), with pond's plan cache cold and warm, in fresh processes.
Prints medians and the machine's load average: timings on a shared machine are noisy, compare
figures taken in one sitting only. Asserts nothing.

    .venv/bin/python bench/orchestrator_overhead.py airflow
    .venv/bin/python bench/orchestrator_overhead.py parse [--repeat 5]
    .venv/bin/python bench/orchestrator_overhead.py prefect
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAY = "2026-11-20"
SCRATCH = Path(tempfile.mkdtemp(prefix="pond-overhead-"))


def table(rows: list[tuple[str, float, float]]) -> None:
    print(f"{'stage':<40} {'task s':>8} {'pond s':>8} {'overhead s':>11}")
    for name, task, pond in rows:
        print(f"{name:<40} {task:>8.2f} {pond:>8.2f} {task - pond:>11.2f}")
    if rows:
        print(f"{'mean per stage':<40} {sum(r[1] for r in rows) / len(rows):>8.2f} {sum(r[2] for r in rows) / len(rows):>8.2f} "
              f"{sum(r[1] - r[2] for r in rows) / len(rows):>11.2f}")


def airflow() -> None:
    home = SCRATCH / "airflow"
    home.mkdir()
    os.environ.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__OPENLINEAGE__DISABLED": "True", "POND_EXAMPLES_ROOT": str(SCRATCH / "examples"),
        "AIRFLOW_CONN_POND_DEFAULT": json.dumps({"conn_type": "pond", "extra": {"data_root": str(SCRATCH / "pond"), "executor": "local"}}),
    })
    sys.path.insert(0, str(REPO / "dags"))
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils import db
    from airflow.utils.session import create_session
    from sqlalchemy import select

    db.resetdb()
    dag = DagBag(dag_folder=str(REPO / "dags")).dags["pond_daily_revenue"]
    started = time.perf_counter()
    run = dag.test(logical_date=dt.datetime.fromisoformat(DAY).replace(tzinfo=dt.timezone.utc))
    total = time.perf_counter() - started
    rows = []
    with create_session() as session:
        for ti in session.scalars(select(TaskInstance).where(TaskInstance.run_id == run.run_id)):
            if not ti.task_id.startswith("daily_revenue."):
                continue
            value = session.scalar(select(XComModel.value).where(
                XComModel.run_id == run.run_id, XComModel.task_id == ti.task_id, XComModel.key == "return_value"))
            result = json.loads(value) if isinstance(value, str) else value
            rows.append((ti.task_id.split(".", 1)[1], (ti.end_date - ti.start_date).total_seconds(), float(result["seconds"])))
    print(f"Airflow dag.test() of pond_daily_revenue ({run.state}): {total:.1f} s for the whole run; load average {os.getloadavg()[0]:.1f}")
    table(sorted(rows, key=lambda r: r[0]))


def prefect() -> None:
    os.environ["PREFECT_HOME"] = str(SCRATCH / "prefect")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["POND_EXAMPLES_ROOT"] = str(SCRATCH / "examples")
    os.environ["POND_EXECUTOR"] = "local"
    import runpy

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        flows = runpy.run_path(str(REPO / "flows" / "daily_revenue.py"), run_name="bench")
        for label in ("first run", "rerun (every stage Cached)"):
            started = time.perf_counter()
            state = flows["daily_revenue"](ds=DAY, return_state=True)
            total = time.perf_counter() - started
            stages = state.result()["stages"]
            with get_client(sync_client=True) as client:
                runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
            rows = []
            for r in runs:
                if r.name in stages and r.start_time and r.end_time:
                    pond = 0.0 if r.state and r.state.name == "Cached" else float(stages[r.name]["seconds"])
                    rows.append((f"{r.name} ({r.state.name if r.state else '?'})", (r.end_time - r.start_time).total_seconds(), pond))
                elif r.name in stages:  # a cached task run has no start: it never ran
                    rows.append((f"{r.name} ({r.state.name if r.state else '?'})", 0.0, 0.0))
            print(f"Prefect flow pond-daily-revenue, {label} ({state.name}): {total:.1f} s for the whole flow run; "
                  f"load average {os.getloadavg()[0]:.1f}")
            table(sorted(rows, key=lambda r: r[0]))


_PARSE = """
import os, sys, time
sys.path.insert(0, sys.argv[2])
from airflow.dag_processing.dagbag import DagBag
import pond_airflow.pipeline  # imported by any DAG using pond: not what the cache saves
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
print(time.perf_counter() - started)
"""


def parse() -> None:
    """Seconds to parse dags/pond_daily_revenue.py in a fresh process (what a task's start
    pays): with an empty plan cache (every parse compiles) and with a warm one."""
    import statistics
    import subprocess

    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 5
    home = SCRATCH / "airflow"
    home.mkdir(exist_ok=True)
    sys.path.insert(0, str(REPO / "bench"))
    from _common import child_env

    env = {
        **child_env(), "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db", "POND_EXAMPLES_ROOT": str(SCRATCH / "examples"),
    }
    dag_file = str(REPO / "dags" / "pond_daily_revenue.py")

    def once(cache: str) -> float:
        out = subprocess.run([sys.executable, "-c", _PARSE, dag_file, str(REPO / "dags")], env={**env, "POND_AIRFLOW_PLAN_CACHE": cache},
                             capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"parsing {dag_file} failed:\n{out.stderr[-3000:]}")
        return float(out.stdout.strip().splitlines()[-1])

    cold = [once(tempfile.mkdtemp(dir=SCRATCH)) for _ in range(repeat)]
    warm_dir = tempfile.mkdtemp(dir=SCRATCH)
    once(warm_dir)
    warm = [once(warm_dir) for _ in range(repeat)]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {repeat} fresh processes each; seconds to parse {dag_file}")
    print(f"{'plan cache':<12} {'median':>7} {'min':>7} {'max':>7}")
    for label, values in (("cold", cold), ("warm", warm)):
        print(f"{label:<12} {statistics.median(values):>7.3f} {min(values):>7.3f} {max(values):>7.3f}")
    print(f"saved per task start (medians): {statistics.median(cold) - statistics.median(warm):.3f} s")


if __name__ == "__main__":
    {"airflow": airflow, "prefect": prefect, "parse": parse}[sys.argv[1] if len(sys.argv) > 1 else "airflow"]()
