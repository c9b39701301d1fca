"""A real Airflow on 127.0.0.1: `airflow standalone` with the LocalExecutor runs the example
pipeline DAG, then `airflow backfill create` fills three days, of the cron-scheduled DAG and of its
partitioned twin (two days); a middle stage of the finished run is cleared (alone, with
downstream, with upstream) and re-runs to the same output; the CLI lists the provider.

Everything started here is stopped by PID: standalone with SIGINT (the only way it cleans up),
then any process of its session that is left is killed and reported.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from airflow_rig import EXAMPLE_DAGS, REPO, expected_daily_revenue, read_dataset

BIN = Path(sys.executable).parent
DAG_ID = "pond_daily_revenue"
PARTITIONED_DAG_ID = "pond_daily_revenue_partitioned"
BACKFILL_DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]
PARTITION_DAYS = BACKFILL_DAYS[1:]  # the partitioned twin: two runs are enough to see its keys
TRIGGERED_DAY = "2026-11-10"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(root: Path) -> dict[str, str]:
    """A clean Airflow deployment under `root`: nothing inherited from the dag.test rig."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "POND_", "PYTHONPATH"))}
    home = root / "airflow_home"
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # Only the runs this test asks for: no run for "today" from the daily schedules.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",
            "AIRFLOW_CONN_POND_DEFAULT": json.dumps({"conn_type": "pond", "extra": {"data_root": str(root / "pond"), "executor": "local"}}),
            "POND_EXAMPLES_ROOT": str(root / "examples"),
            # This checkout's code, not whichever checkout the venv's editable installs point at.
            "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in (".", "providers/airflow", "providers/prefect")),
        }
    )
    return env


