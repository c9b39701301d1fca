"""Iceberg test rig: a SQL catalog (SQLite file, or a PostgreSQL database) and two independent
readers of a table snapshot: DuckDB's iceberg extension and pyiceberg."""

from __future__ import annotations

from typing import Any

import duckdb

from pond_core.io.duckdb_setup import load_packaged_extension


def sqlite_catalog(tmp_path: Any, warehouse: str | None = None) -> dict[str, str]:
    """Catalog properties of a fresh SQLite catalog with namespace `db`."""
    props = {"uri": f"sqlite:///{tmp_path}/iceberg.db", "warehouse": warehouse or f"file://{tmp_path}/warehouse"}
    catalog(props).create_namespace("db")
    return props


def catalog(props: dict[str, str], **extra: str) -> Any:
    from pyiceberg.catalog import load_catalog

    return load_catalog("pond", **props, **extra)


def duckdb_rows(
    metadata_location: str, query: str = "SELECT * FROM t ORDER BY ALL", con: Any = None, snapshot_id: int | None = None
) -> list[tuple]:
    """Rows of the snapshot that `metadata_location` makes current, read by DuckDB's extension."""
    con = con or duckdb.connect()
    load_packaged_extension(con, "avro", "iceberg")
    load_packaged_extension(con, "iceberg", "iceberg")
    escaped = metadata_location.replace("'", "''")
    at = "" if snapshot_id is None else f", snapshot_from_id => {int(snapshot_id)}"
    return con.execute(query.replace("FROM t", f"FROM iceberg_scan('{escaped}'{at})")).fetchall()


def pyiceberg_rows(table: Any, snapshot_id: int | None = None) -> list[tuple]:
    arrow = table.scan(snapshot_id=snapshot_id).to_arrow()
    con = duckdb.connect()
    con.register("t", arrow)
    return con.execute("SELECT * FROM t ORDER BY ALL").fetchall()
