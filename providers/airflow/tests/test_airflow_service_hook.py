"""A `pond` connection naming a pond service: what the hook makes of it (no service needed).

The password is the service's token (never an S3 secret then), only run tunables may sit next
to `service_url`, the token is masked and never in a repr, a serialized trigger or a message;
the connection form offers `service_url` and keeps the token in the password field.
"""

from __future__ import annotations

import json

import pytest

from pond_airflow.get_provider_info import get_provider_info
from pond_airflow.hooks.pond import PondHook, scrub
from pond_core import api

TOKEN = "tok-5d1e-very-secret"
URL = "http://127.0.0.1:9"  # nothing listens on the discard port


def _conn(monkeypatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "pond", **fields}))


def test_service_connection_gives_a_client_with_the_password_as_token(monkeypatch):
    _conn(monkeypatch, "pond_svc", password=TOKEN, extra={"service_url": URL, "memory_limit": "2GB", "task_threads": 3})
    hook = PondHook("pond_svc")
    assert hook.service is not None and hook.service.url == URL and hook.service.token == TOKEN
    assert hook.settings.service_settings() == {"memory_limit": 2_000_000_000, "task_threads": 3}
    assert hook.settings.s3_secret_access_key is None  # the password is the token, not an S3 secret
    assert TOKEN in hook.settings.secrets()  # masked in task logs
    assert TOKEN not in repr(hook.settings) and TOKEN not in repr(hook.service)
    with hook.service_client() as client:
        assert isinstance(client, api.ServiceClient) and client.url == URL and TOKEN not in repr(client)
    assert scrub(f"refused {TOKEN}", hook.settings) == "refused ***"
    with pytest.raises(api.PondConfigError, match="lives on the service"):
        hook.get_conn()  # no local Session behind a service connection


def test_without_service_url_the_password_stays_the_s3_secret(monkeypatch):
    _conn(monkeypatch, "pond_plain", password=TOKEN, extra={"data_root": "/tmp/x"})
    hook = PondHook("pond_plain")
    assert hook.service is None
    assert hook.settings.s3_secret_access_key == TOKEN
    with pytest.raises(api.PondConfigError, match="names no pond service"):
        hook.service_client()


def test_service_connection_refuses_the_services_own_settings(monkeypatch):
    _conn(monkeypatch, "pond_mixed", password=TOKEN, extra={"service_url": URL, "data_root": "/tmp/x", "executor": "ray"})
    with pytest.raises(api.PondConfigError, match="data_root, executor belong to the service") as info:
        PondHook("pond_mixed").settings
    assert TOKEN not in str(info.value)
    _conn(monkeypatch, "pond_badurl", password=TOKEN, extra={"service_url": "pond-head:8000"})
    with pytest.raises(api.PondConfigError, match="http:// or https://"):
        PondHook("pond_badurl").settings


def test_hook_params_can_name_the_service(monkeypatch):
    _conn(monkeypatch, "pond_empty", extra={})
    hook = PondHook("pond_empty", service_url=URL, service_token=TOKEN, max_retries=1)
    assert hook.service is not None and (hook.service.url, hook.service.token) == (URL, TOKEN)
    assert hook.settings.service_settings() == {"max_retries": 1}


def test_unreachable_service_fails_the_connection_test_without_the_token(monkeypatch):
    _conn(monkeypatch, "pond_down", password=TOKEN, extra={"service_url": URL})
    hook = PondHook("pond_down")
    monkeypatch.setattr(api.ServiceClient, "__init__", _short_retry(api.ServiceClient.__init__))
    ok, message = hook.test_connection()
    assert not ok and URL in message and TOKEN not in message


def _short_retry(init):
    def wrapped(self, url, token, timeout=30.0, retry_seconds=30.0):
        init(self, url, token, timeout=2.0, retry_seconds=0.5)

    return wrapped


def test_trigger_serializes_without_the_token():
    from pond_airflow.triggers.service import PondServiceTrigger

    trigger = PondServiceTrigger(run_id="r1", stage_id="s1", stage="write_x", pond_conn_id="pond_svc", poll_interval=0.5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "pond_airflow.triggers.service.PondServiceTrigger"
    assert TOKEN not in json.dumps(kwargs)
    assert PondServiceTrigger(**kwargs).serialize() == (classpath, kwargs)
    modules = get_provider_info()["triggers"][0]["python-modules"]
    assert "pond_airflow.triggers.service" in modules


def test_the_form_offers_service_url_and_keeps_the_token_in_the_password():
    fields = get_provider_info()["connection-types"][0]["conn-fields"]
    assert "service_url" in fields and "service_token" not in fields


def test_trigger_reports_an_unreachable_service_as_a_retryable_failure(monkeypatch):
    import asyncio

    from pond_airflow.service import Failure
    from pond_airflow.triggers.service import PondServiceTrigger

    _conn(monkeypatch, "pond_gone", password=TOKEN, extra={"service_url": URL})
    monkeypatch.setattr(api.AsyncServiceClient, "__init__", _short_retry(api.AsyncServiceClient.__init__))
    trigger = PondServiceTrigger(run_id="r1", stage_id="s1", stage="write_x", pond_conn_id="pond_gone", poll_interval=0.1, unavailable_timeout=0.0)

    async def first() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    payload = asyncio.run(first())
    assert payload["state"] == "failed" and payload["error"]["type"] == "PondServiceUnavailableError"
    failure = Failure.of(payload, "write_x", "r1")
    assert failure.retryable and URL in failure.message and TOKEN not in failure.message
