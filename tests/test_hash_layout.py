"""Datasets written hash-partitioned record it in their manifest; a join on those keys then
reads bucket k's file as partition k instead of shuffling again (issue 22)."""

from __future__ import annotations

import collections
import itertools
import json
import shutil

import duckdb
import pytest

from pond_core.io.manifest import DatasetState
from pond_core.plan.compile import compile_plan
from pond_core.plan.physical import ExchangeOutput
from pond_core.specs.hash_layout import HASH_FUNCTION
from pond_core.sqlplan import PlanOptions, adapter, plan_sql
from tests.sql_compare import assert_same_result

QUERY = (
    "SELECT o.o_custkey, count(*) AS items, sum(l.l_qty) AS qty "
    "FROM orders o JOIN lineitem l ON l.l_orderkey = o.o_orderkey GROUP BY o.o_custkey ORDER BY o.o_custkey"
)
# The test data is tiny: without these, a side not laid out on the keys is read whole and
# broadcast, and no exchange would be planned either way.
NO_BROADCAST = PlanOptions(broadcast_threshold=0, single_read_threshold=0)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("hash-sources")
    con = duckdb.connect()
    con.execute(f"COPY (SELECT i AS o_orderkey, i % 37 AS o_custkey FROM range(3000) t(i)) TO '{root}/orders.parquet'")
    (root / "lineitem").mkdir()
    for k in range(3):  # several files: several exchange producers, each writing every bucket
        con.execute(
            f"COPY (SELECT i % 3000 AS l_orderkey, i % 7 AS l_qty FROM range({k * 3000}, {k * 3000 + 3000}) t(i)) "
            f"TO '{root}/lineitem/p{k}.parquet'"
        )
    con.close()
    return root


def _write(sp, source, path, key, n, mode="error"):
    frame = sp.read_parquet(str(source))
    return (frame.repartition(n, hash_by=key) if n else frame).write_parquet(str(path), mode=mode)


def _exchanges(dq):
    """The keys of each exchange stage the statement compiles to (columns as the plan names them)."""
    plan = compile_plan(adapter.plan_of(dq.frame))
    return [s.output.keys for s in plan.stages if isinstance(s.output, ExchangeOutput)]


def _want(sources):
    con = duckdb.connect()
    con.execute(f"CREATE VIEW orders AS SELECT * FROM '{sources}/orders.parquet'")
    con.execute(f"CREATE VIEW lineitem AS SELECT * FROM '{sources}/lineitem/*.parquet'")
    return con.execute(QUERY).fetchall()


def test_the_manifest_records_the_buckets_a_hash_repartition_wrote(sql_sessions, sources, tmp_path):
    sp = sql_sessions("local")
    _write(sp, sources / "lineitem", tmp_path / "lineitem", "l_orderkey", 4)
    buckets = [f["bucket"] for f in json.loads((tmp_path / "lineitem" / "_pond_manifest.json").read_text())["files"]]
    per_bucket = collections.Counter(buckets)  # one file per exchange producer and bucket
    assert sorted(per_bucket) == [0, 1, 2, 3] and len(set(per_bucket.values())) == 1
    _write(sp, sources / "orders.parquet", tmp_path / "orders", "o_orderkey", 4)
    manifest = json.loads((tmp_path / "orders" / "_pond_manifest.json").read_text())
    layout = manifest["hash_layout"]
    assert layout["keys"] == ["o_orderkey"] and layout["npartitions"] == 4
    assert layout["function"] == HASH_FUNCTION and layout["duckdb"] == duckdb.__version__
    assert sorted(f["bucket"] for f in manifest["files"]) == [0, 1, 2, 3]
    con = duckdb.connect()
    for f in manifest["files"]:  # each file holds exactly the rows an exchange sends to its bucket
        path = tmp_path / "orders" / f["path"]
        assert con.execute(f"SELECT count(*) FROM '{path}' WHERE (hash(o_orderkey) % 4)::BIGINT <> {f['bucket']}").fetchone() == (0,)


def test_a_join_of_two_datasets_hashed_on_the_join_key_runs_with_no_exchange(sql_sessions, sources, tmp_path):
    sp = sql_sessions("local")
    _write(sp, sources / "orders.parquet", tmp_path / "orders", "o_orderkey", 4)
    _write(sp, sources / "lineitem", tmp_path / "lineitem", "l_orderkey", 4)
    dq = plan_sql(sp, QUERY, {"orders": str(tmp_path / "orders"), "lineitem": str(tmp_path / "lineitem")}, options=NO_BROADCAST)
    assert dq.npartitions == 4
    assert _exchanges(dq) == []  # the join is co-partitioned; the small partials are gathered
    text = dq.explain()
    assert "orders: hash-partitioned on o_orderkey into 4 (dataset manifest), no exchange" in text
    assert "lineitem: hash-partitioned on l_orderkey into 4 (dataset manifest), no exchange" in text
    got = [tuple(r.values()) for r in dq.frame.take_all()]
    assert_same_result(got, _want(sources), [0])


