"""A real pipeline run recorded in the catalog, on SQLite and on PostgreSQL alike.

`catalog_db_url` (tests/support/postgres.py) gives an empty SQLite file and an empty
PostgreSQL schema; POND_REQUIRE_POSTGRES=1 turns a missing PostgreSQL into a failure.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pond_core.catalog import Catalog
from pond_core.cli import pond
from pond_core.pipeline import compile_pipeline
from pond_core.runner import run_plan
from tests.test_pipeline_defs import make_shop, revenue_by_day, written_revenue

REVENUE = "pond_core.examples:daily_revenue"
DAY = "2026-11-20"
STAGES = ["orders_by_customer_id", "customers_by_customer_id", "join_aggregate_customers_orders", "write_daily_revenue"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_shop(str(tmp_path_factory.mktemp("shop")), [DAY])


def cli_json(*args: str) -> object:
    result = CliRunner().invoke(pond, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_a_cli_run_is_recorded_in_the_catalog(catalog_db_url: str, shop: str, tmp_path: Path) -> None:
    root, out = tmp_path / "root", tmp_path / "revenue"
    where = ["--data-root", str(root), "--catalog", catalog_db_url]
    report = cli_json("run", REVENUE, "-p", f"ds={DAY}", "-p", f"source_root={shop}", "-p", f"output_root={out}", "--run-id", "cat-1", *where)
    assert report["status"] == "success"
    assert written_revenue(str(out), DAY) == revenue_by_day(shop, DAY)
    assert not (root / "catalog.sqlite").exists()  # the catalog given, not the default one

    with Catalog(catalog_db_url) as catalog:
        run = catalog.get_run("cat-1")
        assert (run["status"], run["pipeline"], run["params"]["ds"]) == ("success", REVENUE, DAY)
        assert sorted((s["stage_name"], s["status"], s["rows"]) for s in run["stages"]) == [
            ("customers_by_customer_id", "success", 200), ("join_aggregate_customers_orders", "success", 48), ("orders_by_customer_id", "success", 2_000), ("write_daily_revenue", "success", 12)]
        assert [p["key"] for p in catalog.list_partitions(str(out))] == [f"dt={DAY}"]
        assert len(catalog.run_lineage("cat-1")) == 4
        upstream = catalog.lineage(str(out))["upstream"]
        assert [e["uri"] for e in upstream] == ["pond://pond_core.examples.daily_revenue/join_aggregate_customers_orders"] and upstream[0]["rows"] == 48

    assert [r["run_id"] for r in cli_json("runs", *where)] == ["cat-1"]
    shown = cli_json("runs", "cat-1", *where)
    assert [s["stage_name"] for s in sorted(shown["stages"], key=lambda s: s["stage_name"])] == sorted(STAGES)
    assert [p["run_id"] for p in cli_json("partitions", str(out), *where)] == ["cat-1"]
    lineage = cli_json("lineage", f"{shop}/customers.parquet", *where)
    assert [e["uri"] for e in lineage["downstream"]] == ["pond://pond_core.examples.daily_revenue/customers_by_customer_id"]


def test_a_rerun_through_the_api_skips_stages_the_catalog_and_storage_hold(catalog_db_url: str, shop: str, tmp_path: Path) -> None:
    root, out = tmp_path / "root", tmp_path / "revenue"
    plan = compile_pipeline(REVENUE, {"ds": DAY, "source_root": shop, "output_root": str(out)}, data_root=str(root))
    settings = {"data_root": str(root), "catalog_url": catalog_db_url, "executor": "local"}
    first = run_plan(plan, "cat-2", settings=settings)
    again = run_plan(plan, "cat-2", settings=settings)
    assert again.stages == first.stages
    with Catalog(catalog_db_url) as catalog:
        run = catalog.get_run("cat-2")
        assert (run["status"], run["attempts"], run["plan_fingerprint"]) == ("success", 2, plan.fingerprint)
        assert {s["attempts"] for s in run["stages"]} == {1}
        assert catalog.runs_older_than("2999-01-01T00:00:00+00:00") == ["cat-2"]
