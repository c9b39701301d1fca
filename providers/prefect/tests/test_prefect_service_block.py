"""The PondConfig block's service fields: where the service is, its token (a secret), and what of
the block a stage request may carry."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from pond_core import api
from pond_prefect import PondConfig
from pond_prefect.blocks import ServiceTarget

TOKEN = "tok-5e3c1d9a"


def test_the_block_names_the_service_and_keeps_its_token_secret():
    cfg = PondConfig(service_url="http://pond-head:8000", service_token=TOKEN, memory_limit="2GB", data_root="/lake")
    assert isinstance(cfg.service_token, SecretStr)
    assert TOKEN not in repr(cfg) and TOKEN not in str(cfg.model_dump())
    target = cfg.service_target()
    assert target == ServiceTarget("http://pond-head:8000", TOKEN)
    assert TOKEN not in repr(target) and TOKEN not in repr(target.client())
    # Only run tunables travel with a stage; where data lives is the service's own setting.
    assert cfg.run_tunables() == {"memory_limit": 2_000_000_000}
    assert cfg.ignored_by_service() == ["data_root"]


def test_unset_fields_fall_back_to_the_environment(monkeypatch):
    monkeypatch.setenv("POND_SERVICE_URL", "http://from-env:9000")
    monkeypatch.setenv("POND_SERVICE_TOKEN", TOKEN)
    assert PondConfig().service_target() == ServiceTarget("http://from-env:9000", TOKEN)
    monkeypatch.delenv("POND_SERVICE_URL")
    assert PondConfig().service_target() is None  # stages run in the flow process


def test_a_service_url_without_a_token_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("POND_SERVICE_TOKEN", raising=False)
    with pytest.raises(api.PondConfigError, match=r"service_url is http://pond-head:8000 but no service_token is set"):
        PondConfig(service_url="http://pond-head:8000").service_target()
