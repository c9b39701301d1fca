"""TaskDatabase: one DuckDB database a worker reuses for its tasks, with nothing carried over.

Opening a DuckDB database costs 8-20 ms, more than a small task's whole work, so a worker (a
thread of the in-process executor, a Ray worker process) keeps one and gives each task a fresh
cursor. Each task's views live in a schema of its own, dropped after it; what
DuckDB keeps per database is set or removed around every task: threads, memory limit, spill
directory and insertion order are set from the task's spec; the task's UDFs are removed and the
S3 secret is dropped afterwards (the http retry and timeout settings every S3 task sets itself).

A database is not reused after a task that failed (its state is unknown) or that spilled
(DuckDB cannot move a spill directory once used, and each attempt has its own), nor for a task
needing other start-up options (S3 work loads httpfs without re-verifying it); the next task
then opens a new one.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import duckdb

from pond_core.execute.task_spec import TaskSpec
from pond_core.io.duckdb_setup import SECRET_NAME
from pond_core.plan.physical import SqlStep
from pond_core.sql_quote import quote_str


class TaskDatabase:
    def __init__(self) -> None:
        self._db: duckdb.DuckDBPyConnection | None = None
        self._startup: dict[str, Any] = {}
        self._settings: dict[str, str] = {}  # what was SET last (a SET costs up to ms: skip repeats)
        self.opened = 0  # databases opened so far (for tests and benchmarks)

    @contextlib.contextmanager
    def cursor(self, spec: TaskSpec, startup: dict[str, Any]) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor set up for `spec`; `startup` holds options DuckDB takes only at open."""
        db = self._database(startup, spec)
        cursor = db.cursor()
        reusable = False
        udfs: list[str] = []
        schema = f"pond_task_{uuid.uuid4().hex[:12]}"
        try:
            self._apply(cursor, spec)
            cursor.execute(f"CREATE SCHEMA {schema}")
            cursor.execute(f"SET search_path = {quote_str(schema)}")
            yield _Tracked(cursor, udfs, schema)  # type: ignore[misc]
            # Set-up statements (smallpond's query lists) may change what DuckDB keeps per database.
            reusable = not os.path.exists(spec.spill_dir) and not _runs_setup(spec)
        finally:
            try:
                _clean(cursor, udfs, schema)
                cursor.close()
            except duckdb.Error:
                reusable = False
            if not reusable:
                self.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
            self._settings = {}

    def _apply(self, cursor: duckdb.DuckDBPyConnection, spec: TaskSpec) -> None:
        wanted = {
            "threads": str(int(spec.threads)),
            "memory_limit": quote_str(spec.memory_limit),
            "temp_directory": quote_str(spec.spill_dir),
            "preserve_insertion_order": "true",
        }
        for name, value in wanted.items():
            if self._settings.get(name) != value:
                cursor.execute(f"SET {name} = {value}")
                self._settings[name] = value

    def _database(self, startup: dict[str, Any], spec: TaskSpec) -> duckdb.DuckDBPyConnection:
        if self._db is not None and startup != self._startup:
            self.close()
        if self._db is None:
            self._db = duckdb.connect(config=startup)
            self._startup = dict(startup)
            self.opened += 1
        return self._db


def _runs_setup(spec: TaskSpec) -> bool:
    return any(isinstance(step, SqlStep) and step.setup for step in spec.steps)


def _clean(cursor: duckdb.DuckDBPyConnection, udfs: list[str], schema: str) -> None:
    cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    for name in udfs:
        cursor.remove_function(name)
    # No RESET of httpfs's settings: it would load httpfs (and try to download it) in a
    # database that never used S3; every S3 task sets them itself.
    cursor.execute(f"DROP TEMPORARY SECRET IF EXISTS {SECRET_NAME}")


class _Tracked:
    """The task's cursor, remembering the UDFs it registers so they can be removed after."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, udfs: list[str], schema: str) -> None:
        self._cursor = cursor
        self._udfs = udfs
        self._schema = schema

    def create_function(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self._udfs.append(name)
        return self._cursor.create_function(name, *args, **kwargs)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """Another cursor that sees the task's views (a Python step streams through one)."""
        other = self._cursor.cursor()
        other.execute(f"SET search_path = {quote_str(self._schema)}")
        return other

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


_local = threading.local()


def thread_database() -> TaskDatabase:
    """The calling thread's database (each worker thread or Ray worker process keeps one)."""
    db = getattr(_local, "db", None)
    if db is None:
        db = _local.db = TaskDatabase()
    return db