def _airflow(env: dict[str, str], *commands: list[str], timeout: float = 180) -> list[str]:
    """Run airflow CLI commands concurrently (each start costs seconds); return their stdout.

    Only read-only commands should share a call: SQLite takes one writer at a time.
    """
    outputs: dict[int, str] = {}
    todo = dict(enumerate(commands))
    for _ in range(5):
        procs = {
            i: subprocess.Popen([str(BIN / "airflow"), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i, args in todo.items()
        }
        for i, proc in procs.items():
            out, err = proc.communicate(timeout=timeout)
            if proc.returncode == 0:
                outputs[i] = out
                del todo[i]
            # SQLite allows one writer: a CLI write can collide with the scheduler's; try again.
            elif "database is locked" not in out + err:
                raise AssertionError(f"airflow {' '.join(todo[i])} failed:\n{out[-3000:]}\n{err[-3000:]}")
        if not todo:
            return [outputs[i] for i in range(len(commands))]
        time.sleep(2)
    raise AssertionError(f"airflow commands kept meeting a locked database: {list(todo.values())}")


def _query(db: Path, sql: str, *params: Any) -> list[tuple]:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return []
    try:
        return con.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        con.close()


def _wait(what: str, check: Callable[[], Any], timeout: float, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while time.monotonic() < deadline:
        value = check()
        if value:
            print(f"{what}: {time.monotonic() - started:.1f}s")
            return value
        time.sleep(1)
    tail = log.read_text()[-6000:] if log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; standalone log tail:\n{tail}")


def _stop(proc: subprocess.Popen) -> list[int]:
    """SIGINT standalone, wait, then kill whatever of its session is left; return those PIDs."""
    try:
        family = [proc.pid] + [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = [proc.pid]
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 15
    leftovers = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    while leftovers and time.monotonic() < deadline:
        time.sleep(0.5)
        leftovers = [pid for pid in leftovers if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    return leftovers


def _runs(db: Path, run_type: str, dag_id: str = DAG_ID) -> dict[str, str]:
    rows = _query(db, "SELECT coalesce(partition_key, logical_date), state FROM dag_run WHERE dag_id = ? AND run_type = ?", dag_id, run_type)
    return {str(day)[:10]: state for day, state in rows}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_standalone_runs_and_backfills_the_pipeline(tmp_path):
    env = _env(tmp_path)
    db = tmp_path / "airflow_home" / "airflow.db"
    log = tmp_path / "standalone.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "airflow"), "standalone"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    leftovers: list[int] = []
    try:
        _wait("the DAG to be parsed and serialized", lambda: _query(db, "SELECT 1 FROM serialized_dag WHERE dag_id = ?", DAG_ID), 180, log)
        _airflow(env, ["dags", "trigger", DAG_ID, "--logical-date", f"{TRIGGERED_DAY}T00:00:00+00:00"])
        _airflow(env, ["backfill", "create", "--dag-id", DAG_ID, "--from-date", BACKFILL_DAYS[0], "--to-date", BACKFILL_DAYS[-1], "--max-active-runs", "3"])
        _airflow(env, ["backfill", "create", "--dag-id", PARTITIONED_DAG_ID, "--from-date", PARTITION_DAYS[0], "--to-date", PARTITION_DAYS[-1]])
        _wait("the triggered run to succeed", lambda: _runs(db, "manual").get(TRIGGERED_DAY) == "success" or _failed(db, log), 300, log)
        for dag_id, days in ((DAG_ID, BACKFILL_DAYS), (PARTITIONED_DAG_ID, PARTITION_DAYS)):
            _wait(
                f"the backfill runs of {dag_id} to succeed",
                lambda: sorted(d for d, s in _runs(db, "backfill", dag_id).items() if s == "success") == days or _failed(db, log),
                300,
                log,
            )
        keys = _query(db, "SELECT DISTINCT e.partition_key FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = ?",
                      "file://" + str(tmp_path / "examples" / "daily_revenue_by_partition"))
        assert sorted(k for (k,) in keys) == PARTITION_DAYS  # asset events carry the run's partition key
        tasks = _query(db, "SELECT task_id, state, count(*) FROM task_instance WHERE dag_id = ? GROUP BY task_id, state", DAG_ID)
        assert {(t, s) for t, s, _ in tasks} == {
            (t, "success") for t in ["shop_data"] + [f"daily_revenue.{s}" for s in ("orders_by_customer_id", "customers_by_customer_id", "join_aggregate_customers_orders", "write_daily_revenue")]
        }
        assert all(n == 4 for _, _, n in tasks)  # one triggered + three backfill runs, one task per stage each
        _clear_a_middle_stage_after_success(env, db, log, tmp_path)
    finally:
        stopping = time.monotonic()
        leftovers = _stop(proc)
        print(f"stopping standalone: {time.monotonic() - stopping:.1f}s")
    assert not leftovers, f"processes left after SIGINT: {leftovers}"

    output = str(tmp_path / "examples" / "daily_revenue")
    shop = str(tmp_path / "examples" / "shop")
    assert [d for (d,) in read_dataset(output, "DISTINCT dt::VARCHAR")] == BACKFILL_DAYS + [TRIGGERED_DAY]
    for day in BACKFILL_DAYS + [TRIGGERED_DAY]:
        assert read_dataset(output, "segment, country, revenue, orders", f"dt = DATE '{day}'") == expected_daily_revenue(shop, day)
    from pond_core.catalog import Catalog

    catalog = Catalog(Catalog.default_url(str(tmp_path / "pond")))
    assert [p["key"] for p in catalog.list_partitions(output)] == [f"dt={d}" for d in BACKFILL_DAYS + [TRIGGERED_DAY]]
    by_partition = str(tmp_path / "examples" / "daily_revenue_by_partition")
    for day in PARTITION_DAYS:
        assert read_dataset(by_partition, "segment, country, revenue, orders", f"dt = DATE '{day}'") == expected_daily_revenue(shop, day)
    assert [p["key"] for p in catalog.list_partitions(by_partition)] == [f"dt={d}" for d in PARTITION_DAYS]


MIDDLE = "daily_revenue.join_aggregate_customers_orders"


def _tries(db: Path, run_id: str) -> dict[str, tuple[int, str]]:
    rows = _query(db, "SELECT task_id, try_number, state FROM task_instance WHERE dag_id = ? AND run_id = ?", DAG_ID, run_id)
    return {t: (n, s) for t, n, s in rows}


def _clear_a_middle_stage_after_success(env: dict[str, str], db: Path, log: Path, root: Path) -> None:
    """Airflow's "Clear" on the finished triggered run: the stage alone, with downstream, with
    upstream. Intermediates were dropped when the run finished; each clear succeeds (no retry)
    and the day's output is unchanged."""
    output = str(root / "examples" / "daily_revenue")
    day_rows = lambda: read_dataset(output, "segment, country, revenue, orders", f"dt = DATE '{TRIGGERED_DAY}'")  # noqa: E731
    before = day_rows()
    ((run_id,),) = _query(db, "SELECT run_id FROM dag_run WHERE dag_id = ? AND run_type = 'manual'", DAG_ID)
    for flags, cleared in (
        ([], {MIDDLE}),
        (["--downstream"], {MIDDLE, "daily_revenue.write_daily_revenue"}),
        (["--upstream"], {MIDDLE, "daily_revenue.orders_by_customer_id", "daily_revenue.customers_by_customer_id", "shop_data"}),
    ):
        tries = _tries(db, run_id)
        _airflow(env, ["tasks", "clear", DAG_ID, "-t", MIDDLE.split(".")[1], "-s", TRIGGERED_DAY, "-e", TRIGGERED_DAY, "--yes", *flags])

        def rerun_done() -> bool:
            now = _tries(db, run_id)
            _failed(db, log)
            return all(now[t][0] > tries[t][0] and now[t][1] == "success" for t in cleared)

        _wait(f"the clear {flags or 'alone'} to re-run {sorted(cleared)}", rerun_done, 240, log)
        untouched = {t: v for t, v in _tries(db, run_id).items() if t not in cleared}
        assert untouched == {t: v for t, v in tries.items() if t not in cleared}  # nothing else ran
        assert all(_tries(db, run_id)[t][0] == tries[t][0] + 1 for t in cleared)  # first try each: no retry
        assert day_rows() == before
    from pond_core.catalog import Catalog

    pond_run = next(r for r in Catalog(Catalog.default_url(str(root / "pond"))).list_runs() if "__manual__" in r["run_id"])
    assert pond_run["status"] == "success"


def _failed(db: Path, log: Path) -> bool:
    failed = _query(db, "SELECT dag_id, task_id, run_id FROM task_instance WHERE state = 'failed'")
    if failed:
        raise AssertionError(f"tasks failed: {failed}\n{log.read_text()[-6000:]}")
    return False


def test_cli_lists_the_provider_and_its_connection_form(tmp_path):
    env = _env(tmp_path)
    listing, form = _airflow(env, ["providers", "list", "-o", "json"], ["providers", "widgets", "-o", "json"])
    (pond,) = [p for p in json.loads(listing) if p["package_name"] == "airflow-provider-pond"]
    assert pond["version"] == "0.1.0"
    widgets = json.loads(form)
    names = {w["connection_parameter_name"] for w in widgets if w.get("package_name") == "airflow-provider-pond"}
    assert {"extra__pond__ray_address", "extra__pond__data_root", "extra__pond__catalog_url", "extra__pond__task_threads",
            "extra__pond__memory_limit", "extra__pond__s3_endpoint_url", "extra__pond__s3_region", "extra__pond__s3_access_key_id"} <= names
