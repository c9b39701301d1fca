"""A pipeline as a flow: task runs per stage, the cache, artifacts and assets, via Prefect's API."""

from __future__ import annotations

import datetime as dt
import os

import prefect_api
import pytest
from prefect import flow

from pond_core.pipeline import compile_pipeline
from pond_prefect import PondConfig, asset_key, run_pipeline
from pond_prefect.assets import stage_asset

PIPELINE = "pond_core.examples:daily_revenue"
DS = "2026-11-20"

pytestmark = pytest.mark.usefixtures("prefect_api")


@flow(name="pond-test-daily-revenue")
def daily_flow(ds: str, source_root: str, output_root: str, storage_root: str, force: bool = False) -> dict:
    params = {"ds": ds, "source_root": source_root, "output_root": output_root}
    return run_pipeline(PIPELINE, params, config=PondConfig(data_root=storage_root, executor="local"), retry_delay_seconds=0, force=force)


def params(shop: str, out: str) -> dict:
    return {"ds": DS, "source_root": shop, "output_root": out}


@pytest.fixture(scope="module")
def first_run(shop, prefect_api, tmp_path_factory):
    base = tmp_path_factory.mktemp("daily")
    pond_root, out = str(base / "pond"), str(base / "revenue")
    since = dt.datetime.now(dt.timezone.utc)
    state = daily_flow(DS, shop, out, pond_root, return_state=True)
    assert state.is_completed(), state
    plan = compile_pipeline(PIPELINE, params(shop, out), data_root=pond_root)
    return {"state": state, "plan": plan, "out": out, "since": since, "root": pond_root, "shop": shop}


def test_one_task_run_per_stage_named_after_it_with_the_plan_dependencies(first_run):
    plan = first_run["plan"]
    runs = prefect_api.task_runs(first_run["state"].state_details.flow_run_id)
    assert sorted(runs) == sorted(s.name for s in plan.stages)
    by_id = {r.id: name for name, r in runs.items()}
    for stage in plan.stages:
        run = runs[stage.name]
        assert run.state.name == "Completed"
        upstream = {by_id[i.id] for inputs in run.task_inputs.values() for i in inputs if getattr(i, "input_type", "") == "task_run"}
        assert upstream == {plan.stage(d).name for d in stage.depends_on}
    assert os.path.isdir(os.path.join(first_run["out"], f"dt={DS}"))


def test_rerun_with_unchanged_inputs_is_cached_and_does_no_work(first_run):
    from pond_core.catalog import Catalog

    catalog = Catalog(Catalog.default_url(first_run["root"]))
    run_id = first_run["state"].result()["run_id"]
    attempts = lambda run: [run["attempts"], *[s["attempts"] for s in run["stages"]]]  # noqa: E731
    before = attempts(catalog.get_run(run_id))
    again = daily_flow(DS, first_run["shop"], first_run["out"], first_run["root"], return_state=True)
    assert again.is_completed()
    assert attempts(catalog.get_run(run_id)) == before  # pond ran nothing
    runs = prefect_api.task_runs(again.state_details.flow_run_id)
    assert {name: r.state.name for name, r in runs.items()} == {s.name: "Cached" for s in first_run["plan"].stages}
    first = first_run["state"].result()
    assert again.result()["stages"] == first["stages"]  # the recorded results, not new ones


def test_force_recomputes_every_stage(first_run):
    forced = daily_flow(DS, first_run["shop"], first_run["out"], first_run["root"], force=True, return_state=True)
    runs = prefect_api.task_runs(forced.state_details.flow_run_id)
    assert {r.state.name for r in runs.values()} == {"Completed"}
    before = first_run["state"].result()["stages"]
    after = forced.result()["stages"]
    assert all(after[name]["finished_at"] > before[name]["finished_at"] for name in before)
    assert after[first_run["plan"].final.name]["rows"] == before[first_run["plan"].final.name]["rows"]


def test_a_changed_input_invalidates_the_cache(first_run, tmp_path):
    import shutil

    shop = str(tmp_path / "shop-copy")
    shutil.copytree(first_run["shop"], shop)
    again = daily_flow(DS, shop, first_run["out"], first_run["root"], return_state=True)
    assert again.is_completed()
    orders = os.path.join(shop, "orders", f"dt={DS}", "part-0.parquet")
    os.utime(orders, ns=(1, 1))
    third = daily_flow(DS, shop, first_run["out"], first_run["root"], return_state=True)
    runs = prefect_api.task_runs(third.state_details.flow_run_id)
    assert all(r.state.name == "Completed" for r in runs.values()), {n: r.state.name for n, r in runs.items()}


