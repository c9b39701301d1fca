"""One informative log line per stage start and finish, and no Alembic noise per catalog open."""

from __future__ import annotations

import logging

from pond_core.catalog import Catalog
from pond_core.examples import generate_shop
from pond_core.pipeline import compile_pipeline
from pond_core.runner import run_plan
from pond_core.stage_text import human_bytes

DAY = "2026-11-20"


def test_each_stage_logs_a_start_and_a_finish_line(tmp_path, caplog):
    shop, root = str(tmp_path / "shop"), str(tmp_path / "pond")
    generate_shop(shop, [DAY], orders_per_day=500, customers=50)
    plan = compile_pipeline("pond_core.examples:daily_revenue", {"ds": DAY, "source_root": shop, "output_root": str(tmp_path / "out")}, data_root=root)
    with caplog.at_level(logging.INFO, logger="pond.stage"):
        run_plan(plan, "logs", settings={"data_root": root, "executor": "local"})
        run_plan(plan, "logs", settings={"data_root": root, "executor": "local"})  # all committed: reused
    lines = [r.getMessage() for r in caplog.records if r.name == "pond.stage"]
    join = [line for line in lines if line.startswith("pond stage join_aggregate_customers_orders")]
    assert join[0].startswith("pond stage join_aggregate_customers_orders starts: reads stage orders_by_customer_id (bucket), stage customers_by_customer_id (bucket)")
    assert "partitions 4; SQL: SELECT c.segment, c.country, o.amount FROM orders_by_customer_id o JOIN" in join[0]
    assert join[1].startswith("pond stage join_aggregate_customers_orders done in ") and ": 4 partitions, " in join[1] and " rows, " in join[1]
    assert join[2].startswith("pond stage join_aggregate_customers_orders already committed, reused: 4 partitions")
    assert len(lines) == 3 * len(plan.stages)


def test_opening_the_catalog_again_logs_nothing_from_alembic(tmp_path, caplog):
    url = Catalog.default_url(str(tmp_path))
    Catalog(url).close()  # creates the schema (that may log its migrations)
    caplog.clear()  # (caplog holds the whole test's records, and an earlier test may let alembic's through)
    with caplog.at_level(logging.INFO):
        Catalog(url).close()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []


def test_human_bytes():
    assert [human_bytes(n) for n in (None, 0, 999, 1000, 12_345_678, 5 * 10**12)] == ["?", "0 B", "999 B", "1.0 kB", "12.3 MB", "5.0 TB"]


def test_each_partition_logs_one_debug_line_and_nothing_at_info(tmp_path, caplog):
    shop, root = str(tmp_path / "shop"), str(tmp_path / "pond")
    generate_shop(shop, [DAY], orders_per_day=200, customers=20)
    plan = compile_pipeline("pond_core.examples:daily_revenue", {"ds": DAY, "source_root": shop, "output_root": str(tmp_path / "out")}, data_root=root)
    with caplog.at_level(logging.DEBUG, logger="pond"):
        run_plan(plan, "partition-logs", settings={"data_root": root, "executor": "local"})
    join = plan.stages[[s.name for s in plan.stages].index("join_aggregate_customers_orders")]
    lines = [r for r in caplog.records if r.getMessage().startswith("stage join_aggregate_customers_orders partition ")]
    assert sorted(int(r.getMessage().split()[3]) for r in lines) == list(range(join.npartitions))
    assert {r.levelno for r in lines} == {logging.DEBUG} and all(" rows, " in r.getMessage() for r in lines)
