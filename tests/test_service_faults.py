"""The pond service under faults, for real: a cancelled stage stops its Ray tasks; a replica
killed mid-stage (SIGKILL) is replaced and the stage finishes with nothing lost and nothing
committed twice; a client whose request reached the service but whose answer was lost retries
without starting a second attempt."""

from __future__ import annotations

import json
import pathlib
import shutil
import socket
import threading
import time
import uuid

import duckdb
import pytest

from pond_core.api import AttemptState, ServiceClient
from pond_core.plan.physical import PhysicalPlan
from tests.test_service import expected, plan_for, source, written  # noqa: F401  (source: a fixture)

pytestmark = pytest.mark.timeout(900)
SLOW = {"npartitions": 12, "burn": 40_000_000}  # about a second of CPU per task


@pytest.fixture
def client(pond_service):
    with ServiceClient(pond_service.url, pond_service.token, retry_seconds=120) as c:
        yield c


def task_records(data_root: str, run_id: str, stage_id: str) -> dict[int, dict]:
    folder = pathlib.Path(data_root) / "jobs" / run_id / "staging" / stage_id / "_tasks"
    records = {}
    for path in folder.glob("p*.json") if folder.exists() else ():
        record = json.loads(path.read_text())
        records[int(record["partition"])] = record
    return records


def running_worker_pids(pond_service) -> list[int]:
    return [pid for pid, cmd in pond_service.head.descendants() if "PondWorker.run" in cmd]


def running_tasks(pond_service) -> list[str]:
    """Warm pond workers of the service's cluster now running a task (their process title)."""
    return [cmd for _, cmd in pond_service.head.descendants() if "PondWorker.run" in cmd]


def start_slow_stage(client: ServiceClient, plan: PhysicalPlan, run_id: str, data_root: str, committed_at_least: int):
    """Run the first stage, submit the final one and return once some of its tasks committed."""
    client.submit(plan, run_id, plan.stages[0].name)
    assert client.wait(run_id, plan.stages[0].id).state is AttemptState.SUCCEEDED
    status = client.submit(plan, run_id, plan.final.name, settings={"task_threads": 1})
    deadline = time.monotonic() + 300
    while len(task_records(data_root, run_id, plan.final.id)) < committed_at_least:
        assert time.monotonic() < deadline, "the stage committed no task in 300 s"
        assert not client.status(run_id, plan.final.id).state.finished, "the stage finished before the fault"
        time.sleep(0.1)
    return status


def test_cancel_stops_the_stages_tasks_within_seconds(pond_service, client, source, tmp_path):  # noqa: F811
    output = str(tmp_path / "out")
    plan = plan_for(source, output, **SLOW)
    run_id = f"cancel-{uuid.uuid4().hex[:8]}"
    start_slow_stage(client, plan, run_id, pond_service.data_root, committed_at_least=1)
    asked = time.monotonic()
    cancelling = client.cancel(run_id, plan.final.id)
    assert cancelling.state in (AttemptState.CANCELLING, AttemptState.CANCELLED)
    final = client.wait(run_id, plan.final.id, poll_interval=0.05)
    stopped_after = time.monotonic() - asked
    assert final.state is AttemptState.CANCELLED and final.error is not None and "interrupted" in final.error.message
    # The stage's tasks are gone from the cluster: no warm worker runs one any more.
    deadline = time.monotonic() + 10
    while running_tasks(pond_service) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running_tasks(pond_service) == []
    gone_after = time.monotonic() - asked
    committed = task_records(pond_service.data_root, run_id, plan.final.id)
    assert 0 < len(committed) < SLOW["npartitions"]
    time.sleep(3)
    assert task_records(pond_service.data_root, run_id, plan.final.id) == committed  # nothing committed after the cancel
    print(f"cancel: attempt cancelled after {stopped_after:.2f}s, no task running after {gone_after:.2f}s")
    # Submitting again resumes: the partitions committed before the cancel are kept.
    client.submit(plan, run_id, plan.final.name)
    assert client.wait(run_id, plan.final.id).state is AttemptState.SUCCEEDED
    after = task_records(pond_service.data_root, run_id, plan.final.id)
    assert {p: after[p]["attempt"] for p in committed} == {p: r["attempt"] for p, r in committed.items()}
    assert written(output) == expected(source)


