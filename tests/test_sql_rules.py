"""Each rule of the SQL planner against DuckDB over the same whole inputs: joins of every kind,
aggregates and their decompositions, DISTINCT, ORDER BY/LIMIT, windows, set operations, CTEs,
subqueries, NULL keys, skew and empty inputs.

The inputs are small, so the planner is told to distribute anyway (no input read whole, no
broadcast, no gather by size): every exchange and phase runs for real.
"""

from __future__ import annotations

import duckdb
import pytest

from pond_core.sqlplan import ExchangeKind, Op, PlanOptions, plan_sql
from tests.sql_compare import assert_same_result, order_columns

FORCE = PlanOptions(single_read_threshold=0, broadcast_threshold=0, partition_bytes=1)

TABLES = {
    # k: 0..6 with NULLs; d DOUBLE, dec DECIMAL, s strings, dt dates
    "a": "SELECT i AS id, CASE WHEN i % 10 = 0 THEN NULL ELSE i % 7 END AS k, (i % 5)::INT AS ki, i * 1.5 AS d, "
    "(i % 100)::DECIMAL(10,2) / 3 AS dec, 'n' || (i % 13) AS s, DATE '2020-01-01' + (i % 50)::INT AS dt FROM range(3000) t(i)",
    # keys -2..8 (negative ones too), a NULL key, and a BIGINT key to join the INT ki
    "b": "SELECT i AS k, 'b' || i AS name, (i - 3)::BIGINT AS kb FROM range(-2, 9) t(i) UNION ALL SELECT NULL, 'bnull', NULL",
    "e": "SELECT 1 AS k, 'x' AS v WHERE false",
    # one key holds half of the rows
    "skew": "SELECT CASE WHEN i % 2 = 0 THEN 1 ELSE i END AS k, i AS v FROM range(4000) t(i)",
}

