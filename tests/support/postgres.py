"""The PostgreSQL server on 127.0.0.1:5432 (trust auth, database `test`) as a test rig.

`postgres_url` (session): a fresh database `pond_test_<pid>`, dropped at the end of the session;
when the role may not create databases, a fresh schema `pond_test_<pid>` in database `test`
instead (selected through the URL's search_path). `postgres_schema_url` (per test): a fresh,
empty schema in that database, so each test starts from an empty catalog.
`catalog_db_url` (per test, parametrised): an empty SQLite file and an empty PostgreSQL schema.

When PostgreSQL does not answer, these fixtures skip with the reason, unless
POND_REQUIRE_POSTGRES=1 (set by CI), which turns the skip into a failure so CI never skips
PostgreSQL silently. POND_TEST_POSTGRES_HOST / POND_TEST_POSTGRES_PORT point at another server.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from urllib.parse import quote

import pytest

ADMIN_DB = "test"
USERS = ("postgres", "root")
_schemas = itertools.count(1)


def _unavailable(reason: str) -> None:
    if os.environ.get("POND_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (POND_REQUIRE_POSTGRES=1 makes this a failure)", pytrace=False)
    pytest.skip(reason)


def _server() -> tuple[str, int]:
    host = os.environ.get("POND_TEST_POSTGRES_HOST", "127.0.0.1")
    return host, int(os.environ.get("POND_TEST_POSTGRES_PORT", "5432"))


def _admin_connection():  # -> (psycopg.Connection, user)
    try:
        import psycopg
    except ImportError as exc:
        _unavailable(f"psycopg is not installed: {exc}")
    host, port = _server()
    errors = []
    for user in USERS:
        try:
            conn = psycopg.connect(
                host=host, port=port, user=user, dbname=ADMIN_DB, connect_timeout=3, autocommit=True
            )
            return conn, user
        except psycopg.Error as exc:
            errors.append(f"{user}: {' '.join(str(exc).split())}")
    _unavailable(f"PostgreSQL on {host}:{port}/{ADMIN_DB} does not answer ({'; '.join(errors)})")


def _url(user: str, database: str, schema: str | None = None) -> str:
    host, port = _server()
    url = f"postgresql+psycopg://{user}@{host}:{port}/{database}"
    return url if schema is None else f"{url}?options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a database of this test session's own (or a schema, see the module doc)."""
    import psycopg

    conn, user = _admin_connection()
    name = f"pond_test_{os.getpid()}"
    try:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
        url, drop = _url(user, name), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    except psycopg.errors.InsufficientPrivilege:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')
        url, drop = _url(user, ADMIN_DB, name), f'DROP SCHEMA IF EXISTS "{name}" CASCADE'
    try:
        yield url
    finally:
        conn.execute(drop)
        conn.close()


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """URL whose search_path is a new, empty schema in the session's database."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(postgres_url)
    schema = f"t{os.getpid()}_{next(_schemas)}"
    connect = dict(
        host=base.host, port=base.port, user=base.username, dbname=base.database, autocommit=True
    )
    with psycopg.connect(**connect) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield _url(str(base.username), str(base.database), schema)
    with psycopg.connect(**connect) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty catalog database on each backend: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    return request.getfixturevalue("postgres_schema_url")
