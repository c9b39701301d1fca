"""Example data and pipelines shared by the demo, the Airflow DAGs and the Prefect flows.

`generate_shop(root, days)` writes a small shop dataset: hive-partitioned orders
(`orders/dt=YYYY-MM-DD/*.parquet`) and a customers table. `daily_revenue` is a partitioned
multi-stage pipeline over it: read one day, hash-repartition orders and customers by customer,
join per partition, aggregate revenue by segment and country, and write that day's partition of
the output with overwrite_partitions, so rerunning a day replaces exactly that day.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import duckdb

from pond_core.dataframe import DataFrame, Sink
from pond_core.errors import PondConfigError
from pond_core.sql_quote import quote_str, sql_literal

SEGMENTS = ("consumer", "corporate", "home_office", "small_business")
COUNTRIES = ("DE", "FR", "JP", "US", "BR", "IN")


def generate_shop(root: str, days: Sequence[str], orders_per_day: int = 20_000, customers: int = 2_000) -> dict[str, Any]:
    """Write the example dataset under `root`; deterministic for the same arguments."""
    os.makedirs(os.path.join(root, "orders"), exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute("SELECT setseed(0.42)")
        con.execute(
            f"""COPY (
                SELECT i AS customer_id,
                       {list(SEGMENTS)}[1 + i % {len(SEGMENTS)}] AS segment,
                       {list(COUNTRIES)}[1 + (i * 7) % {len(COUNTRIES)}] AS country
                FROM range({customers}) t(i)
            ) TO {quote_str(os.path.join(root, "customers.parquet"))} (FORMAT parquet)"""
        )
        for day in days:
            _check_day(day)
            # Each day's orders follow from its date (not its position in `days`), so a day
            # generated alone (ensure_shop_day) equals the same day generated with others, and
            # days differ: a backfill shows different numbers for different days.
            seed = dt.date.fromisoformat(day).toordinal()
            busy = 0.7 + 0.1 * dt.date.fromisoformat(day).weekday()  # spend grows through the week
            folder = os.path.join(root, "orders", f"dt={day}")
            os.makedirs(folder, exist_ok=True)
            con.execute(
                f"""COPY (
                    SELECT {seed * orders_per_day} + i AS order_id,
                           (i * 7919 + {seed * 31}) % {customers} AS customer_id,
                           round((5 + ((i * 104729 + {seed * 7919}) % 50000) / 100.0) * {busy:.1f}, 2)::DECIMAL(12,2) AS amount,
                           {sql_literal(dt.datetime.fromisoformat(day))} + to_seconds((i * 37) % 86400) AS ordered_at
                    FROM range({orders_per_day}) t(i)
                ) TO {quote_str(os.path.join(folder, "part-0.parquet"))} (FORMAT parquet)"""
            )
    finally:
        con.close()
    return {"root": root, "days": list(days), "orders_per_day": orders_per_day, "customers": customers}


def ensure_shop_day(ds: str, root: str) -> str:
    """Write the shop's customers and the orders of day `ds` under `root` unless they exist.

    Each day is generated in a scratch folder and published by a rename, so concurrent runs (a
    backfill) never see half-written files. Returns the day's folder.
    """
    _check_day(ds)
    day = os.path.join(root, "orders", f"dt={ds}")
    customers = os.path.join(root, "customers.parquet")
    if os.path.isdir(day) and os.path.exists(customers):
        return day
    os.makedirs(os.path.join(root, "orders"), exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".generate-", dir=root)
    try:
        generate_shop(scratch, [ds])
        try:
            os.link(os.path.join(scratch, "customers.parquet"), customers)
        except FileExistsError:
            pass
        try:
            os.rename(os.path.join(scratch, "orders", f"dt={ds}"), day)
        except OSError:
            if not os.path.isdir(day):
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return day


def daily_revenue(sp: Any, ds: str, source_root: str, output_root: str, npartitions: int = 4) -> Sink:
    """Revenue of one day by customer segment and country, written as the `dt=<ds>` partition."""
    _check_day(ds)
    orders = sp.read_parquet(os.path.join(source_root, "orders", f"dt={ds}", "*.parquet"), hive_partitioning=False)
    customers = sp.read_parquet(os.path.join(source_root, "customers.parquet"))
    revenue = daily_revenue_frame(sp, orders, customers, ds, npartitions)
    return revenue.sink_parquet(output_root, partition_by="dt", mode="overwrite_partitions")


def daily_revenue_frame(sp: Any, orders: DataFrame, customers: DataFrame, ds: str, npartitions: int) -> DataFrame:
    by_customer = orders.repartition(npartitions, hash_by="customer_id")
    people = customers.repartition(npartitions, hash_by="customer_id")
    joined = sp.partial_sql(
        "SELECT c.segment, c.country, o.amount FROM {0} o JOIN {1} c ON o.customer_id = c.customer_id", by_customer, people
    )
    partial = sp.partial_sql(
        "SELECT segment, country, sum(amount) AS revenue, count(*) AS orders FROM {0} GROUP BY ALL", joined
    )
    return sp.partial_sql(
        "SELECT $ds AS dt, segment, country, sum(revenue) AS revenue, sum(orders)::BIGINT AS orders "
        "FROM {0} GROUP BY ALL ORDER BY segment, country",
        partial.repartition(1),
        params={"ds": dt.date.fromisoformat(ds)},
    )


def _check_day(day: str) -> None:
    try:
        dt.date.fromisoformat(day)
    except (TypeError, ValueError) as exc:
        raise PondConfigError(f"expected a date like 2026-11-20, got {day!r}") from exc
