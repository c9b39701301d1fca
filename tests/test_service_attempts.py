"""The service's attempt table and log capture in one process, without HTTP or Ray: the parts
whose timing the end-to-end tests cannot steer (a queued attempt, a full log buffer, threads)."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest

from pond_core.api import AttemptState, compile_pipeline, open_catalog
from pond_core.execute.executors import LocalExecutor
from pond_core.io.options import StorageOptions
from pond_core.service import logs
from pond_core.service.attempts import StageService
from pond_core.service.protocol import StageRequest
from pond_core.service.submissions import Submissions
from pond_core.settings import Settings
from tests.test_service import numbers, source  # noqa: F401  (source: a fixture)


def test_a_log_buffer_serves_by_offset_and_says_what_it_dropped():
    buffer = logs.LogBuffer(max_lines=3)
    for i in range(5):
        buffer.append(f"line {i}")
    assert buffer.read(3) == (["line 3", "line 4"], 5)
    lines, offset = buffer.read(0)
    assert lines == ["[pond service: 2 earlier log lines were dropped]", "line 2", "line 3", "line 4"] and offset == 5
    assert buffer.read(5) == ([], 5) and buffer.read(99) == ([], 5)
    assert buffer.read(2, limit=1) == (["line 2"], 3)


def test_threads_started_by_an_attempt_log_into_it_and_secrets_are_masked():
    level = logging.getLogger("pond").level
    handlers = logs.install(secrets=["hunter2-secret"])
    try:
        mine, other = logs.LogBuffer(), logs.LogBuffer()
        log = logging.getLogger("pond.test")

        def attempt(buffer: logs.LogBuffer, name: str) -> None:
            logs.tag_thread(buffer)
            child = threading.Thread(target=lambda: log.info("child of %s, password hunter2-secret", name))
            child.start()
            child.join()
            log.info("%s itself", name)

        threads = [threading.Thread(target=attempt, args=(b, n)) for b, n in ((mine, "mine"), (other, "other"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        log.info("nobody's")
        texts = {name: [line.split(": ", 1)[1] for line in b.read(0)[0]] for name, b in (("mine", mine), ("other", other))}
        assert texts == {"mine": ["child of mine, password ***", "mine itself"], "other": ["child of other, password ***", "other itself"]}
    finally:
        for handler in handlers:
            logging.getLogger("pond").removeHandler(handler)
        logging.getLogger("pond").setLevel(level)


@pytest.fixture
def service(tmp_path):
    settings = Settings.resolve(job_id="svc", data_root=str(tmp_path / "data"), catalog_url=f"sqlite:///{tmp_path}/catalog.sqlite")
    executor = LocalExecutor(2)
    with open_catalog(settings) as catalog:
        svc = StageService(
            settings, StorageOptions(), catalog, executor, submissions=Submissions(settings.data_root, None), max_running=1
        )
        yield svc
        svc.shutdown()
        executor.shutdown()


def _request(plan, run_id: str, stage: str) -> StageRequest:
    return StageRequest(plan=plan.to_dict(), run_id=run_id, stage=stage)


def _wait(svc: StageService, run_id: str, stage_id: str, timeout: float = 120) -> AttemptState:
    deadline = time.monotonic() + timeout
    while not (state := svc.status(run_id, stage_id).state).finished:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return state


def test_a_queued_attempt_is_cancelled_at_once_and_its_saved_submission_goes(service, source, tmp_path):  # noqa: F811
    slow = compile_pipeline(numbers, {"source": str(source), "output": str(tmp_path / "slow"), "npartitions": 2, "burn": 20_000_000})
    quick = compile_pipeline(numbers, {"source": str(source), "output": str(tmp_path / "quick")})
    busy, waiting = f"busy-{uuid.uuid4().hex[:6]}", f"waiting-{uuid.uuid4().hex[:6]}"
    service.submit(_request(slow, busy, slow.final.name))  # its upstream stage first, then the slow one
    queued = service.submit(_request(quick, waiting, quick.stages[0].name))
    assert queued.state is AttemptState.QUEUED  # one slot, taken by the first
    assert len(service.submissions.load()) == 2
    asked = time.monotonic()
    assert service.cancel(waiting, quick.stages[0].id).state is AttemptState.CANCELLING
    assert _wait(service, waiting, quick.stages[0].id, timeout=5) is AttemptState.CANCELLED
    assert time.monotonic() - asked < 5 and service.status(busy, slow.final.id).state is AttemptState.RUNNING
    assert [r.run_id for r in service.submissions.load()] == [busy]
    assert _wait(service, busy, slow.final.id) is AttemptState.SUCCEEDED
    assert service.submissions.load() == []
