"""Dialect helpers shared by the statement modules: upserts, chunked IN lists, lookups."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T")
# Below every backend's bound-parameter limit, with room for the other parameters.
CHUNK = 500


def upsert(conn: Connection, table: Table) -> Any:
    """An INSERT that supports ON CONFLICT on this connection's backend (sqlite or postgresql)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def unique(items: Iterable[T]) -> list[T]:
    return list(dict.fromkeys(items))