QUERIES = [
    # aggregates: two-phase, over NULLs, every decomposition
    "SELECT count(*), count(k), sum(k), sum(id), avg(d), avg(dec), avg(k), min(s), max(dt), stddev_samp(d), var_pop(dec), variance(k) FROM a",
    "SELECT k, count(*), sum(dec), avg(dec), stddev_pop(d), var_samp(k) FROM a GROUP BY k ORDER BY k",
    "SELECT ki, count(DISTINCT k), sum(DISTINCT k), approx_count_distinct(s) FROM a GROUP BY ki ORDER BY ki",
    "SELECT count(DISTINCT k), approx_count_distinct(id) FROM a",
    "SELECT ki, string_agg(s, ',' ORDER BY s, id), median(d), quantile_cont(d, 0.3) FROM a GROUP BY ki ORDER BY ki",
    "SELECT ki, count(*) FILTER (WHERE k > 2), bool_and(k > 0), bool_or(k > 5), bit_xor(id) FROM a GROUP BY ki ORDER BY 1",
    "SELECT k, count(*) c FROM a GROUP BY ALL HAVING count(*) > 100 ORDER BY c DESC, k",
    "SELECT k + ki AS g, sum(d) / count(*) AS r FROM a GROUP BY k + ki ORDER BY g NULLS FIRST",
    "SELECT ki, list(id ORDER BY id)[1:3], arg_max(id, d) FROM a GROUP BY ki ORDER BY ki",
    # empty inputs
    "SELECT count(*), sum(k), avg(k), stddev_samp(k) FROM e",
    "SELECT k, count(*) FROM e GROUP BY k",
    "SELECT a.id FROM a JOIN e ON a.k = e.k",
    "SELECT a.id, e.v FROM a LEFT JOIN e ON a.k = e.k ORDER BY a.id",
    "SELECT k, v FROM e ORDER BY k",
    "SELECT k, row_number() OVER (PARTITION BY v ORDER BY k) FROM e",
    "SELECT k FROM e UNION ALL SELECT k FROM b",
    # joins of every kind, NULL keys on both sides, keys of two types
    "SELECT * FROM a JOIN b ON a.k = b.k ORDER BY id LIMIT 20",
    "SELECT a.id, b.name FROM a LEFT JOIN b ON a.k = b.k ORDER BY a.id",
    "SELECT a.id, b.name FROM a RIGHT JOIN b ON a.k = b.k ORDER BY a.id NULLS FIRST, b.name",
    "SELECT a.id, b.name FROM a FULL JOIN b ON a.k = b.k ORDER BY a.id NULLS FIRST, b.name",
    "SELECT a.id FROM a SEMI JOIN b ON a.k = b.k ORDER BY 1",
    "SELECT a.id FROM a ANTI JOIN b ON a.k = b.k ORDER BY 1",
    "SELECT count(*), sum(b.kb) FROM a JOIN b ON a.ki = b.kb",
    "SELECT count(*) FROM a JOIN b ON a.k < b.k",
    "SELECT a.id, b.name FROM a FULL JOIN b ON a.k < b.k - 6 ORDER BY 1 NULLS FIRST, 2",
    "SELECT * FROM a JOIN b USING (k) ORDER BY id LIMIT 5",
    "SELECT a.id, b.name FROM a, b WHERE (a.k = b.k AND b.k > 3) OR (a.k = b.k AND a.id < 10) ORDER BY 1, 2",
    # DISTINCT, ORDER BY, LIMIT
    "SELECT DISTINCT k, s FROM a ORDER BY k NULLS FIRST, s",
    "SELECT DISTINCT k FROM a",
    "SELECT id, k FROM a ORDER BY k DESC NULLS FIRST, id LIMIT 7 OFFSET 3",
    "SELECT id FROM a ORDER BY s, dt DESC, id",
    "SELECT k, d FROM a ORDER BY k NULLS FIRST, d DESC",
    "SELECT id FROM a ORDER BY id OFFSET 2990",
    # windows
    "SELECT k, id, row_number() OVER (PARTITION BY k ORDER BY id) rn, sum(d) OVER (PARTITION BY k) FROM a ORDER BY id",
    "SELECT id, rank() OVER (ORDER BY ki, id) FROM a ORDER BY id",
    "SELECT id, k FROM a QUALIFY row_number() OVER (PARTITION BY k ORDER BY id DESC) = 1 ORDER BY k",
    "SELECT ki, sum(d), sum(sum(d)) OVER (ORDER BY ki) FROM a GROUP BY ki ORDER BY ki",
    # set operations
    "SELECT k FROM a UNION SELECT k FROM b ORDER BY 1",
    "SELECT k FROM a UNION ALL SELECT kb FROM b",
    "SELECT k FROM a INTERSECT SELECT k FROM b ORDER BY 1",
    "SELECT k FROM a EXCEPT SELECT k FROM b ORDER BY 1",
    "SELECT ki FROM a EXCEPT ALL SELECT k FROM b",
    "SELECT ki FROM a INTERSECT ALL SELECT kb FROM b",
    # CTEs, derived tables, subqueries
    "WITH c AS (SELECT k, count(*) n FROM a GROUP BY k) SELECT c1.k, c1.n, c2.n FROM c c1 JOIN c c2 ON c1.k = c2.k ORDER BY 1",
    "SELECT x.k, x.m FROM (SELECT k, max(id) m FROM a GROUP BY k) x WHERE x.m > 100 ORDER BY 1",
    "SELECT id FROM a WHERE k = (SELECT max(k) FROM b) ORDER BY id",
    "SELECT id FROM a WHERE k IN (SELECT k FROM b WHERE k > 3) ORDER BY id",
    "SELECT id FROM a WHERE k NOT IN (SELECT k FROM b) ORDER BY id",
    "SELECT id FROM a WHERE ki NOT IN (SELECT k FROM b WHERE k IS NOT NULL) ORDER BY id",
    "SELECT count(*) FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.k = a.k)",
    "SELECT count(*) FROM a WHERE NOT EXISTS (SELECT * FROM b WHERE b.k = a.k AND b.name <> 'b3')",
    "SELECT id FROM a WHERE d > (SELECT avg(d) FROM a a2 WHERE a2.k = a.k) ORDER BY id",
    "SELECT count(*) FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.k < a.k)",
    "SELECT id, (SELECT max(name) FROM b WHERE b.k = a.k) FROM a ORDER BY id",
    "SELECT ki, count(*) FROM a GROUP BY ki HAVING sum(d) > (SELECT avg(d) * 500 FROM a) ORDER BY 1",
    # skew: one key holds half the rows
    "SELECT k, sum(v) FROM skew GROUP BY k ORDER BY 2 DESC LIMIT 3",
    "SELECT count(*), sum(s.v) FROM skew s JOIN skew t ON s.k = t.k",
    "SELECT s.k, count(*) FROM skew s LEFT JOIN b ON s.k = b.k GROUP BY s.k ORDER BY 2 DESC, 1 LIMIT 5",
]

