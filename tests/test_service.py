"""The pond service, for real: a Ray head started with `ray start`, `pond serve` on it, and
clients over HTTP (tests/service_rig.py). Tokens, exact results against plain DuckDB, attach,
committed stages, log lines by offset, run close and clean-up, the async client."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import pathlib
import uuid

import duckdb
import httpx
import pytest

from pond_core.api import (
    AsyncServiceClient,
    AttemptState,
    PondConfigError,
    PondServiceAuthError,
    ServiceClient,
    compile_pipeline,
    open_catalog,
)
from pond_core.settings import Settings

pytestmark = pytest.mark.timeout(600)


def numbers(sp, source: str, output: str, npartitions: int = 4, burn: int = 0):
    """Sum and count of v by k, written as a dataset; `burn` makes each task spend CPU."""
    by_key = sp.read_parquet(f"{source}/*.parquet").repartition(npartitions, hash_by="k")
    totals = sp.partial_sql(
        f"SELECT k, sum(v)::BIGINT AS total, count(*)::BIGINT AS n, (SELECT sum(x * x % 7) FROM range({burn}) r(x)) * 0 AS burnt "
        "FROM {0} GROUP BY k",
        by_key,
    )
    return totals.sink_parquet(output, mode="overwrite")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("service-source")
    con = duckdb.connect()
    for i in range(4):
        con.execute(
            f"COPY (SELECT (i * 7 + {i}) % 50 AS k, i + {i * 1000} AS v FROM range(5000) t(i)) TO '{root}/part-{i}.parquet' (FORMAT parquet)"
        )
    return root


@pytest.fixture
def client(pond_service):
    with ServiceClient(pond_service.url, pond_service.token) as c:
        yield c


def expected(source: pathlib.Path) -> list[tuple]:
    return duckdb.sql(f"SELECT k, sum(v)::BIGINT, count(*)::BIGINT FROM read_parquet('{source}/*.parquet') GROUP BY k ORDER BY k").fetchall()


def written(output: str) -> list[tuple]:
    return duckdb.sql(f"SELECT k, total, n FROM read_parquet('{output}/**/*.parquet') ORDER BY k").fetchall()


def plan_for(source: pathlib.Path, output: str, **params):
    return compile_pipeline(numbers, {"source": str(source), "output": output, **params})


def run_all(client: ServiceClient, plan, run_id: str, **kwargs) -> list:
    """Every stage of `plan`, one submission each in order, as an orchestrator does."""
    statuses = []
    for stage in plan.stages:
        client.submit(plan, run_id, stage.name, **kwargs)
        statuses.append(client.wait(run_id, stage.id, poll_interval=0.1))
    return statuses


# -- health and tokens ---------------------------------------------------------------------


def test_health_needs_no_token_and_tells_only_the_version(pond_service):
    answer = httpx.get(f"{pond_service.url}/v1/health")
    assert answer.status_code == 200 and answer.json() == {"status": "ok", "version": "0.1.0"}
    assert ServiceClient(pond_service.url, None).health() == {"status": "ok", "version": "0.1.0"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/stages/r1/s1", None),
        ("POST", "/v1/stages", {"plan": {}, "run_id": "r1", "stage": "s"}),
        ("POST", "/v1/stages/r1/s1/cancel", None),
        ("POST", "/v1/runs/r1/close", {"status": "failed"}),
        ("POST", "/v1/runs/r1/drop-intermediates", None),
    ],
)
def test_every_route_but_health_needs_the_token(pond_service, method, path, body):
    wrong = "not-the-token-" + uuid.uuid4().hex
    for headers, message in (
        ({}, "requires a token: send the header 'Authorization: Bearer <token>'"),
        ({"Authorization": f"Bearer {wrong}"}, "the token is not valid for this pond service"),
        ({"Authorization": f"Basic {wrong}"}, "must be 'Bearer <token>'"),
    ):
        answer = httpx.request(method, f"{pond_service.url}{path}", json=body, headers=headers)
        assert answer.status_code == 401, answer.text
        assert message in answer.json()["error"]
        assert wrong not in answer.text and pond_service.token not in answer.text
    assert wrong not in pond_service.logs()


def test_the_client_says_which_service_refused_and_never_the_token(pond_service):
    wrong = "wrong-" + uuid.uuid4().hex
    with pytest.raises(PondServiceAuthError, match=f"the pond service at {pond_service.url} refused the token") as caught:
        ServiceClient(pond_service.url, wrong).status("r1", "s1")
    assert wrong not in str(caught.value) and not caught.value.__class__.__name__.startswith("PondTransient")
    assert isinstance(caught.value, PondConfigError)  # not retryable: fix the connection


def test_the_token_never_reaches_a_log_or_an_answer(pond_service, client, source, tmp_path):
    plan = plan_for(source, str(tmp_path / "out"))
    statuses = run_all(client, plan, f"tok-{uuid.uuid4().hex[:8]}")
    assert all(s.state is AttemptState.SUCCEEDED for s in statuses)
    assert pond_service.token not in pond_service.logs()
    assert all(pond_service.token not in str(s.to_dict()) for s in statuses)


# -- running stages ------------------------------------------------------------------------


def test_stages_submitted_one_by_one_give_duckdbs_exact_result(client, source, tmp_path):
    output = str(tmp_path / "out")
    plan = plan_for(source, output)
    run_id = f"exact-{uuid.uuid4().hex[:8]}"
    statuses = run_all(client, plan, run_id, settings={"max_retries": 1, "task_threads": 1})
    assert [s.state for s in statuses] == [AttemptState.SUCCEEDED] * len(plan.stages)
    final = statuses[-1]
    assert final.result is not None and final.result.rows == 50 and final.result.stage == plan.final.name
    assert final.result.executor == "ray"
    assert written(output) == expected(source)
    assert final.running_at is not None and final.submitted_at <= final.running_at <= (final.finished_at or 0)


def test_a_stage_whose_upstream_is_missing_recomputes_it_first(client, source, tmp_path):
    output = str(tmp_path / "out")
    plan = plan_for(source, output)
    run_id = f"upstream-{uuid.uuid4().hex[:8]}"
    client.submit(plan, run_id, plan.final.name)
    status = client.wait(run_id, plan.final.id)
    assert status.state is AttemptState.SUCCEEDED, status.error
    upstream = [s for s in plan.stages if s is not plan.final]
    assert list(status.recomputed) == [s.name for s in upstream]
    assert set(status.upstream_results) == {s.id for s in upstream}
    assert written(output) == expected(source)


def test_log_lines_arrive_in_order_by_offset(client, source, tmp_path):
    plan = plan_for(source, str(tmp_path / "out"))
    run_id = f"logs-{uuid.uuid4().hex[:8]}"
    lines: list[str] = []
    for stage in plan.stages:
        client.submit(plan, run_id, stage.name)
        client.wait(run_id, stage.id, on_log=lines.append)
    final_lines = [line for line in lines if plan.final.name in line]
    assert any(f"pond stage {plan.final.name} starts" in line for line in final_lines), lines
    assert any(f"pond stage {plan.final.name} done in" in line for line in final_lines), lines
    everything = client.status(run_id, plan.final.id)
    assert everything.log_offset == len(everything.logs) >= 2
    tail = client.status(run_id, plan.final.id, log_offset=1)
    assert list(tail.logs) == list(everything.logs[1:]) and tail.log_offset == everything.log_offset
    assert client.status(run_id, plan.final.id, log_offset=everything.log_offset).logs == ()


def test_submitting_a_running_stage_again_attaches_to_its_attempt(client, source, tmp_path):
    plan = plan_for(source, str(tmp_path / "out"), npartitions=6, burn=20_000_000)
    run_id = f"attach-{uuid.uuid4().hex[:8]}"
    first_stage = plan.stages[0]
    client.submit(plan, run_id, first_stage.name)
    client.wait(run_id, first_stage.id)
    with cf.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: client.submit(plan, run_id, plan.final.name), range(8)))
    assert len({s.attempt for s in statuses}) == 1
    assert sorted(s.attached for s in statuses) == [False] + [True] * 7
    done = client.wait(run_id, plan.final.id)
    assert done.state is AttemptState.SUCCEEDED and done.attempt == statuses[0].attempt


def test_a_committed_stage_answers_succeeded_from_the_submission(client, source, tmp_path):
    output = str(tmp_path / "out")
    plan = plan_for(source, output)
    run_id = f"committed-{uuid.uuid4().hex[:8]}"
    first = run_all(client, plan, run_id)[-1]
    again = client.submit(plan, run_id, plan.final.name)
    assert again.state is AttemptState.SUCCEEDED and not again.attached
    assert again.result is not None and again.result.rows == first.result.rows
    assert any("already committed, reused" in line for line in again.logs), again.logs
    assert written(output) == expected(source)


def test_a_status_of_an_attempt_the_service_never_ran_is_unknown(client):
    status = client.status(f"never-{uuid.uuid4().hex[:8]}", "abc123")
    assert status.state is AttemptState.UNKNOWN and status.result is None


@pytest.mark.parametrize("name", ["data_root", "catalog_url", "executor", "s3_secret_access_key"])
def test_a_request_naming_a_location_or_secret_is_refused_naming_it(pond_service, source, tmp_path, name):
    plan = plan_for(source, str(tmp_path / "out"))
    body = {"plan": plan.to_dict(), "run_id": "refused", "stage": plan.final.name, "settings": {name: "x"}}
    answer = httpx.post(f"{pond_service.url}/v1/stages", json=body, headers={"Authorization": f"Bearer {pond_service.token}"})
    assert answer.status_code == 400
    assert f"setting '{name}' cannot be sent to the service" in answer.json()["error"]


def test_a_bad_plan_or_stage_is_a_400_that_says_so(pond_service, client, source, tmp_path):
    plan = plan_for(source, str(tmp_path / "out"))
    with pytest.raises(PondConfigError, match="no stage 'nope' in this plan"):
        client.submit(plan, "bad-stage", "nope")
    tampered = plan.to_dict()
    tampered["stages"][0]["npartitions"] = 99
    with pytest.raises(PondConfigError, match="HTTP 400.*the plan cannot be read: plan checksum does not match"):
        client.submit(tampered, "bad-plan", plan.final.name)


def test_close_run_and_drop_intermediates(pond_service, client, source, tmp_path):
    output = str(tmp_path / "out")
    plan = plan_for(source, output)
    run_id = f"close-{uuid.uuid4().hex[:8]}"
    run_all(client, plan, run_id)
    staging = pathlib.Path(pond_service.data_root) / "jobs" / run_id
    assert staging.exists()
    client.close_run(run_id, "failed", error="the orchestrator gave up")
    with open_catalog(Settings.resolve(data_root=pond_service.data_root, catalog_url=pond_service.catalog_url)) as catalog:
        run = catalog.get_run(run_id)
    assert run["status"] == "failed" and run["error"] == "the orchestrator gave up"
    client.drop_intermediates(run_id)
    assert written(output) == expected(source)  # the sink stays
    assert not any(p.suffix == ".parquet" for p in staging.rglob("*")), sorted(staging.rglob("*"))


def test_the_async_client_waits_without_a_thread(pond_service, source, tmp_path):
    output = str(tmp_path / "out")
    plan = plan_for(source, output)
    run_id = f"async-{uuid.uuid4().hex[:8]}"

    async def go() -> list:
        async with AsyncServiceClient(pond_service.url, pond_service.token) as aclient:
            out = []
            for stage in plan.stages:
                await aclient.submit(plan, run_id, stage.name)
                out.append(await aclient.wait(run_id, stage.id, poll_interval=0.1))
            return out

    statuses = asyncio.run(go())
    assert [s.state for s in statuses] == [AttemptState.SUCCEEDED] * len(plan.stages)
    assert written(output) == expected(source)


def test_each_attempts_log_holds_its_own_lines_only(client, source, tmp_path):
    """Two runs' stages at once: every line (the runner logs from threads it starts) reaches
    the attempt that caused it, and only that one."""
    runs = {f"pair{i}-{uuid.uuid4().hex[:6]}": str(tmp_path / f"out{i}") for i in range(2)}
    plans = {run_id: plan_for(source, output, npartitions=3, burn=5_000_000) for run_id, output in runs.items()}
    for run_id, plan in plans.items():
        client.submit(plan, run_id, plan.stages[0].name)
    for run_id, plan in plans.items():
        assert client.wait(run_id, plan.stages[0].id).state is AttemptState.SUCCEEDED
    for run_id, plan in plans.items():
        client.submit(plan, run_id, plan.final.name)
    logs = {}
    for run_id, plan in plans.items():
        lines: list[str] = []
        assert client.wait(run_id, plan.final.id, on_log=lines.append).state is AttemptState.SUCCEEDED
        logs[run_id] = lines
    for run_id, lines in logs.items():
        own = runs[run_id]
        other = next(o for r, o in runs.items() if r != run_id)
        assert any(own in line for line in lines), lines
        assert not any(other in line for line in lines), lines
