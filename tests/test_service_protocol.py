"""The pond service's wire types: JSON round trips, request checks, and the client's own checks
(no service needed: what is refused is refused before the network)."""

from __future__ import annotations

import json

import pytest

from pond_core.api import AttemptState, PondConfigError, ServiceClient, ServiceError, StageStatus
from pond_core.checks import CheckKind, CheckResult, Severity
from pond_core.execute.results import StageResult
from pond_core.service.protocol import RUN_TUNABLES, CloseRunRequest, StageRequest, check_tunables
from pond_core.settings import BY_NAME, SettingValues, Surface


def _result() -> StageResult:
    return StageResult(
        run_id="r1", stage_id="abc", stage="write_x", output_kind="sink", location="/tmp/x", npartitions=2, files=2,
        rows=10, bytes=100, schema=(("a", "BIGINT"),), started_at=1.0, finished_at=2.0, seconds=1.0, inputs=(), executor="ray",
    )


def test_stage_status_round_trips_through_json():
    check = CheckResult("rows", CheckKind("row_count"), Severity("error"), False, 0, "0 rows")
    status = StageStatus(
        attempt="a1", run_id="r1", stage_id="abc", stage="write_x", state=AttemptState.FAILED, attached=True,
        result=_result(), error=ServiceError("PondCheckError", "checks failed", False, (check,)),
        logs=("one", "two"), log_offset=7, recomputed=("up",), upstream_results={"def": _result()},
        submitted_at=1.5, running_at=1.6, finished_at=None,
    )
    wire = json.loads(json.dumps(status.to_dict()))
    assert wire["state"] == "failed" and wire["error"]["checks"][0]["name"] == "rows"
    assert StageStatus.from_dict(wire) == status


def test_attempt_states_say_which_are_live_and_which_finished():
    assert {s.value for s in AttemptState if s.finished} == {"succeeded", "failed", "cancelled"}
    assert {s.value for s in AttemptState if s.live} == {"queued", "running", "cancelling"}
    assert not AttemptState.UNKNOWN.live and not AttemptState.UNKNOWN.finished


def test_stage_request_round_trips_and_parses_tunables():
    request = StageRequest.from_dict(
        {"plan": {"stages": []}, "run_id": "r1", "stage": "s", "settings": {"memory_limit": "1GB", "task_memory": "2GB", "speculation": "false"}}
    )
    # task_memory is the old name of memory_limit: the later one wins, both parse to bytes
    assert request.settings == {"memory_limit": 2_000_000_000, "speculation": False}
    assert request.recompute_upstream is True and request.force is False and request.lineage_scope is None
    assert StageRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request


@pytest.mark.parametrize("name", ["data_root", "catalog_url", "executor", "ray_address", "s3_secret_access_key", "service_token", "spill_dir"])
def test_a_request_may_not_set_locations_executors_or_secrets(name):
    with pytest.raises(PondConfigError, match=f"setting '{name}' cannot be sent to the service"):
        check_tunables({name: "x"})


def test_an_unknown_setting_is_named_with_a_suggestion():
    with pytest.raises(PondConfigError, match="unknown setting 'max_retrys'; did you mean max_retries"):
        check_tunables({"max_retrys": 3})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body must be a JSON object"),
        ({"run_id": "r", "stage": "s"}, "field 'plan' is missing"),
        ({"plan": {}, "run_id": 3, "stage": "s"}, "field 'run_id' must be a string, not int"),
        ({"plan": {}, "run_id": "r", "stage": "s", "force": "yes"}, "field 'force' must be true or false, not str"),
        ({"plan": {}, "run_id": "r", "stage": "s", "colour": 1}, "unknown field 'colour'"),
        ({"plan": {}, "run_id": "r", "stage": "s", "settings": {"task_threads": "many"}}, "task_threads = 'many' is invalid"),
    ],
)
def test_a_bad_request_is_a_clear_error(body, message):
    with pytest.raises(PondConfigError, match=message):
        StageRequest.from_dict(body)


def test_close_run_request_accepts_only_success_or_failed():
    assert CloseRunRequest.from_dict({"status": "failed", "error": "boom"}) == CloseRunRequest("failed", "boom")
    with pytest.raises(PondConfigError, match="status must be 'success' or 'failed', not 'done'"):
        CloseRunRequest.from_dict({"status": "done"})


def test_service_settings_are_connection_settings_and_the_token_a_secret():
    assert Surface.CONNECTION in BY_NAME["service_url"].surfaces and Surface.CLI in BY_NAME["service_url"].surfaces
    assert BY_NAME["service_token"].secret
    values = SettingValues.parse({"service_url": "http://h:1", "service_token": "s3cr3t", "data_root": "/d"}, "test")
    assert "s3cr3t" not in repr(values) and values.public()["service_token"] == "***"
    assert "s3cr3t" in values.secrets()
    # init() takes session settings only: the service's URL and token are not among them
    assert set(values.init_kwargs()) == {"data_root", "storage_options"}


def test_run_tunables_are_declared_settings():
    assert all(name in BY_NAME and not BY_NAME[name].secret for name in RUN_TUNABLES)


def test_the_client_refuses_what_the_service_would_before_calling_it():
    client = ServiceClient("http://127.0.0.1:9", "tok", retry_seconds=0)
    with pytest.raises(PondConfigError, match="setting 'data_root' cannot be sent"):
        client.submit({"stages": []}, "r1", "s", settings={"data_root": "/elsewhere"})
    with pytest.raises(PondConfigError, match="not plan JSON"):
        client.submit("{not json", "r1", "s")
    with pytest.raises(PondConfigError, match="must look like http://host:port"):
        ServiceClient("localhost:8000", "tok")
    assert "tok" not in repr(client)


def test_an_unreachable_service_is_a_retryable_error_naming_the_url_not_the_token():
    import socket

    from pond_core.api import PondServiceUnavailableError, is_retryable

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ServiceClient(f"http://127.0.0.1:{port}", "tok-very-secret", retry_seconds=0.5)
    with pytest.raises(PondServiceUnavailableError) as caught:
        client.status("r1", "abc")
    assert is_retryable(caught.value)
    assert f"http://127.0.0.1:{port}" in str(caught.value) and "tok-very-secret" not in str(caught.value)
