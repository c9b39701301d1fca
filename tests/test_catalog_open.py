"""Opening a catalog: URLs, the embedded default, migrations, and catalogs that do not answer."""

from __future__ import annotations

import os
import pickle
import sqlite3
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from pond_core.catalog import Catalog, migrate
from pond_core.catalog.models import Base
from pond_core.errors import PondConfigError

TABLES = {
    "pond_runs",
    "pond_stage_runs",
    "pond_datasets",
    "pond_partitions",
    "pond_lineage_records",
    "pond_lineage_edges",
    "pond_alembic_version",
    "pond_stage_leases",
}


def test_the_default_catalog_of_a_local_root_is_a_sqlite_file_under_it(tmp_path, monkeypatch):
    root = tmp_path / "pond root"
    assert Catalog.default_url(str(root)) == f"sqlite:///{root}/catalog.sqlite"
    assert Catalog.default_url(f"file://{root}") == f"sqlite:///{root}/catalog.sqlite"
    monkeypatch.chdir(tmp_path)
    assert Catalog.default_url("rel/root") == f"sqlite:///{tmp_path}/rel/root/catalog.sqlite"


def test_an_object_store_root_gets_a_local_sqlite_named_after_bucket_and_prefix(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Catalog.default_url("s3://lake/team a/pond/") == (
        f"sqlite:///{tmp_path}/.pond/catalog-s3-lake-team-a-pond.sqlite"
    )
    assert Catalog.default_url("s3://lake") == f"sqlite:///{tmp_path}/.pond/catalog-s3-lake.sqlite"
    assert Catalog.default_url("s3://KEY:secret@Lake_B/x") == (
        f"sqlite:///{tmp_path}/.pond/catalog-s3-Lake_B-x.sqlite"
    )


def test_opening_the_default_catalog_creates_it_in_wal_mode_from_any_directory(
    tmp_path, monkeypatch
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no alembic.ini here: the migrations ship in the package
    root = tmp_path / "root"
    with Catalog(Catalog.default_url(str(root))) as catalog:
        catalog.start_run("r1", "daily", {}, None, "local")
        assert catalog.backend == "sqlite"

    database = root / "catalog.sqlite"
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == TABLES
        assert conn.execute("SELECT version_num FROM pond_alembic_version").fetchall() == [
            (migrate.head_revision(),)
        ]
    assert Catalog(f"sqlite:///{database}").get_run("r1")["status"] == "running"


def test_the_migrated_schema_is_exactly_the_models(catalog_db_url):
    Catalog(catalog_db_url).close()
    engine = create_engine(catalog_db_url)
    try:
        with engine.connect() as conn:
            assert TABLES <= set(inspect(conn).get_table_names())
            context = MigrationContext.configure(
                conn, opts={"version_table": migrate.VERSION_TABLE, "compare_type": True}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_migrations_go_down_to_nothing_and_up_again(catalog_db_url):
    with Catalog(catalog_db_url) as catalog:
        catalog.start_run("r1", "daily", {}, None, "local")
        migrate.downgrade(catalog._tx.engine, "base")
        with catalog._tx.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == {"pond_alembic_version"}
            assert migrate.current_revision(conn) is None
    with Catalog(catalog_db_url) as catalog:
        assert catalog.list_runs() == []
        catalog.start_run("r1", "daily", {}, None, "local")


def test_a_schema_newer_than_this_pond_is_refused(catalog_db_url):
    Catalog(catalog_db_url).close()
    engine = create_engine(catalog_db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE pond_alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(PondConfigError, match="has a schema this pond does not know.*upgrade pond"):
        Catalog(catalog_db_url)


def test_a_postgresql_url_without_a_driver_uses_psycopg(postgres_schema_url):
    plain = postgres_schema_url.replace("postgresql+psycopg://", "postgresql://")
    with Catalog(plain) as catalog:
        assert catalog.url.startswith("postgresql+psycopg://")
        assert catalog.backend == "postgresql"
        catalog.ping()


def test_a_catalog_that_does_not_answer_fails_fast_with_the_password_masked():
    url = "postgresql://pond:s3cr3t-pw@127.0.0.1:1/pond"
    started = time.monotonic()
    with pytest.raises(PondConfigError) as raised:
        Catalog(url)
    message = str(raised.value)
    assert message.startswith(
        "catalog at postgresql+psycopg://pond:***@127.0.0.1:1/pond does not answer: "
    )
    assert "refused" in message.lower()
    assert "s3cr3t-pw" not in message
    assert time.monotonic() - started < 6


def test_ping_of_an_open_catalog_answers_and_repr_hides_the_password(postgres_schema_url):
    with_password = postgres_schema_url.replace(
        "postgres@", "postgres:hunter2@"
    )  # trust auth ignores it
    with Catalog(with_password) as catalog:
        catalog.ping()
        assert "hunter2" not in repr(catalog) and "hunter2" not in catalog.url
        assert repr(catalog) == f"Catalog({catalog.url!r})"
        assert "postgres:***@" in catalog.url


def test_a_sqlite_catalog_that_cannot_be_created_names_the_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(
        PondConfigError,
        match=f"catalog at sqlite:///{blocker}/x/catalog.sqlite does not answer: cannot create",
    ):
        Catalog(f"sqlite:///{blocker}/x/catalog.sqlite")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "mysql://u:pw@db/pond",
            r"catalog URL 'mysql://u:\*\*\*@db/pond': only sqlite and postgresql",
        ),
        ("not a url", "catalog URL 'not a url' is not a valid URL"),
    ],
)
def test_unsupported_or_malformed_urls_are_refused(url, message):
    with pytest.raises(PondConfigError, match=message):
        Catalog(url)


def test_a_catalog_survives_pickling_to_another_process(tmp_path):
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    with Catalog(url) as catalog:
        catalog.start_run("r1", "daily", {"n": 1}, None, "local")
        copy = pickle.loads(pickle.dumps(catalog))
        copy.start_stage("r1", "s1", "scan", 1)
        assert [s["stage_id"] for s in catalog.get_run("r1")["stages"]] == ["s1"]
        copy.close()


def test_an_in_memory_sqlite_catalog_works_for_throwaway_use():
    with Catalog("sqlite://") as catalog:
        catalog.start_run("r1", "daily", {}, None, "local")
        assert catalog.start_stage("r1", "s1", "scan", 1) == 1
        assert catalog.get_run("r1")["stages"][0]["status"] == "running"


def test_the_alembic_environment_needs_no_ini_file_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = migrate.alembic_config()
    assert config.config_file_name is None
    assert os.path.isdir(config.get_main_option("script_location"))
    assert migrate.head_revision() == "0005"


def test_a_catalog_of_the_first_schema_is_upgraded_in_place_keeping_its_runs(catalog_db_url):
    with Catalog(catalog_db_url) as catalog:
        catalog.start_run("r1", "daily", {"ds": "2026-11-20"}, None, "local")
        catalog.start_stage("r1", "s1", "scan", 2)
        migrate.downgrade(catalog._tx.engine, "0001")  # as a catalog written before heartbeats
        with catalog._tx.engine.connect() as conn:
            assert migrate.current_revision(conn) == "0001"
            assert "heartbeat_at" not in {c["name"] for c in inspect(conn).get_columns("pond_stage_runs")}
    with Catalog(catalog_db_url) as catalog:  # opening upgrades it
        run = catalog.get_run("r1")
        assert (run["params"], run["status"], run["stale"]) == ({"ds": "2026-11-20"}, "running", False)
        assert (run["stages"][0]["heartbeat_at"], run["stages"][0]["stale"]) == (None, False)  # unknown is not stale
        catalog.heartbeat("r1", "s1")
        assert catalog.get_run("r1")["stages"][0]["heartbeat_at"] is not None
