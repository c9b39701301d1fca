"""Committed work is reused only while what it read is unchanged (execute/input_key.py).

A stage id hashes the stage's definition, not its data: before inputs were part of the reuse
key, a session that counted a file, saw it overwritten and counted it again on a new DataFrame
got the old count. Here: that repro in a session, a multi-stage run in which one changed source
re-runs exactly the stages downstream of it, an unchanged rerun that reuses everything, a
resume that keeps partitions only when their inputs are the same, and an S3 source overwritten
in place.
"""

from __future__ import annotations

import os
import time

import duckdb
import pytest

import pond_core
from pond_core.errors import PondInputError
from pond_core.examples import generate_shop
from pond_core.execute.store import StageStore
from pond_core.layout import RunLayout
from pond_core.pipeline import compile_pipeline
from pond_core.runner import PlanResult, run_plan
from pond_core.settings import Settings

DAY = "2026-11-20"
RUN = "reuse-by-inputs"


def write_rows(path: str, n: int, con: duckdb.DuckDBPyConnection | None = None) -> None:
    (con or duckdb).sql(f"COPY (SELECT range AS x FROM range({n})) TO '{path}' (FORMAT parquet)")


def test_a_new_dataframe_sees_a_source_overwritten_in_the_same_session(tmp_path):
    src = str(tmp_path / "src.parquet")
    write_rows(src, 10)
    sp = pond_core.init(data_root=str(tmp_path / "pond"), executor="local")
    try:
        assert sp.read_parquet(src).count() == 10
        write_rows(src, 25)
        assert sp.read_parquet(src).count() == 25
        assert sp.read_parquet(src).count() == 25  # and now that is what is reused
    finally:
        sp.shutdown()


def test_a_file_rewritten_with_the_same_size_is_still_seen(tmp_path):
    src = str(tmp_path / "src.parquet")
    duckdb.sql(f"COPY (SELECT 1 AS x) TO '{src}' (FORMAT parquet)")
    sp = pond_core.init(data_root=str(tmp_path / "pond"), executor="local")
    try:
        assert sp.read_parquet(src).to_arrow().to_pylist() == [{"x": 1}]
        size = os.path.getsize(src)
        duckdb.sql(f"COPY (SELECT 2 AS x) TO '{src}' (FORMAT parquet)")
        assert os.path.getsize(src) == size  # only the modification time tells them apart
        assert sp.read_parquet(src).to_arrow().to_pylist() == [{"x": 2}]
    finally:
        sp.shutdown()


def test_a_deleted_source_is_not_reused_but_named(tmp_path):
    src = str(tmp_path / "src.parquet")
    write_rows(src, 10)
    sp = pond_core.init(data_root=str(tmp_path / "pond"), executor="local")
    try:
        assert sp.read_parquet(src).count() == 10
        os.remove(src)
        with pytest.raises(PondInputError, match="path not found"):
            sp.read_parquet(src).count()
    finally:
        sp.shutdown()


@pytest.fixture
def shop(tmp_path):
    root, out, data_root = str(tmp_path / "shop"), str(tmp_path / "revenue"), str(tmp_path / "pond")
    generate_shop(root, [DAY], orders_per_day=500, customers=50)
    plan = compile_pipeline(
        "pond_core.examples:daily_revenue", {"ds": DAY, "source_root": root, "output_root": out}, data_root=data_root
    )
    return plan, Settings.resolve(data_root=data_root, executor="local", job_id=RUN), root, out


def started(result: PlanResult) -> dict[str, float]:
    return {name: m.result.started_at for name, m in result.manifests.items()}


def revenue(out: str) -> list[tuple]:
    return duckdb.sql(f"SELECT segment, sum(revenue) FROM read_parquet('{out}/*/*.parquet') GROUP BY ALL ORDER BY ALL").fetchall()


def test_an_unchanged_rerun_reuses_every_stage(shop):
    plan, settings, _, _ = shop
    first = run_plan(plan, RUN, settings=settings)
    again = run_plan(plan, RUN, settings=settings)
    assert started(again) == started(first)
    assert set(started(first)) == {s.name for s in plan.stages}


def test_a_changed_source_reruns_exactly_the_stages_downstream_of_it(shop):
    plan, settings, root, out = shop
    first = run_plan(plan, RUN, settings=settings)
    before = revenue(out)
    assert len(before) > 1
    customers = os.path.join(root, "customers.parquet")
    duckdb.sql(
        f"COPY (SELECT customer_id, 'everyone' AS segment, country FROM '{customers}') TO '{customers}.new' (FORMAT parquet)"
    )
    os.replace(customers + ".new", customers)

    again = run_plan(plan, RUN, settings=settings)
    reran = {name for name, t in started(again).items() if t != started(first)[name]}
    downstream = {s.name for s in plan.stages if s.name != "orders_by_customer_id"}
    assert "customers_by_customer_id" in reran
    assert reran == downstream  # every stage but the one that reads only the orders
    assert revenue(out) == [("everyone", sum(r for _, r in before))]


def test_a_resume_drops_partitions_committed_over_other_inputs(shop):
    """Task records of a stage killed half-way are kept only if its inputs are unchanged."""
    plan, settings, _, _ = shop
    run_plan(plan, RUN, settings=settings)
    store = StageStore.of(RunLayout(settings.data_root, RUN), None)
    stage = plan.stage("orders_by_customer_id")
    manifest = store.manifest(stage.id)
    assert manifest is not None and manifest.inputs is not None
    store.fs.delete(os.path.join(store.stage_dir(stage.id), "_manifest.json"))  # as if killed before the commit
    records = os.path.join(store.stage_dir(stage.id), "_tasks")
    assert os.listdir(records)
    store.prepare(stage.id, manifest.inputs)  # the same inputs: the records stay
    assert os.listdir(records)
    changed = type(manifest.inputs)((("orders", "another digest"),))
    store.prepare(stage.id, changed)
    assert not os.path.exists(records)


def test_an_s3_object_overwritten_in_place_is_read_again(s3_server, s3_options, tmp_path):
    bucket = s3_server.new_bucket()
    key = "src/data.parquet"
    local = str(tmp_path / "x.parquet")
    client = s3_server.client()

    def put(n: int, start: int = 0) -> str:
        duckdb.sql(f"COPY (SELECT range AS x FROM range({start}, {start + n})) TO '{local}' (FORMAT parquet, COMPRESSION uncompressed)")
        with open(local, "rb") as fh:
            client.put_object(Bucket=bucket, Key=key, Body=fh.read())
        return client.head_object(Bucket=bucket, Key=key)["ETag"]

    def total() -> list[int]:
        return sp.read_parquet(f"s3://{bucket}/{key}").to_arrow().column("x").to_pylist()

    first_etag = put(10)
    sp = pond_core.init(data_root=str(tmp_path / "pond"), executor="local", storage_options=s3_options)
    try:
        assert sp.read_parquet(f"s3://{bucket}/{key}").count() == 10
        assert put(25) != first_etag
        assert sp.read_parquet(f"s3://{bucket}/{key}").count() == 25
        # The same size, other bytes: only LastModified (one-second resolution) tells them apart.
        size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        assert sorted(total()) == list(range(25))
        time.sleep(1.1)
        put(25, 1000)
        assert client.head_object(Bucket=bucket, Key=key)["ContentLength"] == size
        assert sorted(total()) == list(range(1000, 1025))
    finally:
        sp.shutdown()
