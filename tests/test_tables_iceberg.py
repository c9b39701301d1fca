"""write_iceberg: pond's Parquet files committed as one Iceberg snapshot per stage commit,
read back exactly by two independent readers (DuckDB's iceberg extension and pyiceberg)."""

from __future__ import annotations

import datetime as dt

import pytest

from pond_core.errors import PondConfigError, PondDataError
from tests.support.iceberg import catalog, duckdb_rows, pyiceberg_rows, sqlite_catalog

DAY0 = dt.date(2026, 11, 20)


def day_sql(n: int, version: str = "v1", extra: str = "") -> str:
    return (
        f"SELECT i AS id, DATE '2026-11-20' + {n} AS dt, '{version}-' || i AS name{extra} "
        f"FROM range({n * 10}, {n * 10 + 10}) t(i)"
    )


def expected(days: dict[int, str]) -> list[tuple]:
    return sorted((i, DAY0 + dt.timedelta(days=n), f"{v}-{i}") for n, v in days.items() for i in range(n * 10, n * 10 + 10))


def both_readers(props: dict[str, str], identifier: str = "db.events") -> tuple[list[tuple], list[tuple]]:
    table = catalog(props).load_table(identifier)
    return duckdb_rows(table.metadata_location), pyiceberg_rows(table)


@pytest.fixture
def props(tmp_path):
    return sqlite_catalog(tmp_path)


def test_daily_pipeline_each_snapshot_reads_back_exactly(local_sp, props):
    history = {}
    for n in range(3):
        result = local_sp.sql(day_sql(n)).write_iceberg("db.events", mode="overwrite_partitions", partition_by="dt", catalog=props)
        assert result["rows"] == 10 and result["location"] == "iceberg://pond/db.events"
        history[n] = catalog(props).load_table("db.events").current_snapshot().snapshot_id
    table = catalog(props).load_table("db.events")
    assert [s.snapshot_id for s in table.snapshots()] == [history[0], history[1], history[2]]  # one snapshot per commit
    assert table.spec().fields[0].name == "dt"
    for n, snapshot_id in history.items():
        want = expected({k: "v1" for k in range(n + 1)})
        assert pyiceberg_rows(table, snapshot_id) == want
        assert duckdb_rows(table.metadata_location, snapshot_id=snapshot_id) == want
    assert both_readers(props) == (expected({0: "v1", 1: "v1", 2: "v1"}),) * 2


def test_backfill_run_twice_leaves_exactly_three_days(local_sp, props):
    for version in ("v1", "v2"):
        for n in range(3):
            local_sp.sql(day_sql(n, version)).write_iceberg("db.events", mode="overwrite_partitions", partition_by="dt", catalog=props)
    duck, py = both_readers(props)
    assert duck == py == expected({0: "v2", 1: "v2", 2: "v2"})
    table = catalog(props).load_table("db.events")
    assert len(table.snapshots()) == 6
    assert [s.summary.operation.value for s in table.snapshots()] == ["append"] + ["overwrite"] * 5


def test_overwrite_partitions_replaces_only_the_written_days_in_one_snapshot(local_sp, props):
    sql = " UNION ALL ".join(day_sql(n) for n in range(3))
    local_sp.sql(sql).write_iceberg("db.events", partition_by="dt", catalog=props)
    local_sp.sql(day_sql(1, "v2")).write_iceberg("db.events", mode="overwrite_partitions", partition_by="dt", catalog=props)
    assert both_readers(props) == (expected({0: "v1", 1: "v2", 2: "v1"}),) * 2
    snapshot = catalog(props).load_table("db.events").current_snapshot()
    assert snapshot.summary["deleted-records"] == "10" and snapshot.summary["added-records"] == "10"


def test_append_and_overwrite(local_sp, props):
    local_sp.sql(day_sql(0)).write_iceberg("db.events", catalog=props)
    local_sp.sql(day_sql(1)).write_iceberg("db.events", mode="append", catalog=props)
    assert both_readers(props) == (expected({0: "v1", 1: "v1"}),) * 2
    local_sp.sql(day_sql(2, "v3")).write_iceberg("db.events", mode="overwrite", catalog=props)
    assert both_readers(props) == (expected({2: "v3"}),) * 2


def test_append_with_a_new_nullable_column_evolves_the_schema(local_sp, props):
    local_sp.sql(day_sql(0)).write_iceberg("db.events", partition_by="dt", catalog=props)
    local_sp.sql(day_sql(1, extra=", i * 2 AS score")).write_iceberg("db.events", partition_by="dt", catalog=props)
    table = catalog(props).load_table("db.events")
    assert [f.name for f in table.schema().fields] == ["id", "dt", "name", "score"]
    query = "SELECT id, score FROM t WHERE id IN (0, 15) ORDER BY id"
    assert duckdb_rows(table.metadata_location, query) == [(0, None), (15, 30)]
    arrow = table.scan(row_filter="id = 15").to_arrow()
    assert arrow.column("score").to_pylist() == [30]


