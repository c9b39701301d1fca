"""Any stage of a finished run can run again (what an orchestrator's "clear" does): upstream
outputs dropped at the end of the run are recomputed from their committed inputs, the output is
identical, and the run is closed again. Without recompute_upstream the error names the missing
stage and the remedy."""

from __future__ import annotations

import duckdb
import pytest

from pond_core.catalog import Catalog
from pond_core.errors import PondConfigError
from pond_core.examples import generate_shop
from pond_core.pipeline import compile_pipeline
from pond_core.runner import run_plan, run_stage
from pond_core.settings import Settings
from pond_core.stages import drop_intermediates

DAY = "2026-11-20"
RUN = "rerun-after-success"


@pytest.fixture
def finished(tmp_path):
    shop, out, root = str(tmp_path / "shop"), str(tmp_path / "revenue"), str(tmp_path / "pond")
    generate_shop(shop, [DAY], orders_per_day=2_000, customers=200)
    plan = compile_pipeline("pond_core.examples:daily_revenue", {"ds": DAY, "source_root": shop, "output_root": out}, data_root=root)
    settings = Settings.resolve(data_root=root, executor="local", job_id=RUN)
    run_plan(plan, RUN, settings=settings)
    drop_intermediates(RUN, settings)  # what the orchestrators do when the final stage commits
    return plan, settings, out


def rows(out: str) -> list[tuple]:
    return duckdb.sql(f"SELECT * FROM read_parquet('{out}/*/*.parquet', hive_partitioning=true) ORDER BY ALL").fetchall()


@pytest.mark.parametrize("stage", ["join_aggregate_customers_orders", "write_daily_revenue", "orders_by_customer_id"])
def test_a_stage_of_a_finished_run_runs_again_and_changes_nothing(finished, stage):
    plan, settings, out = finished
    before = rows(out)
    manifest = run_stage(plan, stage, RUN, settings=settings, force=True, recompute_upstream=True)
    assert manifest.result.stage == stage
    assert rows(out) == before and len(before) == 12
    with Catalog(settings.resolved_catalog_url) as catalog:
        run = catalog.get_run(RUN)
    assert run["status"] == "success"  # re-running a middle stage closes the finished run again
    assert {s["stage_name"]: s["status"] for s in run["stages"]} == {s.name: "success" for s in plan.stages}


def test_without_recompute_the_error_names_the_stage_and_the_remedy(finished):
    plan, settings, _ = finished
    with pytest.raises(PondConfigError) as err:
        run_stage(plan, "join_aggregate_customers_orders", RUN, settings=settings, force=True)
    text = str(err.value)
    assert "reads the output of stage orders_by_customer_id" in text or "reads the output of stage customers_by_customer_id" in text
    assert "clear join_aggregate_customers_orders with its upstream tasks" in text
