"""The columns a source input gives a stage, read from the data (Parquet footers, a table's
snapshot schema) or from the spec (CSV and JSON sources declare theirs).

Column lineage needs them and the plan does not hold them: a Parquet source's columns are
whatever its files have. They are read the way a stage reads the source (the same listing,
hive columns and projection), with DuckDB's DESCRIBE, which reads metadata, not rows. A
source that cannot be described (unreachable storage, no files) is reported as unknown, so
lineage stays metadata that never fails a run.
"""

from __future__ import annotations

import logging

import duckdb

from pond_core.errors import PondError
from pond_core.execute.inputs import Part, source_sql
from pond_core.io import configure_duckdb, hive_read_options, resolve_paths
from pond_core.io.options import StorageOptions
from pond_core.plan.logical import SourceFormat, SourceSpec
from pond_core.plan.physical import Schema, SourceInput

log = logging.getLogger("pond")


def source_schema(inp: SourceInput, options: StorageOptions | None = None) -> Schema | None:
    """The source's columns and DuckDB types, or None when they cannot be read."""
    try:
        return _describe(inp.source, options)
    except (PondError, OSError, duckdb.Error) as exc:
        log.warning("column lineage: cannot read the columns of source %s (%s)", ", ".join(inp.source.paths), exc)
        return None


def _describe(source: SourceSpec, options: StorageOptions | None) -> Schema | None:
    if source.format in (SourceFormat.CSV, SourceFormat.JSON):
        return _project(source.schema, source.columns) if source.schema else None
    if source.table is not None:
        from pond_core.io.table_read import resolve_table

        return _project(resolve_table(source.table, options).schema, source.columns)
    files = resolve_paths(list(source.paths), source.recursive, options)
    read = files if source.union_by_name else files[:1]  # one file's footer, unless columns vary by file
    sql = source_sql(source, Part(tuple(read)), hive_read_options(files, None, source.hive_partitioning))
    con = duckdb.connect()
    try:
        configure_duckdb(con, options, files[:1])
        return tuple((str(r[0]), str(r[1])) for r in con.execute(f"DESCRIBE {sql}").fetchall())
    finally:
        con.close()


def _project(schema: Schema, columns: tuple[str, ...] | None) -> Schema:
    if not columns:
        return schema
    wanted = {c.lower() for c in columns}
    return tuple((n, t) for n, t in schema if n.lower() in wanted)