def test_incompatible_schema_is_a_clear_error_and_commits_nothing(local_sp, props):
    local_sp.sql(day_sql(0)).write_iceberg("db.events", partition_by="dt", catalog=props)
    before = catalog(props).load_table("db.events")
    bad = "SELECT 'x' || i AS id, DATE '2026-11-21' AS dt, 'n' AS name FROM range(3) t(i)"
    with pytest.raises(PondDataError, match=r"db\.events.*id: the table has long, the data has string.*nothing was committed"):
        local_sp.sql(bad).write_iceberg("db.events", partition_by="dt", catalog=props)
    after = catalog(props).load_table("db.events")
    assert after.metadata_location == before.metadata_location
    assert both_readers(props) == (expected({0: "v1"}),) * 2
    import os

    data = before.location()[len("file://"):] + "/data"
    assert len(os.listdir(data)) == 1  # only the first write's directory: no staging, no orphans


def test_partition_spec_and_mode_mismatches_fail_before_any_task(local_sp, props):
    local_sp.sql(day_sql(0)).write_iceberg("db.events", partition_by="dt", catalog=props)
    with pytest.raises(PondConfigError, match=r"partitioned by \['dt'\], not nothing"):
        local_sp.sql(day_sql(1)).write_iceberg("db.events", catalog=props)
    with pytest.raises(PondConfigError, match="mode must be 'append', 'overwrite' or 'overwrite_partitions'"):
        local_sp.sql(day_sql(1)).write_iceberg("db.events", mode="error", catalog=props)
    with pytest.raises(PondConfigError, match="'namespace.table'"):
        local_sp.sql(day_sql(1)).write_iceberg("events", catalog=props)
    with pytest.raises(PondConfigError, match="holds a password"):
        local_sp.sql(day_sql(1)).write_iceberg("db.events", catalog="postgresql://u:secret@127.0.0.1/x")
    assert both_readers(props) == (expected({0: "v1"}),) * 2


@pytest.mark.postgres
def test_sql_catalog_on_postgresql(local_sp, tmp_path, postgres_schema_url):
    props = {"uri": postgres_schema_url, "warehouse": f"file://{tmp_path}/warehouse"}
    catalog(props).create_namespace("db")
    for version in ("v1", "v2"):
        for n in range(2):
            local_sp.sql(day_sql(n, version)).write_iceberg("db.events", mode="overwrite_partitions", partition_by="dt", catalog=props)
    assert both_readers(props) == (expected({0: "v2", 1: "v2"}),) * 2


@pytest.mark.ray
def test_write_and_read_on_ray(props, tmp_path, ray_instance):
    import pond_core

    session = pond_core.init(data_root=str(tmp_path / "pond"), executor="ray")
    try:
        for n in range(3):
            session.sql(day_sql(n)).repartition(2).write_iceberg("db.events", mode="overwrite_partitions", partition_by="dt", catalog=props)
        assert session.read_iceberg("db.events", props).repartition(3).count() == 30
    finally:
        session.shutdown()
    assert both_readers(props) == (expected({0: "v1", 1: "v1", 2: "v1"}),) * 2


@pytest.mark.s3
def test_table_in_s3(tmp_path, s3_server):
    import pond_core

    bucket = s3_server.new_bucket()
    opts = s3_server.options()
    s3 = {
        "s3.endpoint": s3_server.endpoint_url, "s3.access-key-id": opts.access_key_id,
        "s3.secret-access-key": opts.secret_access_key, "s3.region": opts.effective_region,
    }
    props = {"uri": f"sqlite:///{tmp_path}/iceberg.db", "warehouse": f"s3://{bucket}/warehouse"}
    catalog(props, **s3).create_namespace("db")
    session = pond_core.init(data_root=str(tmp_path / "pond"), executor="local", storage_options=opts)
    try:
        for version in ("v1", "v2"):
            for n in range(2):
                session.sql(day_sql(n, version)).write_iceberg("db.events", mode="overwrite_partitions", partition_by="dt", catalog=props)
        back = session.read_iceberg("db.events", props).repartition(2).to_arrow()
        assert sorted(zip(*(back.column(c).to_pylist() for c in ("id", "dt", "name")))) == expected({0: "v2", 1: "v2"})
        from deltalake import write_deltalake

        delta = f"s3://{bucket}/delta/events"
        storage = {
            "AWS_ENDPOINT_URL": s3_server.endpoint_url, "AWS_ACCESS_KEY_ID": opts.access_key_id,
            "AWS_SECRET_ACCESS_KEY": opts.secret_access_key, "AWS_REGION": opts.effective_region, "AWS_ALLOW_HTTP": "true",
        }
        write_deltalake(delta, back, partition_by=["dt"], storage_options=storage)
        assert session.read_delta(delta).count() == 20
        assert session.read_delta(delta, partition_filters=[("dt", "=", "2026-11-21")]).count() == 10
    finally:
        session.shutdown()
    table = catalog(props, **s3).load_table("db.events")
    assert table.location().startswith(f"s3://{bucket}/warehouse/db/events")
    assert pyiceberg_rows(table) == expected({0: "v2", 1: "v2"})
    import duckdb

    from pond_core.io import configure_duckdb

    con = duckdb.connect()
    configure_duckdb(con, opts, [table.metadata_location])
    assert duckdb_rows(table.metadata_location, con=con) == expected({0: "v2", 1: "v2"})
    listing = s3_server.client().list_objects_v2(Bucket=bucket, Prefix="warehouse/db/events/data/")
    assert not any("_pond_staging" in o["Key"] for o in listing.get("Contents", []))


