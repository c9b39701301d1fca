"""Daily revenue by customer segment and country: a pond pipeline as one Prefect task run per stage.

The pipeline (pond_core.examples:daily_revenue) reads one day of orders and the customers,
hash-repartitions both by customer, joins and aggregates per partition, and writes the day as
the `dt=<ds>` partition of the output dataset with overwrite_partitions. The flow run shows

    shop_data → orders_by_customer_id, customers_by_customer_id → join_aggregate_customers_orders → write_daily_revenue

with the plan, a progress bar and stage statistics as artifacts, and the datasets as assets.

    python flows/daily_revenue.py                       # run once, for yesterday (or --ds 2026-11-20)
    python flows/daily_revenue.py serve                 # serve the deployment pond-daily-revenue/daily (01:00 daily)
    python flows/daily_revenue.py backfill 2026-11-01 2026-11-03 [--force] [--wait]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Without PREFECT_API_URL, Prefect starts a temporary local server; give a busy machine time.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from _pond_example_data import OUTPUT, SHOP, ensure_shop_day, pond_config, run_day
from prefect import flow, task

from pond_prefect import run_pipeline

PIPELINE = "pond_core.examples:daily_revenue"
DATASET = os.path.join(OUTPUT, "daily_revenue")
DEPLOYMENT = "pond-daily-revenue/daily"


@task(name="shop_data", task_run_name="shop_data")  # no random suffix in the run's graph
def shop_data(ds: str) -> str:
    return ensure_shop_day(ds)


@flow(name="pond-daily-revenue")
def daily_revenue(ds: str | None = None, npartitions: int = 4, config: str | None = None, force: bool = False) -> Any:
    """Revenue of day `ds` (default: the day before the scheduled start) as partition dt=<ds>."""
    day = run_day(ds)
    landed = shop_data.submit(day)  # shown upstream of the first stages in the flow run's graph
    landed.result()  # the run id fingerprints the source files: they must exist first
    params = {"ds": day, "source_root": SHOP, "output_root": DATASET, "npartitions": npartitions}
    return run_pipeline(PIPELINE, params, config=pond_config(config), force=force, wait_for=[landed])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--ds", help="the day to compute (YYYY-MM-DD)")
    sub.add_parser("serve", help="serve the deployment and run its scheduled and backfilled runs")
    fill = sub.add_parser("backfill", help="one run of the served deployment per day, skipping committed days")
    fill.add_argument("start")
    fill.add_argument("end")
    fill.add_argument("--force", action="store_true", help="recompute committed days too")
    fill.add_argument("--wait", action="store_true", help="wait until every run is finished")
    args = parser.parse_args(argv)
    if args.command == "serve":
        daily_revenue.serve(name="daily", cron="0 1 * * *", tags=["pond", "example"])
    elif args.command == "backfill":
        from pond_prefect import backfill

        report = backfill(DEPLOYMENT, args.start, args.end, dataset=DATASET, config=pond_config(), force=args.force)
        for day, run in sorted(report.runs.items()):
            print(f"{day}: flow run {run.name} ({run.id}) {run.state.name if run.state else ''}")
        for day in report.skipped:
            print(f"{day}: committed, skipped")
        if args.wait:
            for day, state in sorted(report.wait().items()):
                print(f"{day}: {state.name}")
    else:
        result = daily_revenue(ds=args.ds)
        for name, stage in result["stages"].items():
            print(f"{name}: {stage['rows']} rows, {stage['bytes']} bytes, {stage['seconds']}s")
        print(f"output: {DATASET}")


if __name__ == "__main__":
    main()
