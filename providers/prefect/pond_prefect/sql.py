"""One SQL statement over named Parquet inputs as a pond pipeline, and as flow steps.

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

import re
from typing import Any, Sequence

from pond_core.errors import PondConfigError
from pond_core.plan.sql import bind_named_inputs as bind_inputs

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def sql_pipeline(
    sp: Any,
    sql: str,
    inputs: dict[str, str | list[str]],
    output_path: str,
    partition_by: str | list[str] | None = None,
    mode: str = "error",
    hash_by: str | list[str] | None = None,
    npartitions: int | None = None,
    hive_partitioning: bool | None = None,
) -> Any:
    """The pond pipeline behind `run_sql` (address: `pond_prefect.sql:sql_pipeline`)."""
    bad = [name for name in inputs if not _NAME.match(name)]
    if bad or not inputs:
        raise PondConfigError(f"inputs must map SQL table names (letters, digits, _) to paths; bad names: {bad or 'no inputs'}")
    if npartitions is not None and hash_by is None and len(inputs) > 1:
        raise PondConfigError("npartitions without hash_by splits a single input; with several inputs give hash_by")
    keys = [hash_by] if isinstance(hash_by, str) else hash_by
    frames = []
    for path in inputs.values():
        df = sp.read_parquet(path, recursive=True, hive_partitioning=hive_partitioning)
        df = df.repartition(npartitions or 4, hash_by=keys) if keys else df.repartition(npartitions or 1)
        frames.append(df)
    query = sp.partial_sql(bind_inputs(sql, list(inputs)), *frames)
    return query.sink_parquet(output_path, partition_by=partition_by, mode=mode)


def run_sql(
    sql: str,
    inputs: dict[str, str | list[str]],
    output_path: str,
    *,
    partition_by: str | list[str] | None = None,
    mode: str = "error",
    hash_by: str | list[str] | None = None,
    npartitions: int | None = None,
    hive_partitioning: bool | None = None,
    **run_options: Any,
) -> Any:
    """Inside a flow: run one SQL statement as pond stages (see `run_pipeline` for options)."""
    from pond_prefect.flows import run_pipeline

    params = {
        "sql": sql,
        "inputs": dict(inputs),
        "output_path": output_path,
        "partition_by": partition_by,
        "mode": mode,
        "hash_by": hash_by,
        "npartitions": npartitions,
        "hive_partitioning": hive_partitioning,
    }
    return run_pipeline("pond_prefect.sql:sql_pipeline", params, **run_options)