KILLED_WRITER = r"""
import os, signal, sys
from pyiceberg.catalog.sql import SqlCatalog
import pond_core

write_metadata = SqlCatalog._write_metadata

def write_then_die(*args, **kwargs):
    write_metadata(*args, **kwargs)  # the new metadata file is on disk; the catalog row is not yet swapped
    os.kill(os.getpid(), signal.SIGKILL)

SqlCatalog._write_metadata = staticmethod(write_then_die)
props = {"uri": sys.argv[1], "warehouse": sys.argv[2]}
sp = pond_core.init(data_root=sys.argv[3], executor="local")
sp.sql(sys.argv[4]).write_iceberg("db.events", mode="overwrite_partitions", partition_by="dt", catalog=props)
print("not killed")
"""


def test_sigkill_mid_commit_leaves_the_previous_snapshot_current(local_sp, props, tmp_path):
    import os
    import subprocess
    import sys

    for n in range(2):
        local_sp.sql(day_sql(n)).write_iceberg("db.events", mode="overwrite_partitions", partition_by="dt", catalog=props)
    before = catalog(props).load_table("db.events")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, props["uri"], props["warehouse"], str(tmp_path / "killed"), day_sql(1, "v2")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == -9, proc.stdout + proc.stderr
    metadata_dir = before.location()[len("file://"):] + "/metadata"
    assert len([f for f in os.listdir(metadata_dir) if f.endswith(".metadata.json")]) == 3  # the killed writer's is there, unused
    after = catalog(props).load_table("db.events")
    assert after.metadata_location == before.metadata_location
    assert both_readers(props) == (expected({0: "v1", 1: "v1"}),) * 2
    local_sp.sql(day_sql(1, "v2")).write_iceberg("db.events", mode="overwrite_partitions", partition_by="dt", catalog=props)
    assert both_readers(props) == (expected({0: "v1", 1: "v2"}),) * 2


def test_a_rerun_of_a_committed_write_commits_nothing_new(props):
    import duckdb

    from pond_core.io.iceberg import IcebergSinkWriter
    from pond_core.specs.iceberg_table import IcebergTable
    from pond_core.specs.sink import SinkSpec

    target = IcebergTable("db.events", "pond", tuple(props.items()))
    spec = SinkSpec(path=target.uri, mode="overwrite_partitions", partition_by=["dt"], table=target)

    def write(job: str, sql: str):
        writer = IcebergSinkWriter(spec, job)
        writer.prepare()
        con = duckdb.connect()
        return writer.commit([writer.run_copy(con, sql, 0)])

    first = write("run1-stage", day_sql(0))
    snapshots = len(catalog(props).load_table("db.events").snapshots())
    again = write("run1-stage", day_sql(0, "v2"))  # e.g. killed after the snapshot, before the stage manifest
    assert again.manifest == first.manifest and again.rows == 10
    assert len(catalog(props).load_table("db.events").snapshots()) == snapshots
    assert both_readers(props) == (expected({0: "v1"}),) * 2


def test_concurrent_appends_both_land(props, tmp_path):
    import threading

    import pond_core

    local_sp = pond_core.init(data_root=str(tmp_path / "first"), executor="local")
    local_sp.sql(day_sql(0)).write_iceberg("db.events", partition_by="dt", catalog=props)
    errors = []

    def append(n: int) -> None:
        session = pond_core.init(data_root=str(tmp_path / f"w{n}"), executor="local")
        try:
            session.sql(day_sql(n)).write_iceberg("db.events", partition_by="dt", catalog=props)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            session.shutdown()

    threads = [threading.Thread(target=append, args=(n,)) for n in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    local_sp.shutdown()
    assert not errors
    assert both_readers(props) == (expected({0: "v1", 1: "v1", 2: "v1", 3: "v1"}),) * 2


def test_a_repartitioned_write_links_the_exchange_files_into_the_table(local_sp, props):
    # repartition -> write with the exchange's compression runs no task: the files are linked.
    result = local_sp.sql(day_sql(0)).repartition(3, hash_by="id").write_iceberg("db.events", compression="snappy", catalog=props)
    assert result["rows"] == 10
    table = catalog(props).load_table("db.events")
    assert len(table.inspect.files()) == 3
    assert both_readers(props) == (expected({0: "v1"}),) * 2
