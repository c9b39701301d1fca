"""Stable stage ids: the same pipeline and parameters compile to the same plan in any process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pond_core.pipeline import compile_pipeline

REPO = Path(__file__).resolve().parents[1]
COMPILE = (
    "import sys, json; from pond_core.pipeline import compile_pipeline; "
    "print(json.dumps({name: compile_pipeline(ref, params).to_json() for name, (ref, params) in json.loads(sys.argv[1]).items()}))"
)

PIPELINES = {
    "sql-and-sink": ("pond_core.examples:daily_revenue", {"ds": "2026-11-20", "source_root": "/data/shop", "output_root": "/data/revenue", "npartitions": 8}),
    "python-step": ("tests.test_pipeline_defs:gated_totals", {"source": "/data/src", "output_root": "/data/out", "gate_dir": "/tmp/gate"}),
    "hundred-stages": ("tests.test_pipeline_defs:hundred_stages", {"ds": "2026-11-20", "source_root": "/data/src"}),
}


def compile_in_new_process(hash_seed: str) -> dict[str, str]:
    """Every pipeline's plan JSON, compiled by a fresh interpreter with its own hash seed."""
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", COMPILE, json.dumps(PIPELINES)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def two_processes() -> tuple[dict[str, str], dict[str, str]]:
    return compile_in_new_process("1"), compile_in_new_process("2")


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_two_processes_compile_the_same_plan(name: str, two_processes: tuple[dict[str, str], dict[str, str]]) -> None:
    ref, params = PIPELINES[name]
    first, second = two_processes[0][name], two_processes[1][name]
    assert first == second
    here = compile_pipeline(ref, params).to_json()
    assert json.loads(here)["stages"] == json.loads(first)["stages"]
    ids = [s["id"] for s in json.loads(first)["stages"]]
    assert len(ids) == len(set(ids))


def test_other_parameters_give_other_ids_and_the_same_ones_the_same() -> None:
    ref, params = PIPELINES["sql-and-sink"]
    base = compile_pipeline(ref, params)
    again = compile_pipeline(ref, dict(params))
    other_day = compile_pipeline(ref, {**params, "ds": "2026-11-21"})
    assert [s.id for s in again.stages] == [s.id for s in base.stages]
    assert again.fingerprint == base.fingerprint
    assert other_day.fingerprint != base.fingerprint
    # The customers side does not depend on the day, so its stage keeps its id.
    assert {s.id for s in base.stages} & {s.id for s in other_day.stages}