def test_a_dataset_changed_by_hand_after_its_write_is_not_trusted(sql_sessions, sources, tmp_path):
    sp = sql_sessions("local")
    _write(sp, sources / "orders.parquet", tmp_path / "orders", "o_orderkey", 4)
    _write(sp, sources / "lineitem", tmp_path / "lineitem", "l_orderkey", 4)
    inputs = {"orders": str(tmp_path / "orders"), "lineitem": str(tmp_path / "lineitem")}
    assert not _exchanges(plan_sql(sp, QUERY, inputs, options=NO_BROADCAST))
    shutil.copy(sources / "orders.parquet", tmp_path / "orders" / "extra.parquet")
    dq = plan_sql(sp, QUERY, inputs, options=NO_BROADCAST)
    assert _exchanges(dq) == [("o__o_orderkey",)]  # only the untrusted side moves
    assert "orders: hash-partitioned" not in dq.explain()


def test_different_bucket_counts_or_an_append_plan_an_exchange(sql_sessions, sources, tmp_path):
    sp = sql_sessions("local")
    _write(sp, sources / "orders.parquet", tmp_path / "orders", "o_orderkey", 4)
    _write(sp, sources / "lineitem", tmp_path / "lineitem", "l_orderkey", 2)
    inputs = {"orders": str(tmp_path / "orders"), "lineitem": str(tmp_path / "lineitem")}
    dq = plan_sql(sp, QUERY, inputs, options=NO_BROADCAST)
    assert _exchanges(dq) == [("l__l_orderkey",)]
    assert_same_result([tuple(r.values()) for r in dq.frame.take_all()], _want(sources), [0])

    _write(sp, sources / "lineitem", tmp_path / "lineitem", "l_orderkey", 4, mode="overwrite")
    assert not _exchanges(plan_sql(sp, QUERY, inputs, options=NO_BROADCAST))
    _write(sp, sources / "lineitem", tmp_path / "lineitem", "l_orderkey", 0, mode="append")
    manifest = json.loads((tmp_path / "lineitem" / "_pond_manifest.json").read_text())
    assert manifest["hash_layout"] is None
    assert _exchanges(plan_sql(sp, QUERY, inputs, options=NO_BROADCAST)) == [("l__l_orderkey",)]


def test_merging_commit_records_in_any_order_keeps_the_layout_only_of_the_latest_whole_write():
    layout = {"keys": ["k"], "npartitions": 2, "function": HASH_FUNCTION, "duckdb": duckdb.__version__}

    def record(key, replaces, hashed=False):
        out = {"key": key, "replaces": replaces, "files": [{"path": f"{key}.parquet", "partition": ""}]}
        return {**out, "hash_layout": layout} if hashed else out

    cases = [
        ([record("1", "all", True), record("2", [])], None),  # appended to after: dropped
        ([record("0", []), record("1", "all", True)], layout),  # an append the overwrite replaced
        ([record("1", "all", True), record("2", "all")], None),  # overwritten without hashing
        ([record("1", "all"), record("2", "all", True)], layout),
        ([record("1", "all", True), record("2", []), record("3", "all", True)], layout),
    ]
    for records, want in cases:
        for order in itertools.permutations(records):
            state = DatasetState()
            for r in order:
                state.apply(r)
            assert state.hash_layout == want, [r["key"] for r in order]
            assert DatasetState.from_manifest(state.to_manifest()).hash_layout == want


def test_an_aggregate_on_the_hash_keys_of_a_written_dataset_is_local(sql_sessions, sources, tmp_path):
    sp = sql_sessions("local")
    _write(sp, sources / "lineitem", tmp_path / "lineitem", "l_orderkey", 4)
    query = "SELECT l_orderkey, sum(l_qty) AS qty, count(*) AS n FROM lineitem GROUP BY l_orderkey ORDER BY l_orderkey"
    dq = plan_sql(sp, query, {"lineitem": str(tmp_path / "lineitem")}, options=NO_BROADCAST)
    assert _exchanges(dq) == []
    assert "lineitem: hash-partitioned on l_orderkey into 4 (dataset manifest), no exchange" in dq.explain()
    con = duckdb.connect()
    want = con.execute(query.replace("FROM lineitem", f"FROM '{sources}/lineitem/*.parquet'")).fetchall()
    assert_same_result([tuple(r.values()) for r in dq.frame.take_all()], want, [0])
