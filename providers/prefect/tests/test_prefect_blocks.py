"""The PondConfig block, the prefect.collections entry point, and the ready-made pond-pipeline flow."""

from __future__ import annotations

import json
import os
from importlib.metadata import entry_points

import prefect_api
import pytest
from prefect.client.orchestration import get_client

from pond_prefect import PondConfig
from pond_prefect.flows import pond_pipeline

pytestmark = pytest.mark.usefixtures("prefect_api")
SECRET = "very-secret-key-7f3a"


def test_registered_as_a_prefect_collection():
    from prefect.plugins import load_prefect_collections

    assert "pond_prefect" in {e.name for e in entry_points(group="prefect.collections")}
    assert "pond_prefect" in load_prefect_collections()


def test_config_block_round_trips_and_the_api_masks_its_secrets(tmp_path):
    PondConfig(
        data_root=str(tmp_path), executor="local", s3_endpoint_url="http://127.0.0.1:9", s3_access_key_id="AKIDPOND", s3_secret_access_key=SECRET
    ).save("pond-block-test", overwrite=True)
    loaded = PondConfig.load("pond-block-test")
    assert loaded.s3_secret_access_key.get_secret_value() == SECRET
    assert loaded.storage_options().secret_access_key == SECRET
    assert SECRET not in repr(loaded)
    with get_client(sync_client=True) as client:
        doc = client.read_block_document_by_name("pond-block-test", block_type_slug="pond-config", include_secrets=False)
    assert doc.data["data_root"] == str(tmp_path)
    assert SECRET not in json.dumps(doc.data, default=str)


def test_the_pond_pipeline_flow_runs_with_a_saved_config(shop, pond_root):
    PondConfig(data_root=pond_root, executor="local").save("pond-flow-test", overwrite=True)
    state = pond_pipeline("prefect_pipelines:customers", {"source_root": shop}, config="pond-flow-test", return_state=True)
    assert state.is_completed(), state
    (stage,) = state.result()["stages"].values()
    assert stage["rows"] == 500 and stage["location"].startswith(pond_root)
    (run,) = prefect_api.task_runs(state.state_details.flow_run_id).values()
    assert run.name == stage["stage"]
    # The task's result is persisted as a small JSON manifest, not data.
    record = json.loads(open(_result_file(run)).read())
    assert record["metadata"]["serializer"]["type"] == "json"
    assert json.loads(record["result"])["rows"] == 500 if isinstance(record["result"], str) else record["result"]["rows"] == 500
    assert os.path.getsize(_result_file(run)) < 16_384


def _result_file(run) -> str:
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

    data = run.state.data
    key = data["storage_key"] if isinstance(data, dict) else data.storage_key
    return key if os.path.isabs(key) else os.path.join(str(PREFECT_LOCAL_STORAGE_PATH.value()), key)


def test_unset_fields_fall_back_to_pond_environment(monkeypatch):
    monkeypatch.setenv("POND_EXECUTOR", "ray")
    monkeypatch.setenv("POND_MAX_RETRIES", "5")
    config = PondConfig()
    assert config.uses_ray
    assert "executor" not in config.init_kwargs() and "max_retries" not in config.init_kwargs()
    assert not PondConfig(executor="local").uses_ray


def test_memory_bound_and_speculation_reach_the_session(tmp_path):
    import pond_core

    config = PondConfig(data_root=str(tmp_path), executor="local", max_task_memory="3GB", speculation=False)
    session = pond_core.init(job_id="block", **config.init_kwargs())
    assert (session.config.max_task_memory, session.config.speculation) == (3_000_000_000, False)
    session.shutdown()


def test_blocks_saved_with_the_older_field_names_still_load(tmp_path):
    config = PondConfig.model_validate({"storage_root": str(tmp_path), "task_cpus": 2, "task_memory": "1GB"})
    settings = config.settings(job_id="old-block")
    assert (settings.data_root, settings.task_threads, settings.memory_limit) == (str(tmp_path), 2, 1_000_000_000)


def test_the_block_fields_are_pond_settings_declaration():
    from pond_core.api import SETTINGS, Surface

    declared = [s for s in SETTINGS if Surface.CONNECTION in s.surfaces]
    properties = PondConfig.model_json_schema()["properties"]
    assert list(properties) == [s.name for s in declared]
    assert all(properties[s.name]["description"] == s.doc for s in declared)
    masked = {name for name, p in properties.items() if '"format": "password"' in json.dumps(p)}
    assert {s.name for s in declared if s.secret} == masked
