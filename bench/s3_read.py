"""Read throughput from an S3-compatible server: pond's route against the alternatives.

Starts its own moto server on 127.0.0.1 (stopped by PID at the end), uploads the same Parquet
objects once, then times one full scan (every column aggregated) per route, interleaved, and
prints the median, min and max of the runs with MB/s over the objects' bytes:

  pond            resolve_paths (one LIST) + duckdb_connect_config + configure_duckdb + DuckDB
                  httpfs scan of the resolved file list (what a pond task does)
  duckdb-httpfs   plain DuckDB: httpfs loaded by hand, a secret, read_parquet('s3://.../*.parquet')
  pyarrow         pyarrow.dataset over pyarrow's S3FileSystem to an Arrow table, aggregated by DuckDB
  duckdb-fsspec   DuckDB reading through fsspec's wrapper around pyarrow's S3FileSystem
The DuckDB routes run with DuckDB's default threads (one per core) and with threads=8.

Nothing asserts on time; the script exits non-zero if a route returns a wrong result.

    .venv/bin/python bench/s3_read.py [--files 8] [--rows 400000] [--runs 5]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pond_core.io import StorageOptions, configure_duckdb, duckdb_connect_config, resolve_paths  # noqa: E402
from pond_core.io.duckdb_setup import httpfs_extension_path, secret_sql  # noqa: E402
from tests.support.s3 import S3Server  # noqa: E402


def upload(server: S3Server, bucket: str, files: int, rows: int) -> int:
    """Write `files` Parquet objects straight to the server with DuckDB; returns total bytes."""
    con = duckdb.connect()
    configure_duckdb(con, server.options(), [f"s3://{bucket}/"])
    for i in range(files):
        con.execute(
            f"COPY (SELECT (random() * 1e12)::BIGINT AS a, random() AS b, "
            f"substr(md5(random()::VARCHAR), 1, 16) AS s FROM range({rows})) "
            f"TO 's3://{bucket}/data/part-{i:05d}.parquet' (FORMAT parquet)"
        )
    sizes = server.client().list_objects_v2(Bucket=bucket, Prefix="data/")["Contents"]
    return sum(o["Size"] for o in sizes)


def pyarrow_fs(opts: StorageOptions) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        access_key=opts.access_key_id,
        secret_key=opts.secret_access_key,
        endpoint_override=opts.endpoint_host,
        scheme="http",
        region=opts.effective_region,
    )


def duckdb_connection(threads: int | None, config: dict | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config=config or {})
    if threads:
        con.execute(f"SET threads = {threads}")
    return con


def route_pond(opts: StorageOptions, bucket: str, query: str, threads: int | None) -> tuple:
    files = resolve_paths(f"s3://{bucket}/data", True, opts)
    con = duckdb_connection(threads, duckdb_connect_config(files))
    configure_duckdb(con, opts, files)
    return con.execute(query.format(src=f"read_parquet({files!r})")).fetchone()


def route_duckdb(opts: StorageOptions, bucket: str, query: str, threads: int | None) -> tuple:
    con = duckdb_connection(threads)
    con.load_extension(httpfs_extension_path())
    con.execute(secret_sql(opts))
    return con.execute(query.format(src=f"read_parquet('s3://{bucket}/data/*.parquet')")).fetchone()


def route_pyarrow(opts: StorageOptions, bucket: str, query: str, threads: int | None) -> tuple:
    # pyarrow reads every column (it cannot see DuckDB's projection), then DuckDB aggregates.
    arrow_table = pads.dataset(f"{bucket}/data", format="parquet", filesystem=pyarrow_fs(opts)).to_table()
    con = duckdb_connection(threads)
    con.register("arrow_table", arrow_table)
    return con.execute(query.format(src="arrow_table")).fetchone()


def route_fsspec(opts: StorageOptions, bucket: str, query: str, threads: int | None) -> tuple:
    from fsspec.implementations.arrow import ArrowFSWrapper

    class Wrapper(ArrowFSWrapper):
        protocol = "pas3"  # DuckDB dispatches on the protocol; s3:// belongs to httpfs

        @classmethod
        def _strip_protocol(cls, path):  # keep the bucket: pas3://bucket/key -> bucket/key
            return path.split("://", 1)[-1].rstrip("/")

    con = duckdb_connection(threads)
    con.register_filesystem(Wrapper(pyarrow_fs(opts)))
    return con.execute(query.format(src=f"read_parquet('pas3://{bucket}/data/*.parquet')")).fetchone()


QUERIES = {
    "all columns": "SELECT count(*), sum(a), sum(b), sum(length(s)) FROM {src}",
    "one column": "SELECT count(*), sum(a), 0::DOUBLE, 0 FROM {src}",
}
ROUTES: dict[str, tuple[Callable[..., tuple], int | None]] = {
    "pond": (route_pond, None),
    "pond threads=8": (route_pond, 8),
    "duckdb-httpfs": (route_duckdb, None),
    "duckdb-httpfs threads=8": (route_duckdb, 8),
    "pyarrow": (route_pyarrow, None),
    "duckdb-fsspec": (route_fsspec, None),
}


def same(got: tuple, expected: tuple) -> bool:
    return got[:2] == expected[:2] and got[3] == expected[3] and abs(got[2] - expected[2]) <= 1e-6 * abs(expected[2])


def measure(opts: StorageOptions, bucket: str, query: str, runs: int) -> tuple[dict, dict]:
    expected = route_duckdb(opts, bucket, query, None)
    times: dict[str, list[float]] = {name: [] for name in ROUTES}
    failures: dict[str, str] = {}
    for _ in range(runs):
        for name, (route, threads) in ROUTES.items():
            if name in failures:
                continue
            start = time.perf_counter()
            print(f"  {name} ...", end="", file=sys.stderr, flush=True)
            try:
                got = route(opts, bucket, query, threads)
            except Exception as exc:  # a route that cannot work here is reported, not fatal
                failures[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
                continue
            times[name].append(time.perf_counter() - start)
            print(f" {times[name][-1]:.2f}s", file=sys.stderr, flush=True)
            if not same(got, expected):
                failures[name] = f"wrong result {got} != {expected}"
    return times, failures


def report(label: str, times: dict, failures: dict, total_bytes: int) -> None:
    print(f"\n{label}")
    print(f"{'route':<24} {'median s':>9} {'min s':>7} {'max s':>7} {'MB/s':>7} {'vs pond':>8}")
    pond = statistics.median(times["pond"]) if times["pond"] else None
    for name in ROUTES:
        if name in failures or not times[name]:
            print(f"{name:<24} {'ERROR' if 'wrong' in failures.get(name, '') else 'n/a':>9}  {failures.get(name, '')}")
            continue
        med = statistics.median(times[name])
        ratio = f"{med / pond:.2f}x" if pond else "-"
        print(f"{name:<24} {med:>9.3f} {min(times[name]):>7.3f} {max(times[name]):>7.3f} {total_bytes / 1e6 / med:>7.1f} {ratio:>8}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--rows", type=int, default=400_000, help="rows per file")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    # SIGTERM (a timeout, a killed job) unwinds through `finally`, which stops the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    server = S3Server().start()
    try:
        bucket = server.new_bucket("bench")
        total = upload(server, bucket, args.files, args.rows)
        opts = server.options()
        print(f"moto at {server.endpoint_url}: {args.files} objects, {args.files * args.rows:,} rows, "
              f"{total / 1e6:.1f} MB; DuckDB {duckdb.__version__}, pyarrow {pa.__version__}; "
              f"{args.runs} runs per route, interleaved; each run a new connection (cold DuckDB caches); "
              "MB/s is over the objects' full size")
        wrong = False
        for label, query in QUERIES.items():
            times, failures = measure(opts, bucket, query, args.runs)
            report(f"query: {label} -- {query.format(src='...')}", times, failures, total)
            wrong = wrong or any("wrong" in f for f in failures.values())
        return 1 if wrong else 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