def test_plan_progress_and_stats_artifacts_per_flow_run_and_one_per_stage(first_run):
    plan = first_run["plan"]
    made = prefect_api.artifacts(first_run["state"].state_details.flow_run_id)
    found = {a.type: a for a in made if not (a.key or "").startswith("pond-test-daily-revenue-stage-")}
    assert set(found) == {"markdown", "table", "progress"}
    assert all(s.name in found["markdown"].data for s in plan.stages)
    per_stage = {a.key: a for a in made if (a.key or "").startswith("pond-test-daily-revenue-stage-")}
    assert set(per_stage) == {"pond-test-daily-revenue-stage-" + s.name.replace("_", "-") for s in plan.stages}
    join = per_stage["pond-test-daily-revenue-stage-join-aggregate-customers-orders"]
    assert all(t in join.data for t in ("FROM orders_by_customer_id o JOIN customers_by_customer_id c", "**Partitions** 4", "**Committed**"))
    assert join.task_run_id is not None  # on the stage's own task run
    assert float(found["progress"].data) == 100.0
    table = found["table"].data
    rows = {r["stage"]: r for r in (table if isinstance(table, list) else __import__("json").loads(table))}
    assert set(rows) == {s.name for s in plan.stages}
    final = rows[plan.final.name]
    assert final["rows"] > 0 and final["size"].endswith(" B") and final["partitions"] == 1 and final["state"] == "Completed"


def test_assets_with_their_upstreams_and_lineage_on_cache_hits(first_run):
    plan = first_run["plan"]
    final = stage_asset(plan, plan.final).key
    partition = asset_key(os.path.join(first_run["out"], f"dt={DS}"))
    upstream = stage_asset(plan, plan.stage(plan.final.depends_on[0])).key

    def materialized(events):
        return {e["resource"]["prefect.resource.id"]: e for e in events}

    first_id = first_run["state"].state_details.flow_run_id
    found = materialized(prefect_api.events("prefect.asset.materialization.succeeded", first_id, first_run["since"], lambda ev: partition in materialized(ev)))
    assert {stage_asset(plan, s).key for s in plan.stages} | {partition} <= set(found)
    related = {r["prefect.resource.id"] for r in found[final]["related"] if r.get("prefect.resource.role") == "asset"}
    assert upstream in related
    orders = asset_key(os.path.join(first_run["shop"], "orders"))  # the dataset, not the day's glob
    first_stage = found[stage_asset(plan, plan.stages[0]).key]
    assert orders in {r["prefect.resource.id"] for r in first_stage["related"]}
    assert found[partition]["payload"]["rows"] > 0

    since = dt.datetime.now(dt.timezone.utc)
    again = daily_flow(DS, first_run["shop"], first_run["out"], first_run["root"], return_state=True)
    again_id = again.state_details.flow_run_id
    cached = materialized(prefect_api.events("prefect.asset.materialization.succeeded", again_id, since, lambda ev: partition in materialized(ev)))
    assert partition in cached and final in cached
    assert cached[partition]["payload"]["pond.cached"] is True
    final_run = prefect_api.task_runs(again_id)[plan.final.name]
    assert final_run.state.name == "Cached"
    task_runs = {r["prefect.resource.id"] for r in cached[final]["related"] if r.get("prefect.resource.role") == "task-run"}
    assert task_runs == {f"prefect.task-run.{final_run.id}"}


def test_after_the_run_is_cleaned_every_stage_runs_again(shop, tmp_path):
    import shutil

    root, out = str(tmp_path / "pond"), str(tmp_path / "revenue")
    first = daily_flow(DS, shop, out, root, return_state=True)
    run_id = first.result()["run_id"]
    shutil.rmtree(os.path.join(root, "jobs", run_id))  # what `pond clean` removes
    again = daily_flow(DS, shop, out, root, return_state=True)
    assert again.is_completed(), again
    assert again.result()["run_id"] == run_id
    runs = prefect_api.task_runs(again.state_details.flow_run_id)
    assert {r.state.name for r in runs.values()} == {"Completed"}  # not Cached: their outputs are gone


def test_a_cached_rerun_puts_each_stage_artifact_on_its_cached_task_run(first_run):
    plan = first_run["plan"]
    again = daily_flow(DS, first_run["shop"], first_run["out"], first_run["root"], return_state=True)
    flow_run_id = again.state_details.flow_run_id
    runs = prefect_api.task_runs(flow_run_id)
    assert {r.state.name for r in runs.values()} == {"Cached"}
    per_stage = {a.task_run_id: a for a in prefect_api.artifacts(flow_run_id) if (a.key or "").startswith("pond-test-daily-revenue-stage-")}
    assert set(per_stage) == {runs[s.name].id for s in plan.stages}
    final = per_stage[runs[plan.final.name].id]
    assert "**Cached**" in final.data and first_run["state"].result()["run_id"] in final.data and "**Committed**" in final.data
