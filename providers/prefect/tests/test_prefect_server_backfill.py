"""Against a real `prefect server start`: serve the daily pipeline's deployment, backfill 3 days.

Everything this test starts (the server, the serving runner and the flow-run processes the
runner spawns) is started and stopped by PID, and checked gone at the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import psutil
import pytest

from conftest import DAYS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DEPLOYMENT = "pond-daily-revenue/daily"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Started:
    """A process this test started, stopped with all of its descendants."""

    def __init__(self, args: list[str], env: dict[str, str], log: str) -> None:
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.seen: dict[int, psutil.Process] = {}

    def track(self) -> None:
        """Remember descendants while they live: a stopped parent can no longer name them."""
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            pass

    def stop(self) -> None:
        self.track()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        alive = [p for p in self.seen.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        for p in alive:
            p.terminate()
        _, alive = psutil.wait_procs(alive, timeout=15)
        for p in alive:
            p.kill()
        psutil.wait_procs(alive, timeout=10)
        self.log.close()

    def gone(self) -> bool:
        procs = [psutil.Process(self.proc.pid)] if psutil.pid_exists(self.proc.pid) else []
        procs += list(self.seen.values())
        return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)


def wait_until(check, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    base = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(base / "home"), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false")
    server = Started(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, str(base / "server.log")
    )
    started = [server]
    try:
        wait_until(lambda: server.proc.poll() is not None or healthy(api), 120, "prefect server health")
        assert server.proc.poll() is None, (base / "server.log").read_text()
        examples = base / "examples"
        runner_env = {
            **env,
            "PREFECT_HOME": str(base / "runner-home"),
            "PREFECT_API_URL": api,
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "POND_EXAMPLES_ROOT": str(examples),
            "POND_DATA_ROOT": str(base / "pond"),
        }
        runner = Started([sys.executable, os.path.join(REPO, "flows", "daily_revenue.py"), "serve"], runner_env, str(base / "runner.log"))
        started.append(runner)
        yield {
            "api": api,
            "env": runner_env,
            "runner": runner,
            "dataset": str(examples / "prefect" / "daily_revenue"),
            "pond_root": str(base / "pond"),
            "logs": base,
        }
    finally:
        for process in reversed(started):
            process.stop()
        assert all(p.gone() for p in started), "a process this test started is still running"


def test_backfill_three_days_through_a_served_deployment(server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterTags
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from pond_core.catalog import Catalog
    from pond_prefect import PondConfig, backfill

    config = PondConfig(data_root=server["pond_root"])
    with temporary_settings(updates={PREFECT_API_URL: server["api"]}):
        with get_client(sync_client=True) as client:
            deployment = wait_until(lambda: _deployment(client), 120, "the served deployment", every=1.0)

        first = backfill(DEPLOYMENT, DAYS[0], DAYS[-1], dataset=server["dataset"], config=config)
        assert sorted(first.runs) == DAYS and first.skipped == []
        again = backfill(DEPLOYMENT, DAYS[0], DAYS[-1], dataset=server["dataset"], config=config)
        for day in DAYS:  # a repeated request: the same run, or nothing once that day is committed
            assert day in again.skipped or again.runs[day].id == first.runs[day].id

        server["runner"].track()
        states = first.wait(timeout=300, poll=1.0)
        server["runner"].track()
        assert {day: s.name for day, s in states.items()} == {day: "Completed" for day in DAYS}, _tail(server["logs"] / "runner.log")

        catalog = Catalog(Catalog.default_url(server["pond_root"]))
        assert sorted(p["key"] for p in catalog.list_partitions(server["dataset"])) == [f"dt={d}" for d in DAYS]
        for day in DAYS:
            assert any(name.endswith(".parquet") for name in os.listdir(os.path.join(server["dataset"], f"dt={day}")))

        third = backfill(DEPLOYMENT, DAYS[0], DAYS[-1], dataset=server["dataset"], config=config)
        assert third.runs == {} and third.skipped == DAYS
        cli = subprocess.run(
            [sys.executable, os.path.join(REPO, "flows", "daily_revenue.py"), "backfill", DAYS[0], DAYS[-1]],
            env=server["env"], capture_output=True, text=True, timeout=120,
        )
        assert cli.returncode == 0, cli.stderr
        assert [line for line in cli.stdout.splitlines() if line.endswith("committed, skipped")] == [f"{d}: committed, skipped" for d in DAYS]
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["pond-backfill"])),
            )
        assert len(runs) == 3


def _deployment(client):
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(DEPLOYMENT)
    except ObjectNotFound:
        return None


def _tail(path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
