"""Prefect retries a transient stage failure and never a data error."""

from __future__ import annotations

import prefect_api
import pytest
from prefect import flow

from pond_prefect import PondConfig, run_pipeline

pytestmark = pytest.mark.usefixtures("prefect_api")


@flow(name="pond-test-retries")
def pipeline_flow(pipeline: str, params: dict, storage_root: str) -> dict:
    # max_retries=0: pond's own in-stage retry is off, so the failure reaches Prefect's retry.
    config = PondConfig(data_root=storage_root, executor="local", max_retries=0)
    return run_pipeline(pipeline, params, config=config, retries=2, retry_delay_seconds=0)


def test_a_transient_failure_is_retried_once_and_succeeds(shop, pond_root, tmp_path):
    marker = str(tmp_path / "failed-once")
    state = pipeline_flow("prefect_pipelines:flaky", {"source_root": shop, "marker": marker}, pond_root, return_state=True)
    assert state.is_completed(), state
    (run,) = prefect_api.task_runs(state.state_details.flow_run_id).values()
    assert run.state.name == "Completed"
    assert run.run_count == 2
    assert state.result()["stages"][run.name]["rows"] == 500


def test_a_data_error_fails_at_once(shop, pond_root):
    state = pipeline_flow("prefect_pipelines:broken", {"source_root": shop}, pond_root, return_state=True)
    assert state.is_failed()
    (run,) = prefect_api.task_runs(state.state_details.flow_run_id).values()
    assert run.state.is_failed()
    assert run.run_count == 1
    with pytest.raises(Exception) as info:
        state.result()
    assert type(info.value).__name__ == "PondDataError"
    assert "bad customer" in str(info.value) and run.name in str(info.value)
