"""Run a sink's checks on a stage's staged files, before its commit (see pond_core/checks.py)."""

from __future__ import annotations

from pond_core.checks import RELATION, CheckResult, run_checks, verdict
from pond_core.io import configure_duckdb
from pond_core.io.options import StorageOptions
from pond_core.plan.physical import Schema
from pond_core.specs.sink import SinkSpec
from pond_core.sql_quote import path_list, quote_str


def check_staged(
    stage: str, spec: SinkSpec, files: list[str], schema: Schema, storage: StorageOptions | None
) -> tuple[CheckResult, ...]:
    """Results of `spec.checks` over `files` (read as one relation); raises PondCheckError
    when an error-level check fails."""
    import duckdb

    con = duckdb.connect()
    try:
        configure_duckdb(con, storage, files)
        con.execute(f"CREATE TEMP VIEW {RELATION} AS {_staged_sql(spec, files, schema)}")
        results = run_checks(con, spec.checks)
    finally:
        con.close()
    verdict(stage, spec.path, results)
    return results


def _staged_sql(spec: SinkSpec, files: list[str], schema: Schema) -> str:
    from pond_core.execute.inputs import empty_sql

    if not files:
        return empty_sql(schema)
    hive = ", hive_partitioning=false"
    if spec.partition_by and not spec.write_partition_columns:
        # The partition columns live in the paths: type them as the stage produced them.
        types = dict(schema)
        body = ", ".join(f"{quote_str(c)}: {types.get(c, 'VARCHAR')}" for c in spec.partition_by)
        hive = f", hive_partitioning=true, hive_types={{{body}}}"
    return f"SELECT * FROM read_parquet({path_list(files)}, union_by_name=true{hive})"
