"""Alembic environment for the pond catalog.

Pond passes an open connection (already inside a locked transaction) through
`config.attributes["connection"]`. Run by hand, e.g.
`alembic -c pond_core/catalog/migrations/alembic.ini upgrade head`, it reads the URL from
POND_CATALOG_URL or the ini's `sqlalchemy.url`.
"""

from __future__ import annotations

import os
from typing import Any

from alembic import context

from pond_core.catalog.engine import create_catalog_engine, parse_url
from pond_core.catalog.migrate import VERSION_TABLE
from pond_core.catalog.models import Base

config = context.config
OPTIONS: dict[str, Any] = dict(
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite can only ALTER by rebuilding tables
    compare_type=True,
)


def _url() -> str:
    url = os.environ.get("POND_CATALOG_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set POND_CATALOG_URL (or sqlalchemy.url) to the catalog URL")
    return url


def run_offline() -> None:
    context.configure(url=parse_url(_url()), literal_binds=True, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **OPTIONS)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_catalog_engine(parse_url(_url()))
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **OPTIONS)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
