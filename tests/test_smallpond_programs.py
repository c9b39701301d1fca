"""smallpond's documented programs, run on pond, each checked against plain DuckDB.

Programs equivalent to smallpond's README quick start, its getstarted and API pages, the
DataFrame docstring examples and its DataFrame-based examples (sort_mock_urls_v2.py, fstest.py),
written for this project on small generated data. Scripts run through `pond smallpond SCRIPT.py`
as a user runs them; the rest import `smallpond` through pond's alias. The module prints how
many programs ran and how many matched DuckDB.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pond_core.compat.aliases import install

install()

import smallpond  # noqa: E402  (resolved by the alias just installed)

POND = os.path.join(os.path.dirname(sys.executable), "pond")
TALLY = {"runs": 0, "matches": 0}


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    line = f"smallpond programs on pond: {TALLY['runs']} runs, {TALLY['matches']} match plain DuckDB"
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():  # shown without -s too
        print("\n" + line)


def check(rows: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> None:
    """Count one program run, and a match when its rows equal DuckDB's (as multisets)."""
    TALLY["runs"] += 1
    assert sorted(rows, key=repr) == sorted(expected, key=repr)
    TALLY["matches"] += 1


def duck(sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def written(path: str) -> list[tuple[Any, ...]]:
    """The rows of the Parquet files a program wrote under `path`."""
    return duck(f"SELECT * FROM read_parquet('{path}/**/*.parquet')")


def run_script(folder: str, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = os.path.join(folder, "program.py")
    with open(script, "w") as handle:
        handle.write(textwrap.dedent(text))
    env = {**os.environ, "SP_DATA_ROOT": os.path.join(folder, "sp_root")}
    return subprocess.run([POND, "smallpond", script, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def sp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.chdir(tmp_path)
    session = smallpond.init(data_root=str(tmp_path / "sp_root"))
    yield session
    session.shutdown()


def hosts_dataset(folder: str, files: int = 5, rows: int = 40) -> str:
    """`files` Parquet files of (host, a, b, x, id, bucket)."""
    os.makedirs(folder, exist_ok=True)
    for f in range(files):
        ids = list(range(f * rows, (f + 1) * rows))
        pq.write_table(
            pa.table({
                "host": [f"h{i % 7}.example.com" for i in ids], "a": [i % 11 for i in ids], "b": [i % 5 for i in ids],
                "x": ids, "id": ids, "bucket": [i % 10 for i in ids],
            }),
            os.path.join(folder, f"part{f}.parquet"),
        )
    return os.path.join(folder, "*.parquet")


# -- README: quick start ---------------------------------------------------------------------------

QUICK_START = """
import smallpond

# Initialize session
sp = smallpond.init()

# Load data
df = sp.read_parquet("prices.parquet")

# Process data
df = df.repartition(3, hash_by="ticker")
df = sp.partial_sql("SELECT ticker, min(price), max(price) FROM {0} GROUP BY ticker", df)

# Save results
df.write_parquet("output/")
# Show results
print(df.to_pandas())
"""


def test_readme_quick_start_twice(tmp_path: Any) -> None:
    """README's program, as a script, run twice: the rerun replaces output/ as on smallpond."""
    duck(
        f"COPY (SELECT 'T' || (i % 9) AS ticker, TIMESTAMP '2026-01-01' + to_minutes(i) AS \"when\", (i * 37 % 1000) / 10.0 AS price "
        f"FROM range(3000) t(i)) TO '{tmp_path}/prices.parquet'"
    )
    expected = duck(f"SELECT ticker, min(price), max(price) FROM '{tmp_path}/prices.parquet' GROUP BY ticker")
    for _ in range(2):
        done = run_script(str(tmp_path), QUICK_START)
        assert done.returncode == 0, done.stderr
        check(written(str(tmp_path / "output")), expected)
    assert "T8" in done.stdout and "max(price)" in done.stdout


# -- getstarted.rst and api.rst --------------------------------------------------------------------


@pytest.mark.parametrize("partitioning", [{}, {"by_rows": True}, {"hash_by": "host"}], ids=["files", "rows", "hash"])
def test_getstarted(sp: Any, tmp_path: Any, partitioning: dict[str, Any]) -> None:
    """Load, partition (each of the page's three ways), transform with SQL and Python, save."""
    pattern = hosts_dataset(str(tmp_path / "dataset"))
    df = sp.read_parquet(pattern)
    df = df.repartition(3, **partitioning)
    sql = df.map("a + b as c")
    py = df.map(lambda row: {"c": row["a"] + row["b"]})
    sql.write_parquet(str(tmp_path / "out_sql"))
    py.write_parquet(str(tmp_path / "out_py"))
    expected = duck(f"SELECT a + b AS c FROM '{pattern}'")
    check(written(str(tmp_path / "out_sql")), expected)
    check(written(str(tmp_path / "out_py")), expected)


def test_api_typical_workflow(sp: Any, tmp_path: Any) -> None:
    """api.rst and dataframe.rst: repartition(10) over 5 files (five partitions get none), map, write."""
    pattern = hosts_dataset(str(tmp_path / "dataset"))
    df = sp.read_parquet(pattern)
    df = df.repartition(10)
    df = df.map("x + 1")
    df.write_parquet(str(tmp_path / "output"))
    check(written(str(tmp_path / "output")), duck(f"SELECT x + 1 FROM '{pattern}'"))


# -- DataFrame docstring examples ------------------------------------------------------------------


def test_docstring_repartitions(sp: Any, tmp_path: Any) -> None:
    pattern = hosts_dataset(str(tmp_path / "dataset"))
    df = sp.read_parquet(pattern)
    expected = duck(f"SELECT * FROM '{pattern}'")
    for frame in (df.repartition(10), df.repartition(10, by_rows=True), df.repartition(10, hash_by="host"), df.repartition(10, by="bucket")):
        check([tuple(r.values()) for r in frame.take_all()], expected)
    by_bucket = sp.partial_sql("SELECT DISTINCT bucket, {__data_partition__} AS p FROM {0}", df.repartition(10, by="bucket"))
    check([(r["bucket"], r["p"]) for r in by_bucket.take_all()], duck(f"SELECT DISTINCT bucket, bucket FROM '{pattern}'"))


def test_docstring_partial_sql_join(sp: Any, tmp_path: Any) -> None:
    a_files = hosts_dataset(str(tmp_path / "a"), files=3)
    duck(f"COPY (SELECT id, id * 2 AS y FROM range(0, 200, 3) t(id)) TO '{tmp_path}/b.parquet'")
    a = sp.read_parquet(a_files).repartition(10, hash_by="id")
    b = sp.read_parquet(str(tmp_path / "b.parquet")).repartition(10, hash_by="id")
    c = sp.partial_sql("select a.id, a.host, b.y from {0} a join {1} b on a.id = b.id", a, b)
    got = [tuple(r.values()) for r in c.take_all()]
    check(got, duck(f"SELECT a.id, a.host, b.y FROM '{a_files}' a JOIN '{tmp_path}/b.parquet' b ON a.id = b.id"))


def test_docstring_transformations(sp: Any, tmp_path: Any) -> None:
    """filter, map, flat_map (SQL and Python), map_batches, partial_sort, limit, take."""
    pattern = hosts_dataset(str(tmp_path / "dataset"), files=2, rows=10)
    df = sp.read_parquet(pattern)

    def values(frame: Any) -> list[tuple[Any, ...]]:
        return [tuple(r.values()) for r in frame.take_all()]

    check(values(df.filter("a > 1")), duck(f"SELECT * FROM '{pattern}' WHERE a > 1"))
    check(values(df.filter(lambda r: r["a"] > 1)), duck(f"SELECT * FROM '{pattern}' WHERE a > 1"))
    check(values(df.map("a, b")), duck(f"SELECT a, b FROM '{pattern}'"))
    check(values(df.flat_map("unnest(array[a, b]) as c")), duck(f"SELECT unnest([a, b]) AS c FROM '{pattern}'"))
    check(values(df.flat_map(lambda row: [{"c": row["a"]}, {"c": row["b"]}])), duck(f"SELECT unnest([a, b]) FROM '{pattern}'"))
    counts = df.map_batches(lambda t: pa.table({"n": [t.num_rows]}), batch_size=7)
    check(values(counts), [(7,), (7,), (6,)])
    sorted_rows = df.partial_sort(by=["a", "b desc"]).take_all()
    assert [(r["a"], -r["b"]) for r in sorted_rows] == sorted((r["a"], -r["b"]) for r in sorted_rows)
    check(values(df.partial_sort(by=["a", "b desc"])), duck(f"SELECT * FROM '{pattern}'"))
    check(values(df.random_shuffle()), duck(f"SELECT * FROM '{pattern}'"))
    assert df.limit(3).count() == 3 and len(df.take(3)) == 3


def test_docstring_write_parquet_lazy_and_wait(sp: Any, tmp_path: Any) -> None:
    pattern = hosts_dataset(str(tmp_path / "dataset"))
    df = sp.read_parquet(pattern)
    o1 = df.write_parquet_lazy(str(tmp_path / "output1"))
    o2 = df.map("host, a").write_parquet_lazy(str(tmp_path / "output2"))
    assert not o1.is_computed()
    sp.wait(o1, o2)
    assert o1.is_computed() and o2.is_computed()
    check(written(str(tmp_path / "output1")), duck(f"SELECT * FROM '{pattern}'"))
    check(written(str(tmp_path / "output2")), duck(f"SELECT host, a FROM '{pattern}'"))


# -- examples/ (DataFrame-based) -------------------------------------------------------------------

SORT_MOCK_URLS_V2 = """
import argparse
from typing import List

import smallpond
from smallpond.dataframe import Session


def sort_mock_urls_v2(sp: Session, input_paths: List[str], output_path: str, npartitions: int):
    dataset = sp.read_csv(input_paths, schema={"urlstr": "varchar", "valstr": "varchar"}, delim=r"\\t").repartition(npartitions)
    urls = dataset.map(
        \"\"\"
    split_part(urlstr, '/', 1) as host,
    split_part(urlstr, ' ', 1) as url,
    from_base64(valstr) AS payload
  \"\"\"
    )
    urls = urls.repartition(npartitions, hash_by="host")
    sorted_urls = urls.partial_sort(by=["host"])
    sorted_urls.write_parquet(output_path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("-i", "--input_paths", nargs="+", default=["tests/data/mock_urls/*.tsv"])
    parser.add_argument("-o", "--output_path", type=str, default="sort_mock_urls")
    parser.add_argument("-n", "--npartitions", type=int, default=10)
    args = parser.parse_args()

    sp = smallpond.init()
    sort_mock_urls_v2(sp, **vars(args))
"""


def test_example_sort_mock_urls_v2(tmp_path: Any) -> None:
    """examples/sort_mock_urls_v2.py, as a script with its own arguments: more partitions (12)
    than input files (10), hash by host, sort within partitions."""
    from tests.support.mock_urls import write_mock_urls

    folder = write_mock_urls(str(tmp_path))
    done = run_script(str(tmp_path), SORT_MOCK_URLS_V2, "-o", "sorted", "-n", "12")
    assert done.returncode == 0, done.stderr
    expected = duck(
        "SELECT split_part(urlstr, '/', 1), split_part(urlstr, ' ', 1), from_base64(valstr) "
        f"FROM read_csv('{folder}/*.tsv', columns={{'urlstr': 'varchar', 'valstr': 'varchar'}}, delim='\\t', header=false)"
    )
    check(written(str(tmp_path / "sorted")), expected)
    for path in glob.glob(str(tmp_path / "sorted" / "*.parquet")):
        hosts = pq.read_table(path, columns=["host"]).column("host").to_pylist()
        assert hosts == sorted(hosts), f"{path} is sorted by host"


FSTEST = """
import argparse, os, time
import numpy as np
import smallpond
from smallpond.dataframe import Session


def generate_data(offset, length):
    return np.arange(offset // 4, (offset + length + 3) // 4).astype(np.uint32).tobytes()[offset % 4 : offset % 4 + length]


def fswrite(path, size, blocksize):
    t0 = time.time()
    with open(path, "wb") as f:
        for start in range(0, size, blocksize):
            f.write(generate_data(start, min(blocksize, size - start)))
    return {"path": path, "size": size, "elapsed(s)": time.time() - t0}


def fsread(path, blocksize):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        for start in range(0, size, blocksize):
            if f.read(blocksize) != generate_data(start, min(blocksize, size - start)):
                raise ValueError(f"Data mismatch in {path} at {start}")
    return {"path": path, "size": size}


def fstest(sp: Session, output_path, size, npartitions, blocksize=4096):
    os.makedirs(output_path, exist_ok=True)
    df = sp.from_items([{"path": os.path.join(output_path, f"{i}")} for i in range(npartitions)])
    df = df.repartition(npartitions, by_rows=True)
    print(df.map(lambda x: fswrite(x["path"], size, blocksize)).to_pandas())
    df = sp.from_items([{"path": os.path.join(output_path, p)} for p in sorted(os.listdir(output_path))])
    df = df.repartition(npartitions, by_rows=True)
    stats = df.map(lambda x: fsread(x["path"], blocksize)).to_pandas()
    print("read", len(stats), int(stats["size"].sum()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("-o", "--output_path", type=str)
    parser.add_argument("-j", "--npartitions", type=int, default=10)
    parser.add_argument("-s", "--size", type=int)
    args = parser.parse_args()
    sp = smallpond.init()
    fstest(sp, **vars(args))
"""


def test_example_fstest(tmp_path: Any) -> None:
    """examples/fstest.py's pattern: from_items of paths, repartition by rows, a Python map that
    writes files, then one that reads and verifies them."""
    done = run_script(str(tmp_path), FSTEST, "-o", "fstest", "-j", "4", "-s", "65536")
    assert done.returncode == 0, done.stderr
    assert "read 4 262144" in done.stdout
    sizes = duck(f"SELECT size FROM read_blob('{tmp_path}/fstest/*')")
    check(sizes, [(65536,)] * 4)
