"""Three datasets joined on different keys (lineitem ⋈ orders on the order key ⋈ customer on
the customer key), for the tests that every SQL entry point plans exchanges itself: big enough
that pond splits lineitem over the partitions, small enough for a shared test machine."""

from __future__ import annotations

import pathlib

import duckdb

QUERY = """
SELECT c_mktsegment, count(*) AS lines, sum(l_extendedprice) AS revenue, count(DISTINCT o_orderkey) AS orders
FROM lineitem
JOIN orders ON l_orderkey = o_orderkey
JOIN customer ON o_custkey = c_custkey
WHERE l_quantity > 5
GROUP BY c_mktsegment
ORDER BY c_mktsegment
"""

TABLES = {
    "customer": "SELECT i AS c_custkey, ['BUILDING', 'MACHINERY', 'HOUSEHOLD', 'AUTOMOBILE', 'FURNITURE'][i % 5 + 1] AS c_mktsegment "
    "FROM range(1, 3001) t(i)",
    "orders": "SELECT i AS o_orderkey, (i * 7) % 3000 + 1 AS o_custkey FROM range(1, 60001) t(i)",
    "lineitem": "SELECT i // 12 + 1 AS l_orderkey, (i % 50)::DECIMAL(15,2) AS l_quantity, "
    "((i % 10000) / 100)::DECIMAL(15,2) AS l_extendedprice FROM range(0, 240000 * 3) t(i)",
}


def write_tables(root: str | pathlib.Path, files: int = 4) -> dict[str, str]:
    """The three tables as Parquet dataset directories under root (written once); name -> path."""
    root = pathlib.Path(root)
    con = duckdb.connect()
    paths = {}
    for name, sql in TABLES.items():
        folder = root / name
        if not folder.is_dir():
            staging = root / f"{name}.staging"
            staging.mkdir(parents=True, exist_ok=True)
            con.execute(f"CREATE OR REPLACE TABLE t AS {sql}")
            for i in range(files):
                con.execute(f"COPY (SELECT * FROM t WHERE hash(rowid) % {files} = {i}) TO '{staging}/part-{i}.parquet' (FORMAT parquet)")
            staging.rename(folder)
        paths[name] = str(folder)
    return paths


def expected(paths: dict[str, str]) -> list[tuple]:
    con = duckdb.connect()
    for name, path in paths.items():
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}/*.parquet')")
    return con.execute(QUERY).fetchall()
