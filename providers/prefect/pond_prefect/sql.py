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
    hive_partitioning: bool | dict[str, bool] | None = None,
    output_table: str | None = None,
    iceberg_catalog: dict[str, str] | str | None = None,
    checks: list[dict[str, Any]] | None = None,
) -> Any:
    """The pond pipeline behind `run_sql` (address: `pond_prefect.sql:sql_pipeline`); the same
    as Airflow's PondSqlOperator runs (`pond_core.named_sql:sql_pipeline`). With `output_table`,
    the result is committed to that Iceberg table instead of `output_path`."""
    return api.sql_pipeline(
        sp, sql, inputs, output_path, partition_by, mode, hash_by, npartitions, hive_partitioning, output_table, iceberg_catalog, checks,
    )
