"""One SQL statement over named Parquet inputs as a pond pipeline (`run_sql` in
`pond_prefect.flows` runs it inside a flow).

    run_sql(
        "SELECT dt, customer_id, sum(amount) AS spend FROM orders o JOIN customers c USING (customer_id) GROUP BY ALL",
        inputs={"orders": "/data/shop/orders", "customers": "/data/shop/customers.parquet"},
        output_path="/data/spend", partition_by="dt", mode="overwrite_partitions",
        hash_by="customer_id", npartitions=4,
    )

The SQL names inputs like tables. With `hash_by` every input is hash-partitioned on those
columns and the SQL runs once per partition (right for joins and aggregations keyed on them);
with only `npartitions` a single input is split evenly (row-wise SQL); with neither, each
input is one partition and the SQL sees whole tables.
"""

from __future__ import annotations

from typing import Any

from pond_core import api


def sql_pipeline(
    sp: Any,
    sql: str,
    inputs: dict[str, str | list[str]],
    output_path: str | None,
    partition_by: str | list[str] | None = None,
    mode: str | None = None,
    hash_by: str | list[str] | None = None,
    npartitions: int | None = None,
    hive_partitioning: bool | None = None,
    output_table: str | None = None,
    iceberg_catalog: dict[str, str] | str | None = None,
    checks: list[dict[str, Any]] | None = None,
) -> Any:
    """The pond pipeline behind `run_sql` (address: `pond_prefect.sql:sql_pipeline`); with
    `output_table`, the result is committed to that Iceberg table instead of `output_path`."""
    query = api.named_sql(sp, sql, inputs, hash_by=hash_by, npartitions=npartitions, hive_partitioning=hive_partitioning)
    if output_table:
        return query.sink_iceberg(output_table, mode=mode or "append", partition_by=partition_by, catalog=iceberg_catalog, checks=checks or ())
    if not output_path:
        raise api.PondConfigError("run_sql needs output_path (a Parquet dataset) or output_table (an Iceberg table)")
    return query.sink_parquet(output_path, partition_by=partition_by, mode=mode or "error", checks=checks or ())
