"""A task that runs out of memory is retried with twice the memory, up to a bound, then fails
naming the stage, the partition and the memory of every attempt (DuckDB's own limit, in-process).

The query collects 20 million integers into one list: DuckDB cannot spill that, so it needs
about 512 MiB; a 64 MiB first attempt fails at 64, 128 and 256 MiB and succeeds at 512 MiB.
"""

from __future__ import annotations

import json
import os

import pytest

import pond_core
from pond_core.catalog import Catalog
from pond_core.pipeline import compile_pipeline
from pond_core.runner import run_plan


def one_big_list(sp):
    return sp.partial_sql("SELECT len(list(i)) AS n FROM range(20000000) t(i)")


def run(tmp_path, **settings):
    session = pond_core.init(data_root=str(tmp_path), executor="local", memory_limit="64MiB", task_threads=1, **settings)
    catalog = Catalog(Catalog.default_url(str(tmp_path)))
    plan = compile_pipeline(one_big_list, data_root=str(tmp_path))
    try:
        return plan, catalog, run_plan(plan, "mem-run", settings=session.config, executor=session.executor(), catalog=catalog)
    finally:
        session.shutdown()


def test_out_of_memory_is_retried_with_twice_the_memory_until_it_fits(tmp_path):
    plan, catalog, _ = run(tmp_path, max_task_memory="1GiB")
    (stage,) = plan.stages
    record = json.loads((tmp_path / "jobs" / "mem-run" / "staging" / stage.id / "_tasks" / "p00000.json").read_text())
    assert [h["memory"] >> 20 for h in record["history"]] == [64, 128, 256, 512]
    assert [h.get("outcome") for h in record["history"]] == [None, None, None, "committed"]
    assert all("OutOfMemory" in h["error"] for h in record["history"][:3])
    assert record["memory_retries"] == 3 and record["retries"] == 3
    row = catalog.get_run("mem-run")["stages"][0]
    assert (row["status"], row["task_retries"], row["node_failures"], row["speculative_attempts"]) == ("success", 3, 0, 0)
    out = pond_core.init(data_root=str(tmp_path / "read"), executor="local")
    assert out.read_parquet(os.path.join(row["result"]["location"], "*.parquet")).take_all() == [{"n": 20_000_000}]
    out.shutdown()


def test_out_of_memory_at_the_bound_fails_naming_stage_partition_and_attempts(tmp_path):
    with pytest.raises(pond_core.PondResourceError) as caught:
        run(tmp_path, max_task_memory="128MiB")
    message = str(caught.value)
    assert "partition 0 ran out of memory on every attempt (2 attempts with 64.0 MiB, 128.0 MiB)" in message
    assert "128.0 MiB is the most a task may have" in message and "Out of Memory Error" in message
    assert not pond_core.errors.is_retryable(caught.value)
    row = Catalog(Catalog.default_url(str(tmp_path))).get_run("mem-run")["stages"][0]
    assert row["status"] == "failed" and "ran out of memory on every attempt" in row["error"]
    assert row["task_retries"] == 1  # the retry with 128 MiB, made before the stage gave up
