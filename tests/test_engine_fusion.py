"""Co-partitioned stages fused with their exchanges on one machine (pond_core/plan/fuse.py):
chosen only where the rewrite keeps the meaning, shown in explain(), equal results, resumable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

import pond_core
from pond_core.plan.compile import CompileOptions, compile_plan
from pond_core.plan.fuse import fused_names, per_partition_query
from pond_core.plan.physical import BucketedFilesOutput, ExchangeOutput

JOIN = "SELECT o.g, sum(l.v) AS total, count(*) AS n FROM {0} l JOIN {1} o ON l.k = o.k GROUP BY o.g"


@pytest.fixture
def tables(tmp_path):
    con = duckdb.connect()
    (tmp_path / "l").mkdir()
    (tmp_path / "o").mkdir()
    for part in range(3):
        con.execute(f"COPY (SELECT (i * 7) % 500 AS k, i * 1.0 AS v FROM range({part * 1000}, {part * 1000 + 1000}) t(i)) TO '{tmp_path}/l/{part}.parquet'")
    con.execute(f"COPY (SELECT i AS k, 'g' || (i % 5) AS g FROM range(450) t(i)) TO '{tmp_path}/o/0.parquet'")
    return tmp_path


def _frames(sp, tables):
    lines = sp.read_parquet(str(tables / "l" / "*.parquet")).repartition(4, hash_by="k")
    orders = sp.read_parquet(str(tables / "o" / "*.parquet")).repartition(4, hash_by="k")
    return sp.partial_sql(JOIN, lines, orders)


def test_a_co_partitioned_join_is_fused_and_equals_the_per_partition_result(local_sp, tables):
    per_partition = _frames(local_sp, tables)
    plain = compile_plan(per_partition._node)
    fused = compile_plan(per_partition._node, options=CompileOptions(fuse_co_partitioned=True))
    assert [type(s.output) for s in plain.stages].count(ExchangeOutput) == 2
    assert not any(isinstance(s.output, ExchangeOutput) for s in fused.stages)
    assert fused_names(fused.stages) == [plain.final.name]
    assert isinstance(fused.final.output, BucketedFilesOutput) and fused.final.output.npartitions == 4
    rows = per_partition.take_all()  # the session runs on one machine: fused
    assert len(rows) > 5  # one row per group *per partition*, as without fusion
    con = duckdb.connect()
    expected = con.execute(
        f"SELECT o.g, sum(l.v), count(*), (hash(l.k) % 4) AS p FROM read_parquet('{tables}/l/*.parquet') l "
        f"JOIN read_parquet('{tables}/o/*.parquet') o ON l.k = o.k GROUP BY o.g, p"
    ).fetchall()
    assert sorted((r["g"], r["total"], r["n"]) for r in rows) == sorted((g, t, n) for g, t, n, _ in expected)


def test_explain_says_why_a_stage_was_fused(local_sp, tables):
    text = _frames(local_sp, tables).explain()
    assert "fused with l_by_k, o_by_k" in text and "written by one task" in text


def test_fused_partitions_are_the_exchanges_partitions(local_sp, tables):
    """Downstream stages see four partitions, each holding exactly its hash bucket's rows."""
    lines = local_sp.read_parquet(str(tables / "l" / "*.parquet")).repartition(4, hash_by="k")
    tagged = local_sp.partial_sql("SELECT k, v FROM {0} WHERE v >= 0", lines)
    counted = local_sp.partial_sql("SELECT count(*) AS n, count(DISTINCT hash(k) % 4) AS buckets FROM {0}", tagged)
    assert tagged.num_partitions == 4
    rows = counted.take_all()
    assert len(rows) == 4 and all(r["buckets"] == 1 for r in rows) and sum(r["n"] for r in rows) == 3000


