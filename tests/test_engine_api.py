"""Every method of the smallpond API, for its behaviour, on both executors."""

from __future__ import annotations

import collections
import os

import duckdb
import pandas as pd
import pyarrow as pa

import pond_core


def ids(rows, key="id"):
    return sorted(r[key] for r in rows)


# -- sources ---------------------------------------------------------------------------------


def test_read_parquet_path_list_glob_and_columns(sp, numbers_dir):
    assert sp.read_parquet(str(numbers_dir / "part-0.parquet")).count() == 100
    two = sp.read_parquet([str(numbers_dir / "part-0.parquet"), str(numbers_dir / "part-2.parquet")])
    assert ids(two.take_all()) == list(range(100)) + list(range(200, 300))
    glob = sp.read_parquet(str(numbers_dir / "*.parquet"), columns=["id"])
    rows = glob.take_all()
    assert list(rows[0]) == ["id"] and ids(rows) == list(range(300))


def test_read_parquet_recursive_and_union_by_name(sp, tmp_path):
    (tmp_path / "deep" / "a").mkdir(parents=True)
    con = duckdb.connect()
    con.execute(f"COPY (SELECT 1 AS x) TO '{tmp_path}/deep/top.parquet' (FORMAT parquet)")
    con.execute(f"COPY (SELECT 2 AS x, 'b' AS y) TO '{tmp_path}/deep/a/inner.parquet' (FORMAT parquet)")
    df = sp.read_parquet(str(tmp_path / "deep"), recursive=True, union_by_name=True)
    rows = sorted(df.take_all(), key=lambda r: r["x"])
    assert rows == [{"x": 1, "y": None}, {"x": 2, "y": "b"}]


