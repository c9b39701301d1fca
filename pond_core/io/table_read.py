"""Iceberg and Delta sources: a table snapshot becomes a list of Parquet files, split like Parquet.

When a stage starts, the table's library (pyiceberg, deltalake) resolves the snapshot (an id,
a time, or a version) and plans its data files, pruned by partition (and, for Iceberg, by
column statistics) with the source's filter. Each partition task then reads its share of
those files with DuckDB's read_parquet, under the snapshot's schema: a file written before a
column was added reads that column as NULL. Tables whose snapshot needs more than Parquet
files (Iceberg delete files, Delta deletion vectors or column mapping) are refused with a
clear error rather than read wrongly.

Why the libraries list and DuckDB reads (docs/tables.md has the figures): planning is the
libraries' job (catalogs, snapshots, manifests, pruning), while pond's unit of work is a file
list per task; DuckDB's own iceberg_scan/delta_scan read a whole table in one call and cannot
hand pond a file list, so they are the independent readers the tests check against.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from pond_core.errors import PondConfigError, PondInputError
from pond_core.io.fs import is_s3
from pond_core.io.options import StorageOptions
from pond_core.specs.iceberg_table import IcebergTable
from pond_core.specs.table_read import TableRead
from pond_core.sql_quote import path_list, quote_ident, quote_str, sql_literal

Schema = tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True)
class TableFiles:
    """A resolved snapshot: its data files, its columns (DuckDB types), how to read them."""

    files: tuple[str, ...]
    schema: Schema
    snapshot: str
    where: str | None = None
    hive_types: Schema = ()  # Delta: partition columns live in the paths, not the files


def resolve_table(read: TableRead, options: StorageOptions | None) -> TableFiles:
    if read.iceberg is not None:
        return _resolve_iceberg(read, read.iceberg, options)
    return _resolve_delta(read, str(read.delta_path), options)


# --- Iceberg ------------------------------------------------------------------------------------


def _resolve_iceberg(read: TableRead, table: IcebergTable, options: StorageOptions | None) -> TableFiles:
    from pond_core.io.iceberg import load_table, local_path, open_catalog

    tbl = load_table(open_catalog(table, options), table)
    if tbl is None:
        raise PondInputError(f"Iceberg table {table.identifier} does not exist in catalog {table.catalog!r}")
    snapshot = _iceberg_snapshot(tbl, read, table)
    if snapshot is None:
        return TableFiles((), _arrow_schema(tbl.schema().as_arrow()), "empty")
    schema = tbl.schemas().get(snapshot.schema_id, tbl.schema()) if snapshot.schema_id is not None else tbl.schema()
    scan = tbl.scan(snapshot_id=snapshot.snapshot_id, row_filter=read.row_filter or "True")
    files = []
    for task in scan.plan_files():
        if task.delete_files:
            raise PondInputError(f"Iceberg table {table.identifier} has row-level deletes (delete files); pond reads copy-on-write tables only")
        if str(task.file.file_format).upper().find("PARQUET") < 0:
            raise PondInputError(f"Iceberg table {table.identifier} holds a {task.file.file_format} file; pond reads Parquet data files")
        files.append(local_path(task.file.file_path))
    return TableFiles(tuple(files), _arrow_schema(schema.as_arrow()), str(snapshot.snapshot_id), read.row_filter)


def _iceberg_snapshot(tbl: Any, read: TableRead, table: IcebergTable) -> Any:
    if read.snapshot_id is not None:
        snapshot = tbl.snapshot_by_id(read.snapshot_id)
        if snapshot is None:
            raise PondInputError(f"Iceberg table {table.identifier} has no snapshot {read.snapshot_id}")
        return snapshot
    if read.as_of is not None:
        snapshot = tbl.snapshot_as_of_timestamp(int(read.as_of * 1000))
        if snapshot is None:
            raise PondInputError(f"Iceberg table {table.identifier} had no snapshot at {dt.datetime.fromtimestamp(read.as_of, dt.timezone.utc)}")
        return snapshot
    return tbl.current_snapshot()


# --- Delta --------------------------------------------------------------------------------------


def _resolve_delta(read: TableRead, path: str, options: StorageOptions | None) -> TableFiles:
    try:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError
    except ImportError as exc:
        raise PondConfigError(f"Delta tables need deltalake: pip install 'pond-core[delta]' ({exc})") from None
    try:
        table = DeltaTable(path, version=read.version, storage_options=_delta_storage(path, options))
    except TableNotFoundError:
        raise PondInputError(f"no Delta table at {path}") from None
    except Exception as exc:
        raise PondInputError(f"cannot open the Delta table at {path}: {exc}") from None
    if read.as_of is not None:
        table.load_as_version(dt.datetime.fromtimestamp(read.as_of, dt.timezone.utc))
    protocol = table.protocol()
    features = set(protocol.reader_features or ())
    unsupported = features & {"deletionVectors", "columnMapping"}
    if unsupported:
        raise PondInputError(f"the Delta table at {path} uses {', '.join(sorted(unsupported))}; pond reads plain Parquet Delta tables")
    filters = [tuple(f) for f in read.partition_filters] or None
    files = tuple(_delta_path(u) for u in table.file_uris(file_pruning_predicate=filters))
    schema = _arrow_schema(_delta_arrow_schema(table))
    partition_columns = set(table.metadata().partition_columns)
    hive = tuple((n, t) for n, t in schema if n in partition_columns)
    return TableFiles(files, schema, str(table.version()), _delta_where(read.partition_filters), hive)


def _delta_arrow_schema(table: Any) -> Any:
    import pyarrow as pa

    return pa.schema(table.schema().to_arrow())


def _delta_path(uri: str) -> str:
    return uri[len("file://"):] if uri.startswith("file://") else uri


def _delta_storage(path: str, options: StorageOptions | None) -> dict[str, str] | None:
    if not is_s3(path) or options is None:
        return None
    out = {"AWS_REGION": options.effective_region}
    if options.endpoint_url:
        out["AWS_ENDPOINT_URL"] = options.endpoint_url
        out["AWS_ALLOW_HTTP"] = "true"
    if options.access_key_id:
        out["AWS_ACCESS_KEY_ID"] = options.access_key_id
    if options.secret_access_key:
        out["AWS_SECRET_ACCESS_KEY"] = options.secret_access_key
    if options.session_token:
        out["AWS_SESSION_TOKEN"] = options.session_token
    if options.effective_url_style == "path":
        out["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
    return out


def _delta_where(filters: tuple[tuple[str, str, Any], ...]) -> str | None:
    terms = [f"{quote_ident(c)} {op.upper()} {_delta_value(v)}" for c, op, v in filters]
    return " AND ".join(terms) or None


def _delta_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_delta_value(v) for v in value) + ")"
    return sql_literal(value if isinstance(value, (bool, int, float)) else str(value))


# --- the SQL a partition runs -------------------------------------------------------------------


def _arrow_schema(arrow_schema: Any) -> Schema:
    import duckdb

    con = duckdb.connect()
    try:
        con.register("t", arrow_schema.empty_table())
        return tuple((str(r[0]), str(r[1])) for r in con.execute("DESCRIBE t").fetchall())
    finally:
        con.close()


def table_sql(files: TableFiles, part_files: tuple[str, ...], columns: tuple[str, ...] | None) -> str:
    """One partition's rows: its files under the snapshot's schema (absent columns are NULL)."""
    wanted = columns or tuple(n for n, _ in files.schema)
    types = dict(files.schema)
    missing = [c for c in wanted if c not in types]
    if missing:
        raise PondInputError(f"column(s) {', '.join(missing)} not in the table (it has {', '.join(types)})")
    typed_empty = ", ".join(f"CAST(NULL AS {types[c]}) AS {quote_ident(c)}" for c in wanted)
    select = ", ".join(quote_ident(c) for c in wanted)
    if not part_files:
        return f"SELECT {typed_empty} WHERE false"
    hive = ", hive_partitioning=false"
    if files.hive_types:
        hive = ", hive_partitioning=true, hive_types={" + ", ".join(f"{quote_str(n)}: {t}" for n, t in files.hive_types) + "}"
    body = (
        f"SELECT {typed_empty} WHERE false UNION ALL BY NAME "
        f"SELECT * FROM read_parquet({path_list(part_files)}, union_by_name=true{hive})"
    )
    where = f" WHERE {files.where}" if files.where else ""
    return f"SELECT {select} FROM ({body}){where}"
