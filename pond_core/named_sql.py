"""One SQL statement over named inputs: the shape both orchestrator integrations offer.

    named_sql(sp, "SELECT ... FROM orders JOIN customers USING (customer_id)",
              {"orders": "s3://shop/orders", "customers": "/data/customers.parquet"})

The SQL names its inputs like tables and reads them whole, as in DuckDB: pond's SQL planner
(`pond_core.sqlplan`, what `Session.sql` uses) places the exchanges, two-phase aggregates and
broadcasts, so a join of three datasets on different keys runs as several partitioned stages.
`npartitions` fixes the partition count; `hash_by` hash-partitions every input that holds those
columns first (a join or aggregate on them then needs no exchange), the others are planned as
usual; `strict` makes any part that would run in one partition an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pond_core.dataframe import DataFrame
from pond_core.errors import PondConfigError
from pond_core.plan.naming import slug, source_name
from pond_core.plan.statement import check_one_query

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_HASH_PARTITIONS = 4  # `hash_by` without `npartitions`

HivePartitioning = bool | Mapping[str, bool] | None


def check_named_inputs(
    inputs: Mapping[str, Any],
    hash_by: str | Sequence[str] | None = None,
    npartitions: int | None = None,
    hive_partitioning: HivePartitioning = None,
) -> None:
    """Raise PondConfigError (a ValueError) for arguments no run could accept."""
    bad = [name for name in inputs if not _NAME.match(name)]
    if bad or not inputs:
        raise PondConfigError(f"inputs must map SQL table names (letters, digits, _) to paths; bad names: {bad or 'no inputs'}")
    if isinstance(hive_partitioning, Mapping) and set(hive_partitioning) - set(inputs):
        raise PondConfigError(f"hive_partitioning names no input: {', '.join(sorted(set(hive_partitioning) - set(inputs)))}")
    if npartitions is not None and (not isinstance(npartitions, int) or npartitions < 1):
        raise PondConfigError(f"npartitions must be a positive integer, got {npartitions!r}")
    if hash_by is not None and not ([hash_by] if isinstance(hash_by, str) else list(hash_by)):
        raise PondConfigError("hash_by needs at least one column")


def named_sql(
    sp: Any,
    sql: str,
    inputs: Mapping[str, str | list[str]],
    *,
    hash_by: str | Sequence[str] | None = None,
    npartitions: int | None = None,
    hive_partitioning: HivePartitioning = None,
    strict: bool | None = None,
) -> DataFrame:
    """The DataFrame of `sql` over `inputs` (table name -> path, glob, s3:// URL or dataset dir)."""
    from pond_core.sqlplan import plan_sql
    from pond_core.sqlplan.inputs import InputHashing

    check_named_inputs(inputs, hash_by, npartitions, hive_partitioning)
    check_one_query(sql, "sql")  # before any input is even looked at
    keys = (hash_by,) if isinstance(hash_by, str) else (tuple(hash_by) if hash_by else None)
    frames = {}
    for name, path in inputs.items():
        hive = hive_partitioning.get(name) if isinstance(hive_partitioning, Mapping) else hive_partitioning
        frames[name] = sp.read_parquet(path, recursive=True, hive_partitioning=hive).alias(name)  # names its stages
    hashing = InputHashing(keys, npartitions or DEFAULT_HASH_PARTITIONS) if keys else None
    return plan_sql(sp, sql, frames, npartitions=npartitions, strict=strict, hashing=hashing).frame


def sql_pipeline(
    sp: Any,
    sql: str,
    inputs: dict[str, str | list[str]],
    output_path: str | None = None,
    partition_by: str | list[str] | None = None,
    mode: str | None = None,
    hash_by: str | list[str] | None = None,
    npartitions: int | None = None,
    hive_partitioning: HivePartitioning = None,
    output_table: str | None = None,
    iceberg_catalog: dict[str, str] | str | None = None,
    checks: list[dict[str, Any]] | None = None,
) -> Any:
    """`named_sql` written to a dataset, as a pipeline (`pond_core.named_sql:sql_pipeline`): so
    an orchestrator's one-statement task is a pond run like any other, in the catalog. With
    `output_table`, the result is committed to that Iceberg table instead of `output_path`."""
    query = named_sql(sp, sql, inputs, hash_by=hash_by, npartitions=npartitions, hive_partitioning=hive_partitioning)
    # This pipeline serves every SQL task: its write is named after the task's output, not after it.
    if output_table:
        name = f"write_{slug(output_table)}"
        return query.sink_iceberg(output_table, mode=mode or "append", partition_by=partition_by, catalog=iceberg_catalog, checks=checks or (), name=name)
    if not output_path:
        raise PondConfigError("a SQL task needs output_path (a Parquet dataset) or output_table (an Iceberg table)")
    name = f"write_{source_name([output_path])}"
    return query.sink_parquet(output_path, partition_by=partition_by, mode=mode or "error", checks=checks or (), name=name)


def sql_pipeline_params(
    sql: str,
    inputs: Mapping[str, str | list[str]],
    output_path: str | None = None,
    *,
    partition_by: str | list[str] | None = None,
    mode: str | None = None,
    hash_by: str | list[str] | None = None,
    npartitions: int | None = None,
    hive_partitioning: HivePartitioning = None,
    output_table: str | None = None,
    iceberg_catalog: dict[str, str] | str | None = None,
    checks: Sequence[Any] = (),
) -> dict[str, Any]:
    """`sql_pipeline`'s parameters for one statement, as an orchestrator's SQL task passes them.
    The Iceberg and checks keys appear only when used, so a Parquet task keeps its plan (and
    its run ids). Checks may be `pond_core.checks` objects or their dicts."""
    params: dict[str, Any] = {
        "sql": sql, "inputs": dict(inputs), "output_path": output_path, "partition_by": partition_by, "mode": mode,
        "hash_by": hash_by, "npartitions": npartitions, "hive_partitioning": hive_partitioning,
    }
    if output_table:
        params.update(output_table=output_table, iceberg_catalog=iceberg_catalog)
    if checks:
        params["checks"] = [c if isinstance(c, dict) else c.to_dict() for c in checks]
    return params