def test_read_csv_with_schema_and_delimiter(sp, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("1|ann|3.5\n2|bob|4.0\n")
    df = sp.read_csv(str(path), schema={"id": "BIGINT", "name": "VARCHAR", "score": "DOUBLE"}, delim="|")
    assert df.take_all() == [{"id": 1, "name": "ann", "score": 3.5}, {"id": 2, "name": "bob", "score": 4.0}]


def test_read_json_newline_delimited(sp, tmp_path):
    path = tmp_path / "events.json"
    path.write_text('{"id": 1, "tag": "a"}\n{"id": 2, "tag": "b"}\n')
    df = sp.read_json(str(path), schema={"id": "INTEGER", "tag": "VARCHAR"})
    assert df.take_all() == [{"id": 1, "tag": "a"}, {"id": 2, "tag": "b"}]


def test_from_items_dicts_and_scalars_keep_order(sp):
    assert sp.from_items([{"a": 3}, {"a": 1}, {"a": 2}]).take_all() == [{"a": 3}, {"a": 1}, {"a": 2}]
    assert sp.from_items([5, 4, 6]).take_all() == [{"item": 5}, {"item": 4}, {"item": 6}]


def test_from_pandas_and_arrow_are_ordinary_inputs(sp):
    frame = sp.from_pandas(pd.DataFrame({"k": [1, 2, 3, 4], "v": ["a", "b", "c", "d"]}))
    spread = frame.repartition(2, hash_by="k")
    assert spread.num_partitions == 2 and sorted(spread.take_all(), key=lambda r: r["k"])[0] == {"k": 1, "v": "a"}
    table = sp.from_arrow(pa.table({"x": [1.5, 2.5]}))
    assert table.take_all() == [{"x": 1.5}, {"x": 2.5}]


# -- partial_sql -----------------------------------------------------------------------------


def test_partial_sql_without_inputs(sp):
    assert sp.partial_sql("SELECT * FROM range(3) t(i)").take_all() == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_partial_sql_aligns_co_partitioned_inputs(sp):
    left = sp.from_items([{"k": i, "a": i * 10} for i in range(50)]).repartition(4, hash_by="k")
    right = sp.from_items([{"k": i, "b": i * 100} for i in range(50)]).repartition(4, hash_by="k")
    joined = sp.partial_sql("SELECT {0}.k, a, b FROM {0} JOIN {1} ON {0}.k = {1}.k", left, right)
    rows = sorted(joined.take_all(), key=lambda r: r["k"])
    assert len(rows) == 50 and rows[7] == {"k": 7, "a": 70, "b": 700}


def test_partial_sql_broadcasts_a_single_partition_input(sp):
    facts = sp.from_items([{"k": i % 3, "v": 1} for i in range(30)]).repartition(3, hash_by="k")
    names = sp.from_items([{"k": 0, "name": "zero"}, {"k": 1, "name": "one"}, {"k": 2, "name": "two"}])
    out = sp.partial_sql("SELECT name, count(*) AS n FROM {0} JOIN {1} USING (k) GROUP BY name", facts, names)
    assert out.num_partitions == 3
    assert sorted((r["name"], r["n"]) for r in out.take_all()) == [("one", 10), ("two", 10), ("zero", 10)]


def test_udf_registered_in_every_task(sp):
    @pond_core.udf(params=["BIGINT"], return_type="BIGINT")
    def triple(x):
        return x * 3

    df = sp.from_items([{"v": i} for i in range(6)]).repartition(2, hash_by="v")
    out = sp.partial_sql("SELECT triple(v) AS t FROM {0}", df, udfs=[triple])
    assert ids(out.take_all(), "t") == [0, 3, 6, 9, 12, 15]
    assert ids(df.map("triple(v) AS t", udfs=[triple]).take_all(), "t") == [0, 3, 6, 9, 12, 15]


# -- repartition -----------------------------------------------------------------------------


def test_hash_repartition_keeps_equal_keys_together(sp, numbers_dir):
    df = sp.read_parquet(str(numbers_dir / "*.parquet")).repartition(5, hash_by="k")
    per_partition = sp.partial_sql("SELECT list(DISTINCT k) AS ks, count(*) AS n FROM {0}", df).take_all()
    assert len(per_partition) == 5
    seen = [k for row in per_partition for k in (row["ks"] or [])]
    assert sorted(seen) == list(range(7)), "every key in exactly one partition"
    assert sum(r["n"] for r in per_partition) == 300
    assert "__pond_bucket" not in df.take_all()[0]


def test_hash_repartition_co_partitions_two_frames(sp):
    a = sp.from_items([{"key": i} for i in range(40)]).repartition(4, hash_by="key")
    b = sp.from_items([{"key": i} for i in reversed(range(40))]).repartition(4, hash_by="key")
    pairs = sp.partial_sql("SELECT list({0}.key ORDER BY {0}.key) AS a_keys FROM {0} SEMI JOIN {1} ON {0}.key = {1}.key", a, b)
    joined = [k for r in pairs.take_all() for k in (r["a_keys"] or [])]
    assert sorted(joined) == list(range(40)), "a per-partition join finds every key: frames are co-partitioned"


def test_repartition_by_value_uses_the_value_as_partition(sp):
    df = sp.from_items([{"p": i % 3, "v": i} for i in range(9)]).repartition(3, by="p")
    rows = sp.partial_sql("SELECT min(p) AS lo, max(p) AS hi, count(*) AS n FROM {0}", df).take_all()
    assert [(r["lo"], r["hi"], r["n"]) for r in rows] == [(0, 0, 3), (1, 1, 3), (2, 2, 3)]


def test_repartition_by_expression(sp):
    df = sp.from_items([{"v": i} for i in range(10)]).repartition(2, by="v % 2")
    rows = sp.partial_sql("SELECT list(v ORDER BY v) AS vs FROM {0}", df).take_all()
    assert [r["vs"] for r in rows] == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]


