"""How stage task runs end on the flow run's page: a failure leaves downstream stages
Cancelled under their own names (not NotReady with a random suffix); a Cached stage carries its
stage artifact."""

from __future__ import annotations

import json

import prefect_api
import pytest
from prefect import flow

from pond_core.pipeline import compile_pipeline
from pond_prefect import PondConfig, run_pipeline

pytestmark = pytest.mark.usefixtures("prefect_api")


@flow(name="pond-test-outcomes")
def pipeline_flow(pipeline: str, params: dict, storage_root: str) -> dict:
    return run_pipeline(pipeline, params, config=PondConfig(data_root=storage_root, executor="local"), retry_delay_seconds=0)


def test_stages_after_a_failure_end_cancelled_under_their_own_names(shop, pond_root):
    plan = compile_pipeline("prefect_pipelines:broken_midway", {"source_root": shop})
    names = [s.name for s in plan.stages]
    state = pipeline_flow("prefect_pipelines:broken_midway", {"source_root": shop}, pond_root, return_state=True)
    assert state.is_failed()
    runs = prefect_api.task_runs(state.state_details.flow_run_id)
    assert sorted(runs) == sorted(names)  # no `-738` suffixes
    states = {name: runs[name].state.name for name in names}
    failed = [n for n in names if states[n] == "Failed"]
    assert len(failed) == 1 and states[names[0]] == "Completed", states
    after = names[names.index(failed[0]) + 1:]
    assert after and all(states[n] == "Cancelled" for n in after), states
    first_blocked = plan.stages[names.index(failed[0]) + 1]
    assert runs[first_blocked.name].state.message == f"not run: upstream stage {failed[0]} did not complete"
    stats = next(a for a in prefect_api.artifacts(state.state_details.flow_run_id) if a.key == "pond-test-outcomes-stages")
    table = stats.data if isinstance(stats.data, list) else json.loads(stats.data)
    assert {r["stage"]: r["state"] for r in table} == states
