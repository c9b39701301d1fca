"""The one declaration of pond's settings: resolution order, parsing, secrets, and the docs page
rendered from it."""

from __future__ import annotations

import pathlib

import pytest

from pond_core import settings_doc
from pond_core.errors import PondConfigError
from pond_core.settings import Settings, SettingValues

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_explicit_beats_environment_beats_default(monkeypatch):
    monkeypatch.setenv("POND_MAX_RETRIES", "5")
    monkeypatch.setenv("SP_TASK_THREADS", "3")
    assert Settings.resolve(job_id="a").max_retries == 5
    assert Settings.resolve(job_id="a", max_retries=1).max_retries == 1
    assert Settings.resolve(job_id="a").task_threads == 3  # smallpond's SP_ name when POND_ is unset
    monkeypatch.delenv("POND_MAX_RETRIES")
    assert Settings.resolve(job_id="a").max_retries == 2


def test_values_are_parsed_and_checked_by_kind(monkeypatch):
    assert Settings.resolve(job_id="a", memory_limit="512MiB").memory_limit == 512 << 20
    monkeypatch.setenv("POND_SPECULATION", "off")
    assert Settings.resolve(job_id="a").speculation is False
    with pytest.raises(PondConfigError, match="executor must be one of auto, local, ray"):
        Settings.resolve(job_id="a", executor="spark")
    with pytest.raises(PondConfigError, match=r"POND_NUM_EXECUTORS.*must be >= 1"):
        monkeypatch.setenv("POND_NUM_EXECUTORS", "0")
        Settings.resolve(job_id="a")
    with pytest.raises(PondConfigError, match="unknown setting"):
        Settings.resolve(job_id="a", memory="1GB")


def test_connection_values_hide_secrets_and_map_s3_settings():
    values = SettingValues.parse(
        {"data_root": "/d", "s3_secret_access_key": "k3y-secret", "catalog_url": "postgresql+psycopg://u:pw-77@db/pond", "s3_region": ""},
        "connection test",
    )
    assert values.storage_overrides() == {"secret_access_key": "k3y-secret"}  # empty means unset
    assert set(values.secrets()) == {"k3y-secret", "pw-77"}
    shown = repr(values) + str(values.public())
    assert "k3y-secret" not in shown and "pw-77" not in shown
    with pytest.raises(PondConfigError, match="unknown setting 'data_rot'"):
        SettingValues.parse({"data_rot": "/d"}, "connection test")


def test_the_settings_page_is_rendered_from_the_declaration():
    committed = (REPO / "docs" / "settings.md").read_text()
    assert committed == settings_doc.render(), "docs/settings.md is stale: python -m pond_core.settings_doc > docs/settings.md"
