"""Which reader for Iceberg and Delta sources: time planning (the file list) and a full scan.

    python bench/tables_readers.py [--days 30] [--rows-per-day 100000]

Writes an Iceberg table (pond's write_iceberg, one snapshot per day) and a Delta table
(deltalake) of the same rows in a temporary directory, then prints, per reader, the median of
five runs: listing the current snapshot's files, and `count(*), sum(amount)` over all rows.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

import duckdb


def timed(fn, repeat: int = 5) -> float:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return statistics.median(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows-per-day", type=int, default=100_000)
    args = parser.parse_args()

    import pond_core
    from pond_core.io.duckdb_setup import load_packaged_extension
    from pond_core.io.table_read import resolve_table
    from pond_core.specs.iceberg_table import IcebergTable
    from pond_core.specs.table_read import TableRead

    tmp = tempfile.mkdtemp(prefix="pond-tables-bench-")
    props = {"uri": f"sqlite:///{tmp}/iceberg.db", "warehouse": f"file://{tmp}/warehouse"}
    sp = pond_core.init(data_root=f"{tmp}/pond", executor="local")
    n = args.rows_per_day
    for d in range(args.days):
        sp.sql(f"SELECT i AS id, DATE '2026-01-01' + {d} AS dt, i % 97 AS amount, 'name-' || i AS name FROM range({n}) t(i)") \
            .write_iceberg("db.events", partition_by="dt", catalog=props)
    from pyiceberg.catalog import load_catalog

    table = load_catalog("pond", **props).load_table("db.events")
    arrow = table.scan().to_arrow()
    from deltalake import write_deltalake

    write_deltalake(f"{tmp}/delta", arrow, partition_by=["dt"])
    rows = arrow.num_rows
    del arrow

    con = duckdb.connect()
    for ext in ("avro", "iceberg", "delta"):
        load_packaged_extension(con, ext, "iceberg")
    meta = table.metadata_location
    read = TableRead(iceberg=IcebergTable("db.events", "pond", tuple(props.items())))
    delta = TableRead(delta_path=f"{tmp}/delta")
    agg = "SELECT count(*), sum(amount) FROM "
    figures = {
        "iceberg plan: pyiceberg (pond's read_iceberg listing)": timed(lambda: resolve_table(read, None)),
        "iceberg plan: duckdb iceberg_metadata()": timed(lambda: con.execute(f"SELECT count(*) FROM iceberg_metadata('{meta}')").fetchall()),
        "iceberg scan: duckdb iceberg_scan": timed(lambda: con.execute(f"{agg} iceberg_scan('{meta}')").fetchall()),
        "iceberg scan: pond read_iceberg (local, 2 partitions)": timed(lambda: sp.read_iceberg("db.events", props).repartition(2).recompute().count()),
        "iceberg scan: pyiceberg to_arrow": timed(lambda: table.scan(selected_fields=("amount",)).to_arrow(), repeat=3),
        "delta plan: deltalake file_uris (pond's read_delta listing)": timed(lambda: resolve_table(delta, None)),
        "delta scan: duckdb delta_scan": timed(lambda: con.execute(f"{agg} delta_scan('{tmp}/delta')").fetchall()),
        "delta scan: pond read_delta (local, 2 partitions)": timed(lambda: sp.read_delta(f"{tmp}/delta").repartition(2).recompute().count()),
    }
    print(f"{rows} rows in {args.days} daily files per table ({tmp})")
    for name, seconds in figures.items():
        print(f"{seconds * 1000:9.1f} ms  {name}")
    sp.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
