"""read_iceberg / read_delta: a table snapshot read as its Parquet files, split by file,
pruned by partition, under the snapshot's schema; checked against the tables' own readers."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from pond_core.errors import PondInputError
from tests.support.iceberg import catalog, sqlite_catalog
from tests.test_tables_iceberg import day_sql, expected


def rows(frame) -> list[tuple]:
    con = duckdb.connect()
    con.register("t", frame.to_arrow())
    return con.execute("SELECT * FROM t ORDER BY ALL").fetchall()


@pytest.fixture
def props(tmp_path):
    return sqlite_catalog(tmp_path)


def test_read_iceberg_snapshots_split_by_file_and_pruned(local_sp, props):
    for n in range(3):
        local_sp.sql(day_sql(n)).write_iceberg("db.events", partition_by="dt", catalog=props)
    table = catalog(props).load_table("db.events")
    first, *_ = table.snapshots()
    local_sp.sql(day_sql(1, "v2")).write_iceberg("db.events", mode="overwrite_partitions", partition_by="dt", catalog=props)

    current = local_sp.read_iceberg("db.events", props)
    assert rows(current) == expected({0: "v1", 1: "v2", 2: "v1"})
    assert rows(local_sp.read_iceberg("db.events", props, snapshot_id=first.snapshot_id)) == expected({0: "v1"})
    assert rows(local_sp.read_iceberg("db.events", props, as_of=first.timestamp_ms / 1000)) == expected({0: "v1"})

    split = current.repartition(3)
    manifest = split.session.run(split._node, __import__("pond_core.plan.physical", fromlist=["FILES"]).FILES)
    assert [len(p.files) for p in manifest.partitions] == [1, 1, 1]  # one day's file each

    pruned = local_sp.read_iceberg("db.events", props, row_filter="dt >= '2026-11-21'", columns=["id", "name"])
    assert rows(pruned) == [(i, n) for i, _, n in expected({1: "v2", 2: "v1"})]
    from pond_core.io.table_read import resolve_table
    from pond_core.specs.iceberg_table import IcebergTable
    from pond_core.specs.table_read import TableRead

    target = IcebergTable("db.events", "pond", tuple(props.items()))
    assert len(resolve_table(TableRead(iceberg=target), None).files) == 3
    assert len(resolve_table(TableRead(iceberg=target, row_filter="dt >= '2026-11-21'"), None).files) == 2  # pruned by partition


def test_read_iceberg_after_schema_evolution_reads_old_files_with_nulls(local_sp, props):
    local_sp.sql(day_sql(0)).write_iceberg("db.events", partition_by="dt", catalog=props)
    local_sp.sql(day_sql(1, extra=", i * 2 AS score")).write_iceberg("db.events", partition_by="dt", catalog=props)
    out = local_sp.read_iceberg("db.events", props).repartition(2).filter("id IN (0, 15)").to_arrow()
    assert sorted(zip(out.column("id").to_pylist(), out.column("score").to_pylist())) == [(0, None), (15, 30)]


def test_read_iceberg_errors_name_the_table(local_sp, props):
    with pytest.raises(PondInputError, match=r"Iceberg table db\.missing does not exist"):
        local_sp.read_iceberg("db.missing", props).to_arrow()
    local_sp.sql(day_sql(0)).write_iceberg("db.events", catalog=props)
    with pytest.raises(PondInputError, match="has no snapshot 42"):
        local_sp.read_iceberg("db.events", props, snapshot_id=42).to_arrow()


def delta_table(path: str) -> list[int]:
    """Three versions of a Delta table partitioned by dt, written by deltalake; their versions."""
    from deltalake import write_deltalake

    def day(n: int, version: str) -> pa.Table:
        ids = list(range(n * 10, n * 10 + 10))
        return pa.table({
            "id": pa.array(ids, pa.int64()),
            "dt": pa.array([dt.date(2026, 11, 20) + dt.timedelta(days=n)] * 10, pa.date32()),
            "name": [f"{version}-{i}" for i in ids],
        })

    write_deltalake(path, day(0, "v1"), partition_by=["dt"])
    write_deltalake(path, day(1, "v1"), partition_by=["dt"], mode="append")
    write_deltalake(path, day(1, "v2"), partition_by=["dt"], mode="overwrite", predicate="dt = '2026-11-21'")
    return [0, 1, 2]


def test_read_delta_versions_and_partition_filters(local_sp, tmp_path):
    path = str(tmp_path / "delta")
    delta_table(path)
    assert rows(local_sp.read_delta(path)) == expected({0: "v1", 1: "v2"})
    assert rows(local_sp.read_delta(path, version=0)) == expected({0: "v1"})
    assert rows(local_sp.read_delta(path, version=1)) == expected({0: "v1", 1: "v1"})
    from deltalake import DeltaTable

    history = {h["version"]: h["timestamp"] for h in DeltaTable(path).history()}
    assert rows(local_sp.read_delta(path, as_of=history[1] / 1000 + 0.0005)) == expected({0: "v1", 1: "v1"})
    pruned = local_sp.read_delta(path, partition_filters=[("dt", "=", "2026-11-21")])
    assert rows(pruned) == expected({1: "v2"})
    assert local_sp.read_delta(path).repartition(2).count() == 20
    # DuckDB's delta extension, an independent reader, agrees.
    from pond_core.io.duckdb_setup import load_packaged_extension

    con = duckdb.connect()
    load_packaged_extension(con, "delta", "delta")
    assert con.execute(f"SELECT * FROM delta_scan('{path}') ORDER BY ALL").fetchall() == expected({0: "v1", 1: "v2"})


def test_read_delta_missing_table(local_sp, tmp_path):
    with pytest.raises(PondInputError, match="no Delta table at"):
        local_sp.read_delta(str(tmp_path / "nope")).to_arrow()