def test_repartition_even_by_files_and_by_rows(sp, numbers_dir):
    src = sp.read_parquet(str(numbers_dir / "*.parquet"))
    by_files = sp.partial_sql("SELECT count(*) AS n FROM {0}", src.repartition(3)).take_all()
    assert [r["n"] for r in by_files] == [100, 100, 100]
    by_rows = src.repartition(4, by_rows=True)
    counts = [r["n"] for r in sp.partial_sql("SELECT count(*) AS n FROM {0}", by_rows).take_all()]
    assert counts == [75, 75, 75, 75]
    assert [r["id"] for r in by_rows.take_all()] == list(range(300)), "by_rows keeps the row order"


def test_by_rows_of_a_computed_frame(sp):
    df = sp.from_items(list(range(10))).map("item * 2 AS d").repartition(3, by_rows=True)
    counts = [r["n"] for r in sp.partial_sql("SELECT count(*) AS n FROM {0}", df).take_all()]
    assert counts == [3, 3, 4] and [r["d"] for r in df.take_all()] == [i * 2 for i in range(10)]


# -- row operations --------------------------------------------------------------------------


def test_map_sql_is_per_partition(sp):
    df = sp.from_items([{"v": i} for i in range(10)]).repartition(2, by="v % 2")
    assert [r["s"] for r in df.map("sum(v) AS s").take_all()] == [20, 25]
    assert ids(df.map("v + 1 AS w").take_all(), "w") == list(range(1, 11))


def test_map_filter_flat_map_with_functions(sp):
    df = sp.from_items([{"v": i} for i in range(6)])
    assert df.map(lambda r: {"v": r["v"], "sq": r["v"] ** 2}).take_all()[3] == {"v": 3, "sq": 9}
    assert ids(df.filter(lambda r: r["v"] % 2 == 0).take_all(), "v") == [0, 2, 4]
    flat = df.flat_map(lambda r: [{"x": r["v"]}] * r["v"])
    assert flat.count() == 15
    typed = df.map(lambda r: {"s": str(r["v"])}, schema={"s": "VARCHAR"})
    assert typed.take(2) == [{"s": "0"}, {"s": "1"}]


def test_filter_and_flat_map_with_sql(sp):
    df = sp.from_items([{"v": i, "tags": ["a", "b"][: i % 3]} for i in range(6)])
    assert ids(df.filter("v > 3").take_all(), "v") == [4, 5]
    assert df.flat_map("v, unnest(tags) AS tag").count() == 6


def test_map_batches_gets_exact_batches_across_files(sp, numbers_dir):
    sizes = []

    def record(table: pa.Table) -> pa.Table:
        sizes.append(table.num_rows)
        return pa.table({"n": [table.num_rows]})

    out = sp.read_parquet(str(numbers_dir / "*.parquet")).map_batches(record, batch_size=64)
    assert [r["n"] for r in out.take_all()] == [64, 64, 64, 64, 44]


def test_map_batches_streaming(sp):
    def doubled(tables):
        for table in tables:
            yield pa.table({"d": pa.compute.multiply(table.column("item"), 2)})

    out = sp.from_items(list(range(10))).map_batches(doubled, batch_size=3, streaming=True)
    assert [r["d"] for r in out.take_all()] == [i * 2 for i in range(10)]


def test_random_shuffle_is_a_permutation_with_the_same_partition_count(sp):
    df = sp.from_items(list(range(200))).repartition(4, by_rows=True)
    shuffled = df.random_shuffle()
    rows = [r["item"] for r in shuffled.take_all()]
    assert shuffled.num_partitions == 4
    assert sorted(rows) == list(range(200)) and rows != list(range(200))


def test_partial_sort_within_partitions(sp):
    df = sp.from_items([{"g": i % 2, "v": i} for i in range(10)]).repartition(2, by="g")
    rows = df.partial_sort(["v desc"]).take_all()
    assert [r["v"] for r in rows] == [8, 6, 4, 2, 0, 9, 7, 5, 3, 1]


def test_limit_is_global(sp, numbers_dir):
    df = sp.read_parquet(str(numbers_dir / "*.parquet")).repartition(3)
    limited = df.limit(10)
    assert limited.count() == 10 and limited.num_partitions == 1
    assert len(sp.read_parquet(str(numbers_dir / "*.parquet")).limit(5).take_all()) == 5


