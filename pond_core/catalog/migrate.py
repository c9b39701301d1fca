"""Alembic, run from inside the package: no alembic.ini needed in the working directory.

`upgrade(engine)` is safe when many processes open a fresh catalog at once: the whole upgrade
runs in one transaction that first takes a lock (BEGIN IMMEDIATE on SQLite, an advisory lock on
PostgreSQL), so exactly one process creates the tables and the others find them at head.

Alembic is imported only when a schema has to change: opening a catalog already at head (every
run but a catalog's first) reads the version table with one SELECT and compares it with the
newest shipped migration's number, so pond's start-up does not pay Alembic's import (issue 25).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from pond_core.catalog.engine import WRITE_OPTION, mask
from pond_core.errors import PondConfigError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "pond_alembic_version"
_PG_LOCK_KEY = 0x706F6E64  # "pond"

if TYPE_CHECKING:
    from alembic.config import Config


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the shipped migrations (and at `connection`, if given)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.lru_cache(maxsize=1)
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the catalog ships at least one migration"
    return head


@functools.lru_cache(maxsize=1)
def shipped_head() -> str:
    """The newest shipped migration's revision, from the file names alone: every migration is
    `versions/NNNN_<what>.py` with revision "NNNN" (tests/test_task_overhead.py checks that this
    agrees with Alembic's head)."""
    return max(p.name[:4] for p in (MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def recorded_revision(connection: Connection) -> str | None:
    """The revision in the catalog's version table, read without Alembic (None: no table yet,
    or not exactly one row, which only Alembic can sort out)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return str(rows[0]) if len(rows) == 1 else None


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    # Alembic logs "Context impl SQLiteImpl." and "Will assume non-transactional DDL." at INFO
    # on every configure: noise in every task log that opens the catalog, so not for a check.
    with _quiet(logging.getLogger("alembic.runtime.migration")):
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    previous = logger.level
    if logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


def upgrade(engine: Engine) -> None:
    """Bring the catalog schema to head; a no-op (one SELECT, no Alembic) when it is already there."""
    with engine.connect() as conn:
        if recorded_revision(conn) == shipped_head():
            return
    from alembic import command
    from alembic.util import CommandError

    with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            try:
                command.upgrade(alembic_config(conn), "head")
            except CommandError as exc:
                raise PondConfigError(
                    f"catalog at {mask(engine.url)} has a schema this pond does not know "
                    f"(its migrations end at {head_revision()}): {exc}; upgrade pond"
                ) from None


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Step the schema back (for tests and operators; pond never downgrades on its own)."""
    from alembic import command

    with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
        with conn.begin():
            command.downgrade(alembic_config(conn), revision)
