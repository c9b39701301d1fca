"""A partitioned pipeline gives exactly the result of one DuckDB query over the same files."""

from __future__ import annotations

import duckdb


def test_hash_repartition_aggregate_write_equals_duckdb(sp, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    con = duckdb.connect()
    for part in range(4):
        con.execute(
            f"""COPY (SELECT i AS id, (i * 7919) % 97 AS customer, (i % 13) * 1.25 AS amount,
                      CASE WHEN i % 5 = 0 THEN NULL ELSE 'c' || (i % 11) END AS city
                      FROM range({part * 5000}, {part * 5000 + 5000}) t(i))
                TO '{src}/part-{part}.parquet' (FORMAT parquet)"""
        )
    query = "SELECT customer, city, count(*) AS n, sum(amount) AS total, max(id) AS last_id FROM {0} GROUP BY customer, city"
    out = tmp_path / "out"

    frame = sp.read_parquet(str(src / "*.parquet")).repartition(6, hash_by="customer")
    result = sp.partial_sql(query, frame).write_parquet(str(out))

    expected = con.execute(query.format(f"read_parquet('{src}/*.parquet')") + " ORDER BY ALL").fetchall()
    actual = con.execute(f"SELECT * FROM read_parquet('{out}/*.parquet') ORDER BY ALL").fetchall()
    assert actual == expected
    assert result["rows"] == len(expected)
    # every customer landed in exactly one partition file, so no group is split
    per_file = con.execute(
        f"SELECT count(DISTINCT filename) FROM read_parquet('{out}/*.parquet', filename=true) GROUP BY customer HAVING count(DISTINCT filename) > 1"
    ).fetchall()
    assert per_file == []
