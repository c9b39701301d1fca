"""Catalog URLs and engines: parsing, password masking, and per-backend connection settings.

SQLite is tuned for several *processes* writing one file: WAL (readers never block the writer),
a long busy timeout, foreign keys on, and write transactions opened with BEGIN IMMEDIATE so a
transaction never has to upgrade a read lock to a write lock (the one case where SQLite fails
with "database is locked" at once instead of waiting). PostgreSQL gets pre-ping, a connect
timeout and an application name.
"""

from __future__ import annotations

import os
import re
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from pond_core.errors import PondConfigError

CONNECT_TIMEOUT_S = 5
SQLITE_BUSY_TIMEOUT_MS = 60_000
# Execution option that marks a connection's next transaction as a writer (BEGIN IMMEDIATE).
WRITE_OPTION = "pond_write"


def parse_url(url: str | URL) -> URL:
    """Parse and normalise a catalog URL; `postgresql://` means psycopg 3, the one we ship."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise PondConfigError(
            f"catalog URL {_scrub(str(url))!r} is not a valid URL: {exc}"
        ) from None
    except ValueError:  # SQLAlchemy casts the port with int() and lets its ValueError out
        raise PondConfigError(
            f"catalog URL {_scrub(str(url))!r} has a port that is not a number; write it "
            "e.g. postgresql://user:password@host:5432/database"
        ) from None
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise PondConfigError(
            f"catalog URL {mask(parsed)!r}: only sqlite and postgresql catalogs are supported"
        )
    return parsed


def check_catalog_url(url: str) -> None:
    """A PondConfigError when `url` is not a sqlite or postgresql URL, or names a SQLite file
    in a directory that does not exist."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = os.path.dirname(os.path.abspath(str(parsed.database)))
        if not os.path.isdir(folder):
            raise PondConfigError(
                f"catalog URL {mask(parsed)!r}: the directory {folder} does not exist; create it, "
                "or leave catalog_url unset for the embedded catalog under the data root"
            )


def mask(url: URL) -> str:
    """The URL as text with its password replaced by ***."""
    return url.render_as_string(hide_password=True)


def scrub_secret(text: str, url: URL) -> str:
    """Remove the URL's password from arbitrary text (a driver's error message, say)."""
    if url.password:
        text = text.replace(str(url.password), "***")
    return text


def _scrub(text: str) -> str:
    # Up to the last "@": a password that was not URL-encoded may itself hold "/" or "@".
    return re.sub(r"(://[^:/@]*:).*@", r"\1***@", text)


def default_url(storage_root: str) -> str:
    """The embedded catalog for a storage root (see `Catalog.default_url`)."""
    from pond_core.settings import default_catalog_url

    return default_catalog_url(storage_root)


def create_catalog_engine(url: URL, *, echo: bool = False) -> Engine:
    """An engine configured for the catalog's backend."""
    from pond_core.catalog.convert import json_dumps

    try:
        if url.get_backend_name() == "sqlite":
            return _sqlite_engine(url, echo=echo, json_serializer=json_dumps)
        return _postgres_engine(url, echo=echo, json_serializer=json_dumps)
    except (NoSuchModuleError, ImportError) as exc:
        raise PondConfigError(
            f"catalog URL {mask(url)!r} needs a driver that is not installed: {exc}"
        ) from None


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    memory = url.database in (None, "", ":memory:")
    if not memory:
        _make_parent_dir(url)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:  # one shared connection, otherwise every connection sees its own empty database
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _make_parent_dir(url: URL) -> None:
    parent = os.path.dirname(os.path.abspath(str(url.database)))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise PondConfigError(
            f"catalog at {mask(url)} does not answer: cannot create {parent}: {exc.strerror or exc}"
        ) from None


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level: we emit BEGIN ourselves (see _sqlite_on_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL never corrupts; a power cut may only drop the last commits, which
        # costs a rerun of those stages (idempotent), while saving an fsync per catalog call.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    writer = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


def _postgres_engine(url: URL, **kwargs: Any) -> Engine:
    connect_args: dict[str, Any] = {"application_name": "pond"}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_recycle=1800,
        connect_args=connect_args,
        **kwargs,
    )