@pytest.mark.parametrize(
    "query",
    [
        "SELECT count(*) AS n FROM {0}",  # a global aggregate: a row for an empty partition too
        "SELECT * FROM {0}",
        "SELECT k, row_number() OVER (ORDER BY v) AS r FROM {0}",
        "SELECT k FROM {0} ORDER BY k LIMIT 3",
        "SELECT k FROM {0} WHERE k IN (SELECT k FROM {0} WHERE v > 1)",
        "SELECT k FROM {0} UNION ALL SELECT k FROM {0}",
    ],
)
def test_sql_whose_meaning_the_rewrite_could_change_is_not_fused(query):
    assert per_partition_query(query, 1) is None


def test_the_rewrite_keeps_literal_braces_and_matches_partitions_in_joins():
    rewritten = per_partition_query("SELECT a.k, {{'x': 1}} AS s FROM {0} a LEFT JOIN {1} b ON a.k = b.k GROUP BY ALL", 2)
    assert rewritten is not None
    assert "{{'x': 1}}" in rewritten and '"b"."__pond_b" = "a"."__pond_b"' in rewritten and "LEFT JOIN {1}" in rewritten


def test_plans_for_orchestrators_and_clusters_are_not_fused(tmp_path, tables):
    from pond_core.pipeline import compile_pipeline

    plan = compile_pipeline("tests.test_engine_fusion:pipeline", {"root": str(tables)})
    assert [type(s.output) for s in plan.stages].count(ExchangeOutput) == 2
    ray_session = pond_core.init(data_root=str(tmp_path / "p"), executor="ray")
    try:  # nothing started: judged from the settings, a Ray cluster may have many machines
        assert ray_session.compile_options() == CompileOptions(fuse_co_partitioned=False)
    finally:
        ray_session.shutdown()


def pipeline(sp, root: str):
    lines = sp.read_parquet(f"{root}/l/*.parquet").repartition(4, hash_by="k")
    orders = sp.read_parquet(f"{root}/o/*.parquet").repartition(4, hash_by="k")
    return sp.partial_sql(JOIN, lines, orders)


DRIVER = textwrap.dedent(
    """
    import os, sys, time
    import pond_core

    root, data_root, gate = sys.argv[1:4]

    def wait(x):
        open(os.path.join(gate, "started"), "w").close()
        while not os.path.exists(os.path.join(gate, "open")):
            time.sleep(0.05)
        return x

    sp = pond_core.init(job_id="fused-kill", data_root=data_root, executor="local", keep_intermediates=True)
    lines = sp.read_parquet(root + "/l/*.parquet").repartition(4, hash_by="k")
    orders = sp.read_parquet(root + "/o/*.parquet").repartition(4, hash_by="k")
    joined = sp.partial_sql(
        "SELECT o.g, sum(wait(l.v)) AS total FROM {0} l JOIN {1} o ON l.k = o.k GROUP BY o.g", lines, orders,
        udfs=[pond_core.udf(["DOUBLE"], "DOUBLE")(wait)],
    )
    total = sp.partial_sql("SELECT sum(total) AS t FROM {0}", joined.repartition(1)).take_all()
    print("RESULT", total[0]["t"], flush=True)
    """
)


def test_a_run_killed_inside_a_fused_stage_resumes_from_the_stage(tables, tmp_path):
    """The unit of resume of a fused stage is the stage: killed mid-task, the same job runs it
    again (its exchanges' inputs are sources, still there) and gives the full result."""
    script, gate, data_root = tmp_path / "driver.py", tmp_path / "gate", tmp_path / "pond"
    script.write_text(DRIVER)
    gate.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.Popen([sys.executable, str(script), str(tables), str(data_root), str(gate)], env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (gate / "started").exists():
        assert first.poll() is None and time.monotonic() < deadline, "the fused stage never started"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    (gate / "open").touch()
    again = subprocess.run([sys.executable, str(script), str(tables), str(data_root), str(gate)], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    expected = duckdb.connect().execute(
        f"SELECT sum(l.v) FROM read_parquet('{tables}/l/*.parquet') l JOIN read_parquet('{tables}/o/*.parquet') o ON l.k = o.k"
    ).fetchone()[0]
    assert f"RESULT {expected}" in again.stdout