RAY_QUERIES = [QUERIES[i] for i in (1, 2, 4, 10, 17, 19, 22, 31, 33, 38, 41, 47, 52, 55)]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("sqlrules")
    con = duckdb.connect()
    paths = {}
    for name, sql in TABLES.items():
        folder = root / name
        folder.mkdir()
        con.execute(f"CREATE TABLE {name} AS {sql}")
        count = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        files = 1 if count == 0 else 3
        size = count // files + 1
        for i in range(files):
            con.execute(f"COPY (SELECT * FROM {name} LIMIT {size} OFFSET {i * size}) TO '{folder}/p{i}.parquet' (FORMAT parquet)")
        paths[name] = str(folder / "*.parquet")
    return con, paths


def check(sp, tables, query, n=3, options=FORCE):
    con, paths = tables
    dq = plan_sql(sp, query, paths, npartitions=n, options=options)
    names = [c for c, _ in dq.output]
    got = [tuple(r.values()) for r in dq.frame.take_all()]
    cursor = con.execute(query)
    want = cursor.fetchall()
    assert names == [d[0] for d in cursor.description]
    assert_same_result(got, want, order_columns(query, names), query)
    return dq


def exchanges(dq) -> list:
    return [node for node in dq.root.walk() if node.exchange is not None]


@pytest.mark.parametrize("query", QUERIES)
def test_rule_matches_duckdb(sql_sessions, tables, query):
    dq = check(sql_sessions("local"), tables, query)
    assert not dq.fallbacks, dq.explain()


@pytest.mark.ray
@pytest.mark.parametrize("query", RAY_QUERIES)
def test_rule_matches_duckdb_on_ray(sql_sessions, tables, query):
    check(sql_sessions("ray"), tables, query)


@pytest.mark.parametrize("n", [1, 8])
def test_rules_at_other_partition_counts(sql_sessions, tables, n):
    for query in QUERIES[::4]:
        check(sql_sessions("local"), tables, query, n=n)


def test_the_default_options_give_the_same_results(sql_sessions, tables):
    for query in QUERIES[::3]:
        check(sql_sessions("local"), tables, query, options=PlanOptions())


# -- the plan each rule makes ----------------------------------------------------------------


def test_small_join_side_is_broadcast_and_large_ones_are_hashed(sql_sessions, tables):
    sp = sql_sessions("local")
    query = "SELECT a.id, b.name FROM a JOIN b ON a.k = b.k ORDER BY 1"
    small = check(sp, tables, query, options=PlanOptions(single_read_threshold=0, partition_bytes=1))
    kinds = [x.exchange for x in exchanges(small)]
    assert ExchangeKind.BROADCAST in kinds and ExchangeKind.HASH not in kinds, small.explain()
    assert "broadcast right" in small.explain()
    hashed = check(sp, tables, query)
    assert sum(x.exchange is ExchangeKind.HASH for x in exchanges(hashed)) == 2, hashed.explain()


def test_keys_of_different_types_are_cast_before_hashing(sql_sessions, tables):
    dq = check(sql_sessions("local"), tables, "SELECT a.id, b.name FROM a JOIN b ON a.ki = b.kb ORDER BY 1")
    assert "cast join keys to one type" in dq.explain()


def test_a_full_join_without_equality_runs_in_one_partition(sql_sessions, tables):
    dq = check(sql_sessions("local"), tables, "SELECT a.id, b.name FROM a FULL JOIN b ON a.k < b.k - 6 ORDER BY 1 NULLS FIRST, 2")
    assert "FULL join without equality keys runs in one partition" in dq.explain()


@pytest.mark.parametrize(
    "query, mode",
    [
        ("SELECT k, sum(d), avg(dec), stddev_samp(d) FROM a GROUP BY k", "two-phase"),
        ("SELECT ki, count(DISTINCT k), approx_count_distinct(k) FROM a GROUP BY ki", "distinct-then-aggregate"),
        ("SELECT ki, median(d), string_agg(s, ',' ORDER BY id) FROM a GROUP BY ki", "rows-then-aggregate"),
    ],
)
def test_aggregation_modes(sql_sessions, tables, query, mode):
    dq = check(sql_sessions("local"), tables, query)
    assert f"{mode}:" in dq.explain()


