"""The inputs a statement is compiled over, as the compiler sees them: a logical plan node per
input with its schema, layout and the sizes the compiler needs to choose broadcasts and
partition counts. Whoever calls the compiler (pond_core.sqlplan for Session.sql and named_sql)
builds them; the compiler never looks further than these fields."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from pond_core.plan.logical import Node

DEFAULT_ROW_WIDTH = 64.0  # bytes per row when nothing better is known

# pond's own split of a read's files into n partitions (what `Repartition(n, files)` does when it
# runs), so key ranges derived from it are exactly what the tasks read
FileGrouping = Callable[[list[str], int], list[list[str]]]


@dataclasses.dataclass(frozen=True)
class InputLayout:
    """How an input is already laid out."""

    npartitions: int
    hash_keys: tuple[str, ...] | None  # set when its last step is a hash repartition


@dataclasses.dataclass(frozen=True)
class InputTable:
    name: str
    plan: Node  # the whole input, as pond's logical plan
    schema: tuple[tuple[str, str], ...]
    rows: float  # estimated when the input is computed
    column_bytes: Mapping[str, float]  # uncompressed bytes per column, whole input
    layout: InputLayout
    nfiles: int  # files of a plain read (0 for computed inputs)
    is_read: bool  # `plan` is a plain Parquet read of `nfiles` files
    ndv: Mapping[str, float] = dataclasses.field(default_factory=dict)  # upper bounds, by column
    # column -> the files in key order with each file's smallest key (an SQL literal), for
    # columns whose files hold disjoint ranges and no NULLs (see layout.py)
    clusters: Mapping[str, tuple[tuple[str, str], ...]] = dataclasses.field(default_factory=dict)

    def distinct(self, column: str) -> float:
        """At most this many distinct values (integer and date ranges from Parquet statistics)."""
        return min(self.rows, self.ndv.get(column.lower(), self.rows))

    def width(self, column: str) -> float:
        """Bytes per row in memory: Parquet's encoded size undercounts dictionary- and
        bit-packed columns, so fixed-width types count at least their width."""
        typ = next((t for c, t in self.schema if c.lower() == column.lower()), "VARCHAR")
        floor = 8.0 if typ.upper().startswith("VARCHAR") else type_width(typ)
        got = self.column_bytes.get(column.lower())
        if self.rows <= 0 or got is None:
            return max(floor, DEFAULT_ROW_WIDTH / max(1, len(self.schema)))
        return max(floor, got / self.rows)

    def bytes_of(self, columns: Sequence[str]) -> float:
        return self.rows * sum(self.width(c) for c in columns)

    @property
    def total_bytes(self) -> float:
        return self.bytes_of([c for c, _ in self.schema])


TYPE_WIDTH = {"BOOLEAN": 1, "TINYINT": 1, "SMALLINT": 2, "INTEGER": 4, "DATE": 4, "FLOAT": 4, "BLOB": 32}


def type_width(typ: str) -> float:
    base = typ.split("(")[0].upper()
    if base in TYPE_WIDTH:
        return TYPE_WIDTH[base]
    if base == "VARCHAR":
        return 24
    return 8
