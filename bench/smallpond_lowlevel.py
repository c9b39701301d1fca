"""smallpond's low-level benchmarks on pond: a GraySort-shaped job and the hash-partition benchmark.

Both programs are the ones tests/test_smallpond_lowlevel_programs.py checks (written after
smallpond's benchmarks/gray_sort_benchmark.py, with records generated in Python instead of by
gensort, and benchmarks/hash_partition_benchmark.py), run as a user runs them:
`pond smallpond PROGRAM.py scheduler ARGS` (pond in-process). With `--smallpond-python
PATH` the same programs also run under real smallpond (`PATH SCRIPT.py scheduler ARGS`, its
one-machine mode), side by side; smallpond draws its plan with Graphviz, so `dot` (or a stand-in)
must be on PATH for it. Figures: wall seconds, rows, output files and the peak RSS of
the run's process tree; the script checks each run's data and never asserts on time.

    .venv/bin/python bench/smallpond_lowlevel.py --records 1000000 --rows 2000000
    .venv/bin/python bench/smallpond_lowlevel.py --smallpond-python /tmp/spvenv/bin/python
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

import duckdb
from _rss import TreeSampler

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository: its test programs
from tests.test_smallpond_lowlevel_programs import GRAY_SORT, HASH_PARTITION_BENCHMARK

POND = os.path.join(os.path.dirname(sys.executable), "pond")


@dataclasses.dataclass
class Figures:
    job: str
    engine: str
    seconds: float
    rows: int
    files: int
    peak_rss_mb: float


def run(command: list[str], cwd: str) -> tuple[float, int]:
    """Wall seconds and peak tree RSS of one run, which must succeed."""
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = TreeSampler({"run": child.pid})
    sampler.start()
    out, _ = child.communicate()
    seconds = time.perf_counter() - started
    sampler.stop()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{out[-3000:]}")
    return seconds, sampler.peaks["total"]


def gray_sort(engine: str, runner: list[str], work: str, records: int) -> Figures:
    script = os.path.join(work, "gray_sort.py")
    with open(script, "w") as handle:
        handle.write(textwrap.dedent(GRAY_SORT))
    root = os.path.join(work, f"root-{engine}")
    args = ["scheduler", "--data_root", root, "--job_id", str(uuid.uuid4()), "-T", str(records * 100), "-B", str(50_000 * 100),
            "-n", "4", "-t", "8", "-s", "arrow"]
    seconds, rss = run([*runner, script, *args], work)
    dat = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".dat")]
    total = sum(os.path.getsize(p) for p in dat) // 100
    if total != records:
        raise SystemExit(f"gray sort on {engine}: {total} records sorted, expected {records}")
    return Figures("gray_sort", engine, seconds, total, len(dat), rss / 2**20)


def hash_partition(engine: str, runner: list[str], work: str, source: str, rows: int) -> Figures:
    script = os.path.join(work, "hash_partition.py")
    with open(script, "w") as handle:
        handle.write(textwrap.dedent(HASH_PARTITION_BENCHMARK))
    root = os.path.join(work, f"root-{engine}")
    out = os.path.join(work, f"partitioned-{engine}")
    args = ["scheduler", "--data_root", root, "--job_id", str(uuid.uuid4()), "--output_path", out, "-i", f"{source}/*.parquet",
            "-n", "16", "-c", "key"]
    seconds, rss = run([*runner, script, *args], work)
    # pond writes the result at --output_path, smallpond under it (or its job's output/ folder)
    found = [os.path.join(d, f) for top in (out, root) for d, _, fs in os.walk(top) for f in fs if f.endswith(".parquet")]
    files = [f for f in found if os.path.dirname(f) == out or os.path.dirname(f).endswith("/partitioned_datasets")]
    if any(f.startswith(out + "/") for f in files):  # smallpond also keeps them under its job's root
        files = [f for f in files if f.startswith(out + "/")]
    got = duckdb.sql(f"SELECT count(*) FROM read_parquet({files!r})").fetchone()[0]
    keys_split = duckdb.sql(f"SELECT count(*) FROM (SELECT key FROM read_parquet({files!r}) GROUP BY key HAVING count(DISTINCT partition_keys) > 1)").fetchone()[0]
    if got != rows or keys_split:
        raise SystemExit(f"hash partition on {engine}: {got} rows (expected {rows}), {keys_split} keys in several partitions")
    return Figures("hash_partition", engine, seconds, got, len(files), rss / 2**20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000, help="gray sort: 100-byte records")
    parser.add_argument("--rows", type=int, default=2_000_000, help="hash partition: rows of (key, payload)")
    parser.add_argument("--smallpond-python", help="a Python with real smallpond installed, to run the same programs on it")
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-smallpond-")
    source = os.path.join(work, "input")
    os.makedirs(source)
    for i in range(8):
        lo, hi = i * options.rows // 8, (i + 1) * options.rows // 8
        duckdb.sql(f"COPY (SELECT 'k' || (range % 100003) AS key, md5(range::VARCHAR) AS payload FROM range({lo}, {hi})) "
                   f"TO '{source}/part{i}.parquet' (FORMAT parquet)")
    runners = {"pond": [POND, "smallpond"]}
    if options.smallpond_python:
        runners["smallpond"] = [options.smallpond_python]
    figures = []
    for engine, runner in runners.items():
        figures.append(gray_sort(engine, runner, work, options.records))
        figures.append(hash_partition(engine, runner, work, source, options.rows))
    print(f"{'job':<16}{'engine':<11}{'seconds':>9}{'rows':>11}{'files':>7}{'peak RSS MB':>13}")
    for f in figures:
        print(f"{f.job:<16}{f.engine:<11}{f.seconds:>9.1f}{f.rows:>11,}{f.files:>7}{f.peak_rss_mb:>13.0f}")


if __name__ == "__main__":
    main()
