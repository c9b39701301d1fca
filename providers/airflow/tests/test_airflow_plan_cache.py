"""The compiled-plan cache: a hit reads the entry instead of compiling, the key follows the
pipeline's source and parameters, concurrent writers leave one whole entry, a broken entry is
a miss."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pond_airflow import plan_cache
from pond_core.api import PhysicalPlan

PIPELINE = "pond_core.examples:daily_revenue"
PARAMS = {"ds": "2026-11-01", "source_root": "/s", "output_root": "/o"}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POND_AIRFLOW_PLAN_CACHE", str(tmp_path / "plans"))
    return tmp_path / "plans"


def entries(cache) -> list[str]:
    return sorted(p.name for p in cache.rglob("*.json"))


COUNTING = """
import os


def p(sp, root, calls):
    with open(calls, "a") as f:  # one line per compile: what the cache saves
        f.write("compiled\\n")
    return sp.read_parquet(os.path.join(root, "a.parquet"))
"""


def test_a_second_compile_reads_the_entry(cache, tmp_path, monkeypatch):
    module = tmp_path / "mods" / "counting_pipeline.py"
    module.parent.mkdir()
    module.write_text(COUNTING)
    monkeypatch.syspath_prepend(str(module.parent))
    calls = tmp_path / "calls.txt"
    params = {"root": "/r", "calls": str(calls)}
    first = plan_cache.compile_cached("counting_pipeline:p", params)
    second = plan_cache.compile_cached("counting_pipeline:p", params)
    assert calls.read_text().splitlines() == ["compiled"]  # the second came from the entry
    assert second.to_json() == first.to_json() and len(entries(cache)) == 1
    plan_cache.compile_cached("counting_pipeline:p", {**params, "root": "/s"})  # other values: their own entry
    assert len(calls.read_text().splitlines()) == 2 and len(entries(cache)) == 2


def test_a_tampered_entry_is_not_served(cache, caplog):
    plan = plan_cache.compile_cached(PIPELINE, PARAMS)
    (path,) = cache.rglob("*.json")
    data = json.loads(path.read_text())
    data["pipeline"] = "tampered"
    path.write_text(json.dumps(data))
    assert plan_cache.compile_cached(PIPELINE, PARAMS).pipeline == PIPELINE
    assert "ignoring unreadable" in caplog.text and "checksum" in caplog.text
    assert PhysicalPlan.from_json(path.read_text()).to_json() == plan.to_json()  # rewritten


def test_editing_the_pipeline_module_changes_the_key(cache, tmp_path, monkeypatch):
    module = tmp_path / "mods" / "edited_pipeline.py"
    module.parent.mkdir()
    module.write_text("def p(sp, root):\n    return sp.read_parquet(root + '/a.parquet')\n")
    monkeypatch.syspath_prepend(str(module.parent))
    before = plan_cache.plan_key("edited_pipeline:p", {"root": "/r"})
    module.write_text("def p(sp, root):\n    return sp.read_parquet(root + '/b.parquet')\n")
    after = plan_cache.plan_key("edited_pipeline:p", {"root": "/r"})
    assert before and after and before != after
    assert plan_cache.plan_key("edited_pipeline:p", {"root": "/other"}) != after
    assert plan_cache.plan_key("no_such_module_anywhere:p", {}) is None  # nothing to digest: never cached


def test_concurrent_writers_leave_one_whole_entry(cache):
    code = f"from pond_airflow import plan_cache; plan_cache.compile_cached({PIPELINE!r}, {PARAMS!r})"
    env = {**os.environ, "POND_AIRFLOW_PLAN_CACHE": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert len(entries(cache)) == 1 and not [p for p in cache.rglob(".tmp-*")]
    assert plan_cache.compile_cached(PIPELINE, PARAMS).stage("join_aggregate_customers_orders")


def test_a_broken_entry_is_a_miss_and_is_rewritten(cache, caplog):
    plan = plan_cache.compile_cached(PIPELINE, PARAMS)
    (path,) = cache.rglob("*.json")
    path.write_text('{"half": ')
    assert plan_cache.compile_cached(PIPELINE, PARAMS).to_json() == plan.to_json()
    assert "ignoring unreadable" in caplog.text
    assert path.read_text() == plan.to_json()


_PARSE = """
import sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
task = bag.dags["pond_daily_revenue"].get_task("daily_revenue.join_aggregate_customers_orders")
print(sorted(m for m in sys.modules if m.startswith(("pond_core.plan", "pond_core.io", "duckdb", "sqlglot"))), task.upstream_stages)
"""


def test_a_warm_parse_does_not_import_ponds_planner(cache):
    """What a task's start pays for pond: with the entry written by the first parse, the DAG
    file renders from plain data, without pond's planner, DuckDB or sqlglot."""
    from airflow_rig import EXAMPLE_DAGS

    env = {**os.environ, "POND_AIRFLOW_PLAN_CACHE": str(cache)}
    dag_file = str(EXAMPLE_DAGS / "pond_daily_revenue.py")
    outputs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _PARSE, dag_file], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(done.stdout.strip().splitlines()[-1])
    assert "pond_core.plan.physical" in outputs[0]  # the first parse compiled
    assert outputs[1] == "[] ['customers_by_customer_id', 'orders_by_customer_id']"
    assert len([p for p in cache.rglob("*.tasks.json")]) == 1
