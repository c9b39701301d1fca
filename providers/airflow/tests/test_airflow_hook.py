"""Provider registration and PondHook: connection form, precedence, defaults, secrets."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowNotFoundException

from pond_airflow.get_provider_info import get_provider_info
from pond_airflow.hooks.pond import PondHook, PondSettings, scrub

SECRET = "s3cr3t-value-4f9a"


def _conn(monkeypatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "pond", **fields}))


def test_provider_info_validates_against_airflows_schema():
    import importlib.resources

    import jsonschema

    schema = json.loads(importlib.resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_provider_hook_and_connection_form_are_registered():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    manager = ProvidersManager()
    assert "airflow-provider-pond" in manager.providers
    assert ProvidersManagerTaskRuntime().hooks["pond"].hook_class_name == "pond_airflow.hooks.pond.PondHook"
    widgets = manager.connection_form_widgets
    for field in ("ray_address", "data_root", "catalog_url", "task_threads", "memory_limit", "max_task_memory", "speculation",
                  "s3_endpoint_url", "s3_region", "s3_access_key_id"):
        assert f"extra__pond__{field}" in widgets, field
    assert widgets["extra__pond__task_threads"].field["schema"]["type"] == ["integer", "null"]
    behaviour = manager.field_behaviours["pond"]
    assert {"host", "port", "schema", "login"} <= set(behaviour["hidden_fields"])
    assert behaviour["relabeling"] == {"password": "S3 secret access key"}


def test_argument_beats_extra_beats_default(monkeypatch, tmp_path):
    _conn(
        monkeypatch,
        "pond_custom",
        password=SECRET,
        extra={"data_root": str(tmp_path), "task_threads": "2", "memory_limit": "1GB", "s3_region": "eu-west-1", "s3_access_key_id": "AKID",
               "max_task_memory": "4GB", "speculation": "off"},
    )
    hook = PondHook("pond_custom", task_threads=3, s3_endpoint_url="http://127.0.0.1:9000")
    settings = hook.settings
    assert (settings.data_root, settings.task_threads, settings.memory_limit) == (str(tmp_path), 3, 1_000_000_000)
    assert settings.storage_options() == {
        "endpoint_url": "http://127.0.0.1:9000",
        "region": "eu-west-1",
        "access_key_id": "AKID",
        "secret_access_key": SECRET,
    }
    assert settings.max_retries is None and settings.ray_address is None  # pond's own defaults apply
    with hook.get_conn(job_id="hook-test") as session:
        assert session.config.data_root == str(tmp_path)
        assert session.config.task_threads == 3
        assert session.config.memory_limit == 1_000_000_000
        assert session.config.max_retries == 2
        assert (session.config.max_task_memory, session.config.speculation) == (4_000_000_000, False)
        assert session.storage.secret_access_key == SECRET


def test_missing_default_connection_means_pond_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW_CONN_POND_DEFAULT")
    monkeypatch.setenv("POND_DATA_ROOT", str(tmp_path / "default-root"))
    hook = PondHook()
    assert hook.settings == PondSettings()
    with hook.get_conn(job_id="defaults") as session:
        assert session.config.data_root == str(tmp_path / "default-root")
        assert session.config.executor == "auto"


def test_missing_named_connection_is_an_error():
    with pytest.raises(AirflowNotFoundException):
        PondHook("pond_nowhere").settings


def test_unknown_setting_is_rejected():
    with pytest.raises(TypeError, match="unknown setting 'ray_adress'"):
        PondHook(ray_adress="ray://x:10001")


def test_secrets_stay_out_of_repr_public_dict_and_messages():
    settings = PondSettings(
        s3_access_key_id="AKID123", s3_secret_access_key=SECRET, catalog_url="postgresql+psycopg://pond:pw-9931@db/pond"
    )
    shown = repr(settings) + json.dumps(settings.to_public_dict())
    for secret in ("AKID123", SECRET, "pw-9931"):
        assert secret not in shown
    assert settings.to_public_dict()["catalog_url"] == "postgresql+psycopg://pond:***@db/pond"
    assert scrub(f"denied for {SECRET} at pw-9931", settings) == "denied for *** at ***"


def test_connection_test_reports_success_and_failure(monkeypatch, tmp_path):
    _conn(monkeypatch, "pond_ok", extra={"data_root": str(tmp_path / "ok")})
    ok, message = PondHook("pond_ok").test_connection()
    assert ok, message
    (tmp_path / "file").write_text("not a directory")
    _conn(monkeypatch, "pond_bad", extra={"data_root": str(tmp_path / "file" / "root")})
    ok, message = PondHook("pond_bad").test_connection()
    assert not ok and message


def test_connections_saved_with_the_older_setting_names_still_work(monkeypatch, tmp_path, caplog):
    _conn(monkeypatch, "pond_old", extra={"storage_root": str(tmp_path), "task_cpus": "2", "task_memory": "1GB"})
    settings = PondHook("pond_old").settings
    assert (settings.data_root, settings.task_threads, settings.memory_limit) == (str(tmp_path), 2, 1_000_000_000)
    assert "'storage_root' is now called 'data_root'" in caplog.text


def test_the_connection_form_is_pond_settings_declaration():
    from pond_core.api import SETTINGS, Surface

    fields = get_provider_info()["connection-types"][0]["conn-fields"]
    # the S3 secret key, or the service token when service_url is set, is the connection's password
    declared = {s.name: s for s in SETTINGS if Surface.CONNECTION in s.surfaces and s.name not in ("s3_secret_access_key", "service_token")}
    assert list(fields) == list(declared)
    assert all(fields[name]["description"] == declared[name].doc for name in fields)