@pytest.mark.parametrize("resumed_by", ["service", "client"])
def test_a_replica_killed_mid_stage_loses_and_duplicates_nothing(pond_service, client, source, tmp_path, resumed_by):  # noqa: F811
    """service: the new replica resumes the saved submission, the client only polls; client: the
    saved submission is gone, the new replica answers `unknown` and the client submits again."""
    output = str(tmp_path / "out")
    plan = plan_for(source, output, **SLOW)
    run_id = f"kill-{uuid.uuid4().hex[:8]}"
    first = start_slow_stage(client, plan, run_id, pond_service.data_root, committed_at_least=2)
    before = task_records(pond_service.data_root, run_id, plan.final.id)
    orphans = running_worker_pids(pond_service)
    assert orphans, "no task of the stage was running at the kill"
    killed = pond_service.kill_replica()
    killed_at = time.monotonic()
    # The dead replica's tasks stop too: their warm workers see their driver (an actor) is gone.
    while set(orphans) & set(running_worker_pids(pond_service)) and time.monotonic() - killed_at < 15:
        time.sleep(0.2)
    assert not set(orphans) & set(running_worker_pids(pond_service))
    orphans_gone_after = time.monotonic() - killed_at
    if resumed_by == "client":
        shutil.rmtree(pathlib.Path(pond_service.data_root) / "_service" / "submissions")
    # Poll as an orchestrator does; if the new replica did not resume it, the client submits again.
    lines: list[str] = []
    again = {"plan": plan, "settings": {"task_threads": 1}} if resumed_by == "client" else None
    final = client.wait(run_id, plan.final.id, poll_interval=0.2, on_log=lines.append, submit_again=again)
    assert final.state is AttemptState.SUCCEEDED, final.error
    assert final.attempt != first.attempt and killed not in pond_service.replica_pids()
    after = task_records(pond_service.data_root, run_id, plan.final.id)
    # 0 lost: every partition committed; 0 duplicated: what was committed before the kill was kept
    # (same attempt, same files), and the dataset holds exactly DuckDB's rows, one file per partition.
    assert sorted(after) == list(range(SLOW["npartitions"]))
    assert {p: (after[p]["attempt"], after[p]["files"]) for p in before} == {p: (r["attempt"], r["files"]) for p, r in before.items()}
    assert written(output) == expected(source)
    files = sorted(pathlib.Path(output).rglob("*.parquet"))
    assert len(files) == sum(len(r["files"]) for r in after.values()) == final.result.files
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{output}/**/*.parquet')").fetchone()[0] == 50
    assert any("taking over from" in line and "whose lease went stale" in line for line in lines), lines
    print(f"kill (resumed by the {resumed_by}): {len(before)} of {SLOW['npartitions']} partitions committed before the kill; its {len(orphans)} running tasks "
          f"stopped {orphans_gone_after:.1f}s after it; the stage finished {time.monotonic() - killed_at:.1f}s after it")


