"""Inputs that are already hash-partitioned on disk: datasets whose manifest records the
buckets pond wrote them in (`repartition(n, hash_by=...)` then a write). Such an input is read
one bucket's files per partition, so a join or aggregate on its keys needs no exchange."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pond_core.plan.logical import Read
from pond_core.plan.sqlcompile.tables import InputLayout, InputTable

if TYPE_CHECKING:
    from pond_core.io import StorageOptions

# What an exchange stores for HUGEINT keys (execute/task.py): its bucket was hashed on the
# HUGEINT, so hashing the stored DECIMAL would disagree.
_REWRITTEN_KEY_TYPES = ("DECIMAL(38,0)",)


def with_manifest_layout(table: InputTable, paths: Sequence[str], storage: StorageOptions | None) -> InputTable:
    """`table` laid out by its dataset manifest's hash buckets, when they can be trusted."""
    from pond_core.io.manifest import bucketed_files

    if len(paths) != 1 or not table.is_read or not isinstance(table.plan, Read):
        return table
    found = bucketed_files(paths[0], storage)
    if found is None:
        return table
    columns = {c.lower(): (c, t) for c, t in table.schema}
    keys = []
    for key in found.layout.keys:
        column = columns.get(key.lower())
        if column is None or column[1].upper() in _REWRITTEN_KEY_TYPES:
            return table
        keys.append(column[0])
    source = dataclasses.replace(table.plan.source, paths=found.files, recursive=False)
    plan = dataclasses.replace(table.plan, source=source)
    layout = InputLayout(found.layout.npartitions, tuple(keys), from_manifest=True)
    return dataclasses.replace(table, plan=plan, layout=layout, nfiles=len(found.files))
