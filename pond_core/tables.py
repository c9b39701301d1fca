"""Table sources as logical reads: what Session.read_iceberg / read_delta build.

Nothing here touches the table: the snapshot is resolved when the stage starts (see
io/table_read.py), so building and compiling a pipeline stays free of I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pond_core.plan.logical import SourceFormat, SourceSpec
from pond_core.specs.iceberg_table import IcebergTable
from pond_core.specs.table_read import TableRead, as_of_seconds


def iceberg_source(
    table: str,
    catalog: str | Mapping[str, str] | None,
    catalog_name: str,
    snapshot_id: int | None,
    as_of: dt.datetime | float | None,
    columns: Sequence[str] | None,
    row_filter: str | None,
) -> SourceSpec:
    props = {"uri": catalog} if isinstance(catalog, str) else dict(catalog or {})
    target = IcebergTable(table, catalog_name, tuple(sorted(props.items())))
    read = TableRead(iceberg=target, snapshot_id=snapshot_id, as_of=as_of_seconds(as_of), row_filter=row_filter)
    return SourceSpec(SourceFormat.ICEBERG, (target.uri,), columns=tuple(columns) if columns else None, table=read)


def delta_source(
    path: str,
    version: int | None,
    as_of: dt.datetime | float | None,
    columns: Sequence[str] | None,
    partition_filters: Sequence[tuple[str, str, Any]] | None,
) -> SourceSpec:
    from pond_core.io.fs import normalize_path

    root = normalize_path(path)
    filters = tuple(tuple(f) for f in partition_filters or ())
    read = TableRead(delta_path=root, version=version, as_of=as_of_seconds(as_of), partition_filters=filters)
    return SourceSpec(SourceFormat.DELTA, (root,), columns=tuple(columns) if columns else None, table=read)
