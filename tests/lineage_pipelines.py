"""A three-way join over three source datasets joined on different keys, as a DataFrame
pipeline and as planned SQL, for column-level lineage (tests/test_column_lineage.py and the
Airflow provider's OpenLineage test)."""

from __future__ import annotations

import os
from typing import Any

import duckdb

from pond_core.sql_quote import quote_str

THREE_WAY_SQL = (
    "SELECT o.order_id, c.name AS customer, r.region_name AS region, o.amount * (1 - o.discount) AS net, "
    "upper(c.country) || '-' || r.region_name AS market "
    "FROM orders o JOIN customers c ON o.customer_id = c.customer_id JOIN regions r ON c.country = r.country"
)

# What each output column is computed from: (source, column) pairs.
EXPECTED = {
    "order_id": {("orders", "order_id")},
    "customer": {("customers", "name")},
    "region": {("regions", "region_name")},
    "net": {("orders", "amount"), ("orders", "discount")},
    "market": {("customers", "country"), ("regions", "region_name")},
}


def source_paths(root: str) -> dict[str, str]:
    return {name: os.path.join(root, f"{name}.parquet") for name in ("orders", "customers", "regions")}


def write_sources(root: str) -> dict[str, str]:
    """Three small Parquet datasets; returns name -> file path."""
    os.makedirs(root, exist_ok=True)
    paths = source_paths(root)
    con = duckdb.connect()
    try:
        con.execute(
            f"COPY (SELECT i AS order_id, i % 50 AS customer_id, (i % 97)::DOUBLE AS amount, (i % 5) / 10.0 AS discount, "
            f"'note' AS note FROM range(400) t(i)) TO {quote_str(paths['orders'])} (FORMAT parquet)"
        )
        con.execute(
            f"COPY (SELECT i AS customer_id, 'c' || i AS name, ['de', 'fr', 'jp'][1 + i % 3] AS country, i AS age "
            f"FROM range(50) t(i)) TO {quote_str(paths['customers'])} (FORMAT parquet)"
        )
        con.execute(
            f"COPY (SELECT * FROM (VALUES ('de', 'Europe', 1), ('fr', 'Europe', 2), ('jp', 'Asia', 3)) v(country, region_name, code)) "
            f"TO {quote_str(paths['regions'])} (FORMAT parquet)"
        )
    finally:
        con.close()
    return paths


def three_way_frames(sp: Any, source_root: str, output: str, npartitions: int = 3) -> Any:
    """The join with the DataFrame API: two exchange rounds, per-partition SQL."""
    paths = source_paths(source_root)
    orders = sp.read_parquet(paths["orders"]).repartition(npartitions, hash_by="customer_id")
    customers = sp.read_parquet(paths["customers"]).repartition(npartitions, hash_by="customer_id")
    with_customer = sp.partial_sql(
        "SELECT o.order_id, o.amount, o.discount, c.name, c.country FROM {0} o JOIN {1} c ON o.customer_id = c.customer_id",
        orders, customers,
    )
    regions = sp.read_parquet(paths["regions"]).repartition(npartitions, hash_by="country")
    joined = sp.partial_sql(
        "SELECT x.order_id, x.name AS customer, r.region_name AS region, x.amount * (1 - x.discount) AS net, "
        "upper(x.country) || '-' || r.region_name AS market FROM {0} x JOIN {1} r ON x.country = r.country",
        with_customer.repartition(npartitions, hash_by="country"), regions,
    )
    return joined.sink_parquet(output, mode="overwrite")


def three_way_sql(sp: Any, source_root: str, output: str) -> Any:
    """The same join as one SQL statement over whole datasets: pond plans the exchanges."""
    paths = source_paths(source_root)
    return sp.sql(THREE_WAY_SQL, **paths).sink_parquet(output, mode="overwrite")


def python_steps(sp: Any, source_root: str, output: str) -> Any:
    """A Python filter (columns pass through unchanged) and a Python map (opaque columns)."""
    paths = source_paths(source_root)
    kept = sp.read_parquet(paths["orders"]).filter(lambda row: row["amount"] > 10)
    doubled = kept.map(lambda row: {"order_id": row["order_id"], "twice": row["amount"] * 2}, schema={"order_id": "BIGINT", "twice": "DOUBLE"})
    return sp.partial_sql("SELECT k.order_id, k.discount, d.twice FROM {0} k JOIN {1} d USING (order_id)", kept, doubled).sink_parquet(output)