class DroppingProxy:
    """A TCP proxy on 127.0.0.1 that forwards the first `POST /v1/stages` to the service, waits
    for its answer, and closes the client's connection without passing the answer on (the
    network fault after the request arrived); everything else passes both ways."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.submits = 0
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        first = conn.recv(1 << 20)
        if first.startswith(b"POST /v1/stages "):
            self.submits += 1
            if self.dropped == 0:
                self.dropped += 1
                upstream.sendall(first)
                while b"Content-Length" in first and len(first.split(b"\r\n\r\n", 1)[1]) < _length(first):
                    more = conn.recv(1 << 20)
                    upstream.sendall(more)
                    first += more
                upstream.recv(1 << 20)  # the service answered: the attempt exists
                conn.close()
                upstream.close()
                return
        upstream.sendall(first)
        threading.Thread(target=_pipe, args=(conn, upstream), daemon=True).start()
        _pipe(upstream, conn)

    def close(self) -> None:
        self.server.close()


def _length(head: bytes) -> int:
    for line in head.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(1 << 16):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_a_retry_after_a_lost_answer_attaches_instead_of_starting_again(pond_service, client, source, tmp_path):  # noqa: F811
    output = str(tmp_path / "out")
    plan = plan_for(source, output, npartitions=4, burn=20_000_000)
    run_id = f"netfault-{uuid.uuid4().hex[:8]}"
    client.submit(plan, run_id, plan.stages[0].name)
    assert client.wait(run_id, plan.stages[0].id).state is AttemptState.SUCCEEDED
    proxy = DroppingProxy(pond_service.port)
    try:
        with ServiceClient(f"http://127.0.0.1:{proxy.port}", pond_service.token, retry_seconds=60) as flaky:
            status = flaky.submit(plan, run_id, plan.final.name)
    finally:
        proxy.close()
    assert proxy.dropped == 1 and proxy.submits == 2  # the answer to the first was lost; the client sent it again
    assert status.attached or status.state is AttemptState.SUCCEEDED
    lines: list[str] = []
    final = client.wait(run_id, plan.final.id, on_log=lines.append)
    assert final.state is AttemptState.SUCCEEDED and final.attempt == status.attempt
    starts = [line for line in lines if f"pond stage {plan.final.name} starts" in line]
    assert len(starts) == 1, lines
    assert written(output) == expected(source)


def test_a_stage_another_driver_holds_waits_for_it_and_then_answers(pond_service, client, source, tmp_path):  # noqa: F811
    from pond_core.api import open_catalog
    from pond_core.recorder import driver_name
    from pond_core.settings import Settings

    output = str(tmp_path / "out")
    plan = plan_for(source, output)
    run_id = f"held-{uuid.uuid4().hex[:8]}"
    client.submit(plan, run_id, plan.stages[0].name)
    assert client.wait(run_id, plan.stages[0].id).state is AttemptState.SUCCEEDED
    holder = driver_name()  # this test process: alive, so its lease is not stale
    settings = Settings.resolve(data_root=pond_service.data_root, catalog_url=pond_service.catalog_url)
    with open_catalog(settings) as catalog:
        catalog.acquire_stage_lease(run_id, plan.final.id, holder, plan.final.name)
        try:
            client.submit(plan, run_id, plan.final.name)
            lines: list[str] = []
            deadline = time.monotonic() + 120
            while not any("waiting for it to end" in line for line in lines):
                status = client.status(run_id, plan.final.id, log_offset=len(lines))
                lines.extend(status.logs)
                assert status.state is AttemptState.RUNNING and time.monotonic() < deadline, (status, lines)
                time.sleep(0.2)
            assert any(holder in line for line in lines)
            again = client.submit(plan, run_id, plan.final.name)
            assert again.attached and again.state is AttemptState.RUNNING
        finally:
            catalog.release_stage_lease(run_id, plan.final.id, holder)
    final = client.wait(run_id, plan.final.id)
    assert final.state is AttemptState.SUCCEEDED, final.error
    assert written(output) == expected(source)


def test_pond_serve_stops_cleanly_and_the_next_one_knows_committed_stages(pond_service, client, source, tmp_path):  # noqa: F811
    import httpx

    output = str(tmp_path / "out")
    plan = plan_for(source, output)
    run_id = f"restart-{uuid.uuid4().hex[:8]}"
    for stage in plan.stages:
        client.submit(plan, run_id, stage.name)
        assert client.wait(run_id, stage.id).state is AttemptState.SUCCEEDED
    assert pond_service.stop() == 0  # SIGTERM: the app is deleted and Serve stopped, so the port is free
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{pond_service.url}/v1/health", timeout=5)
    assert "pond service: stopping" in pond_service.log.read_text()
    pond_service.start()
    status = client.status(run_id, plan.final.id)
    assert status.state is AttemptState.SUCCEEDED and status.result is not None and status.result.rows == 50
    assert client.status(run_id, "no-such-stage").state is AttemptState.UNKNOWN