# -- actions ---------------------------------------------------------------------------------


def test_take_take_all_count_compute(sp):
    df = sp.from_items(list(range(20))).repartition(2, by_rows=True)
    assert df.compute() is None
    assert df.count() == 20
    assert df.take(3) == [{"item": 0}, {"item": 1}, {"item": 2}]
    assert [r["item"] for r in df.take_all()] == list(range(20))


def test_to_pandas_and_to_arrow(sp):
    df = sp.from_items([{"s": "x", "v": i} for i in range(5)]).repartition(2, by_rows=True)
    frame = df.to_pandas()
    assert list(frame.index) == [0, 1, 2, 3, 4] and list(frame["v"]) == [0, 1, 2, 3, 4]
    table = df.to_arrow()
    assert table.schema.field("s").type == pa.large_string() and table.num_rows == 5


def test_write_parquet_writes_the_result(sp, tmp_path):
    out = tmp_path / "out"
    sp.from_items([{"v": i} for i in range(30)]).repartition(3, by_rows=True).write_parquet(str(out))
    assert duckdb.sql(f"SELECT count(*), sum(v) FROM '{out}/*.parquet'").fetchone() == (30, 435)


def test_recompute_reruns_a_cached_plan(sp, tmp_path):
    path = tmp_path / "in.parquet"
    duckdb.sql(f"COPY (SELECT 1 AS v) TO '{path}' (FORMAT parquet)")
    df = sp.read_parquet(str(path))
    assert df.take_all() == [{"v": 1}]
    duckdb.sql(f"COPY (SELECT 2 AS v) TO '{path}' (FORMAT parquet)")
    assert df.take_all() == [{"v": 2}], "a changed input is not reused (docs/stages.md)"
    before = os.stat(path)
    duckdb.sql(f"COPY (SELECT 3 AS v) TO '{path}' (FORMAT parquet)")  # the same size ...
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # ... and time: invisible to the key
    assert os.stat(path).st_size == before.st_size
    assert df.take_all() == [{"v": 2}], "a committed stage whose inputs look unchanged is reused"
    assert df.recompute().take_all() == [{"v": 3}]


def test_explain_returns_both_plans_and_prints_nothing(sp, capsys):
    df = sp.from_items([{"k": 1}]).repartition(2, hash_by="k").map("k + 1 AS j")
    text = df.explain()
    assert "== logical plan ==" in text and "== physical plan ==" in text
    assert "items_by_k" in text and "k + 1 AS j" in text
    assert capsys.readouterr().out == ""  # print(df.explain()) prints the plan once


# -- session ---------------------------------------------------------------------------------


def test_init_explicit_arguments_win_over_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("POND_DATA_ROOT", str(tmp_path / "from-env"))
    monkeypatch.setenv("SP_JOB_NAME", "smallpond-name")
    session = pond_core.init(data_root=str(tmp_path / "explicit"))
    assert session.config.data_root == str(tmp_path / "explicit")
    assert session.config.job_name == "smallpond-name", "SP_* names are read too"
    session.shutdown()


def test_session_layout_status_file_and_idempotent_shutdown(tmp_path):
    session = pond_core.init(data_root=str(tmp_path), job_id="job-1")
    session.from_items([1, 2]).count()
    session.shutdown()
    session.shutdown()
    job = tmp_path / "jobs" / "job-1"
    assert {"queue", "output", "log"} <= set(os.listdir(job))
    assert '"status": "success"' in (job / "status.json").read_text()
    assert not (job / "staging").exists(), "temporaries are cleaned on success"


def test_many_partitions_cost_little(local_sp):
    df = local_sp.from_items(list(range(2000))).repartition(200, by_rows=True)
    counts = collections.Counter(r["n"] for r in local_sp.partial_sql("SELECT count(*) AS n FROM {0}", df).take_all())
    assert counts == {10: 200}