def test_a_hash_partitioned_dataframe_input_needs_no_exchange(sql_sessions, tables):
    sp = sql_sessions("local")
    con, paths = tables
    skew = sp.read_parquet(paths["skew"]).repartition(3, hash_by="k")
    dq = plan_sql(sp, "SELECT k, count(*) AS n, sum(v) AS v FROM skew GROUP BY k", {"skew": skew}, options=FORCE)
    assert dq.npartitions == 3
    assert not exchanges(dq), dq.explain()
    assert "local: input already hashed on group keys" in dq.explain()
    want = con.execute("SELECT k, count(*), sum(v) FROM skew GROUP BY k").fetchall()
    assert_same_result([tuple(r.values()) for r in dq.frame.take_all()], want, None)


def test_files_with_disjoint_key_ranges_join_without_moving_the_larger_side(sql_sessions, tmp_path):
    con = duckdb.connect()
    for name, rows in (("facts", 4000), ("dims", 400)):
        (tmp_path / name).mkdir()
        for i in range(4):
            lo, hi = i * rows // 4, (i + 1) * rows // 4
            key = "i // 10" if name == "facts" else "i"
            con.execute(f"COPY (SELECT {key} AS k, i AS v FROM range({lo}, {hi}) t(i)) TO '{tmp_path}/{name}/p{i}.parquet' (FORMAT parquet)")
    paths = {n: str(tmp_path / n / "*.parquet") for n in ("facts", "dims")}
    query = "SELECT f.k, count(*) AS n, sum(d.v) AS s FROM facts f JOIN dims d ON f.k = d.k GROUP BY f.k"
    dq = plan_sql(sql_sessions("local"), query, paths, npartitions=4, options=FORCE)
    text = dq.explain()
    assert "hold disjoint ranges of k" in text
    moved = [x for x in exchanges(dq) if x.exchange in (ExchangeKind.HASH, ExchangeKind.KEY_RANGES)]
    assert len(moved) <= 1, text  # the facts are never moved
    assert "local: input already hashed on group keys" in text
    want = duckdb.sql(query.replace("facts", f"read_parquet('{paths['facts']}')").replace("dims", f"read_parquet('{paths['dims']}')")).fetchall()
    assert_same_result([tuple(r.values()) for r in dq.frame.take_all()], want, None)


def test_global_order_by_of_a_large_result_takes_a_range_exchange(sql_sessions, tables):
    dq = check(sql_sessions("local"), tables, "SELECT k, d, s FROM a ORDER BY k DESC NULLS FIRST, s, d")
    assert any(x.exchange is ExchangeKind.RANGE for x in exchanges(dq)), dq.explain()
    assert dq.frame.num_partitions == 3


def test_order_by_limit_is_top_n_per_partition_then_final(sql_sessions, tables):
    dq = check(sql_sessions("local"), tables, "SELECT id, d FROM a ORDER BY d DESC LIMIT 5")
    ops = [x.op for x in dq.root.walk()]
    assert Op.TOP_N in ops and dq.frame.num_partitions == 1


def test_windows_hash_on_their_partition_keys(sql_sessions, tables):
    dq = check(sql_sessions("local"), tables, "SELECT k, id, row_number() OVER (PARTITION BY k ORDER BY id) FROM a")
    assert "rows of a window partition must meet" in dq.explain()
    whole = check(sql_sessions("local"), tables, "SELECT id, sum(d) OVER (ORDER BY id) FROM a")
    assert "needs one partition" in whole.explain()


def test_correlated_subquery_is_keyed_on_its_equality(sql_sessions, tables):
    dq = check(sql_sessions("local"), tables, "SELECT id FROM a WHERE d > (SELECT avg(d) FROM a a2 WHERE a2.k = a.k) ORDER BY id")
    assert "correlated subquery keyed on" in dq.explain()


def test_what_cannot_be_distributed_runs_in_one_partition_and_says_why(sql_sessions, tables):
    sp = sql_sessions("local")
    whole = check(sp, tables, "SELECT k, count(*) FROM a GROUP BY ROLLUP (k) ORDER BY 1 NULLS LAST, 2")
    assert not whole.distributed
    assert "whole query: GROUPING SETS / ROLLUP / CUBE" in whole.explain()
    part = check(sp, tables, "WITH r AS (SELECT k, count(*) AS n FROM a GROUP BY ROLLUP (k)) "
                 "SELECT r.k, r.n, b.name FROM r JOIN b ON r.k = b.k ORDER BY 1, 2")
    assert part.distributed
    assert [f.where for f in part.fallbacks] == ["CTE r"], part.explain()
    assert "ROLLUP" in part.explain()
    recursive = check(sp, tables, "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 5) SELECT * FROM r ORDER BY 1")
    assert "WITH RECURSIVE" in recursive.explain()
