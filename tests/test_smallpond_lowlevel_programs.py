"""smallpond's low-level examples and benchmarks, run through `pond smallpond SCRIPT.py scheduler`.

Each program below is written to do what a script of smallpond's examples/ or benchmarks/ does
(same imports, nodes, options and Driver flags; DeepSeek's own scripts are not fetched at run
time), on small inputs generated here, and each test checks the data smallpond would produce:
the same rows, sorted where the script sorts, every key in one partition where it
hash-partitions. gray_sort_benchmark shells out to gensort/valsort; its program here generates
the same 100-byte records in Python and validates the sort the way valsort does.
"""

from __future__ import annotations

import base64
import os
import random
import string
import subprocess
import sys
import textwrap
from typing import Any

import duckdb
import pytest

POND = os.path.join(os.path.dirname(sys.executable), "pond")
NHOSTS = 23


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> str:
    """4 TSV files (url<TAB>base64) and 4 Parquet files (host, url) of 50 rows each, over 23
    hosts, so hash partitions hold several keys and some keys repeat across files."""
    folder = str(tmp_path_factory.mktemp("mock_urls"))
    rng = random.Random(7)
    hosts = [f"com.{rng.randint(10000, 999999)}.{rng.randint(100, 9999)}" for _ in range(NHOSTS)]

    def word(n: int) -> str:
        return "".join(rng.choices(string.ascii_letters + string.digits, k=n))

    for i in range(4):
        with open(os.path.join(folder, f"urls{i}.tsv"), "w") as handle:
            for _ in range(50):
                handle.write(f"{rng.choice(hosts)}/{word(12)}.html\t{base64.b64encode(word(60).encode()).decode()}\n")
        rows = ", ".join(f"('{h}', '{h}/{word(12)}.html')" for h in (rng.choice(hosts) for _ in range(50)))
        duckdb.sql(f"COPY (SELECT * FROM (VALUES {rows}) t(host, url)) TO '{folder}/urls{i}.parquet' (FORMAT parquet)")
    return folder


def run(tmp_path: Any, program: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`pond smallpond program.py scheduler --data_root ... --job_id ... ARGS`, which must succeed."""
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(program))
    flags = ["scheduler", "--data_root", str(tmp_path / "root"), "--job_id", "job1", *args]
    done = subprocess.run([POND, "smallpond", str(script), *flags], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def rows(sql: str) -> list[tuple[Any, ...]]:
    return duckdb.sql(sql).fetchall()


def output(path: Any) -> str:
    """The Parquet files a run wrote at `path`, with each file's name (it holds the partition)."""
    return f"read_parquet('{path}/*.parquet', filename=true, union_by_name=true)"


def partition_of(filename: str) -> int:
    """A sink file is named part-<write id>-<partition>-<n>.parquet."""
    return int(os.path.basename(filename).split("-")[-2])


def assert_keys_in_one_partition(path: Any, key: str, partition_column: str) -> None:
    spread = rows(f"SELECT {key} FROM {output(path)} GROUP BY {key} HAVING count(DISTINCT {partition_column}) > 1")
    assert spread == []
    for filename, low, high in rows(f"SELECT filename, min({partition_column}), max({partition_column}) FROM {output(path)} GROUP BY 1"):
        assert low == high == partition_of(filename)  # the column is the partition the row is in


def assert_sorted_per_partition(path: Any, key: str) -> None:
    for (filename,) in rows(f"SELECT DISTINCT filename FROM {output(path)}"):
        values = [r[0] for r in rows(f"SELECT {key} FROM read_parquet('{filename}')")]
        assert values == sorted(values), filename


SHUFFLE_MOCK_URLS = """
from smallpond.common import GB
from smallpond.execution.driver import Driver
from smallpond.logical.dataset import ParquetDataSet
from smallpond.logical.node import Context, DataSetPartitionNode, DataSourceNode, HashPartitionNode, LogicalPlan, SqlEngineNode


def shuffle_mock_urls(input_paths, npartitions: int = 10, sort_rand_keys=True, engine_type="duckdb") -> LogicalPlan:
    ctx = Context()
    data_files = DataSourceNode(ctx, ParquetDataSet(input_paths))
    data_partitions = DataSetPartitionNode(ctx, (data_files,), npartitions=npartitions)
    urls_partitions = HashPartitionNode(
        ctx, (data_partitions,), npartitions=npartitions, hash_columns=None, random_shuffle=True,
        engine_type=engine_type, output_name="urls_partitions", cpu_limit=1, memory_limit=20 * GB,
    )
    if sort_rand_keys:
        query = r"select *, random() as partition_key from {0} order by partition_key"
    else:
        query = r"select * from {0} using sample 100% (reservoir, {rand_seed})"
    shuffled_urls = SqlEngineNode(ctx, (urls_partitions,), query, output_name="shuffled_urls", cpu_limit=1, memory_limit=40 * GB)
    return LogicalPlan(ctx, shuffled_urls)


def main():
    driver = Driver()
    driver.add_argument("-i", "--input_paths", nargs="+")
    driver.add_argument("-n", "--npartitions", type=int, default=500)
    driver.add_argument("-s", "--sort_rand_keys", action="store_true")
    driver.add_argument("-e", "--engine_type", default="duckdb", choices=("duckdb", "arrow"))
    plan = shuffle_mock_urls(**driver.get_arguments())
    driver.run(plan)


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("sort_flag", [["-s"], []], ids=["sort_rand_keys", "reservoir"])
def test_shuffle_mock_urls(urls: str, tmp_path: Any, sort_flag: list[str]) -> None:
    run(tmp_path, SHUFFLE_MOCK_URLS, "--output_path", str(tmp_path / "out"), "-i", f"{urls}/*.parquet", "-n", "3", *sort_flag)
    assert rows(f"SELECT host, url FROM {output(tmp_path / 'out')} ORDER BY ALL") == rows(f"SELECT * FROM '{urls}/*.parquet' ORDER BY ALL")
    assert {r[0] for r in rows(f"SELECT DISTINCT __data_partition__ FROM {output(tmp_path / 'out')}")} <= {0, 1, 2}
    assert_keys_in_one_partition(tmp_path / "out", "url", "__data_partition__")
    if sort_flag:
        assert_sorted_per_partition(tmp_path / "out", "partition_key")


SORT_MOCK_URLS = """
import logging
import os.path
from typing import List, Optional, OrderedDict

import pyarrow as arrow

from smallpond.execution.driver import Driver
from smallpond.execution.task import RuntimeContext
from smallpond.logical.dataset import CsvDataSet
from smallpond.logical.node import (
    ArrowComputeNode, Context, DataSetPartitionNode, DataSinkNode, DataSourceNode, HashPartitionNode, LogicalPlan, SqlEngineNode,
)


class SortUrlsNode(ArrowComputeNode):
    def process(self, runtime_ctx: RuntimeContext, input_tables: List[arrow.Table]) -> arrow.Table:
        logging.info(f"sorting urls by 'host', table shape: {input_tables[0].shape}")
        return input_tables[0].sort_by("host")


def sort_mock_urls(input_paths, npartitions: int, engine_type="duckdb", external_output_path: Optional[str] = None) -> LogicalPlan:
    ctx = Context()
    dataset = CsvDataSet(input_paths, schema=OrderedDict([("urlstr", "varchar"), ("valstr", "varchar")]), delim=r"\\t")
    data_files = DataSourceNode(ctx, dataset)
    data_partitions = DataSetPartitionNode(ctx, (data_files,), npartitions=npartitions)
    imported_urls = SqlEngineNode(
        ctx, (data_partitions,),
        r"select split_part(urlstr, '/', 1) as host, split_part(urlstr, ' ', 1) as url, from_base64(valstr) AS payload from {0}",
        output_name="imported_urls", output_path=external_output_path,
    )
    urls_partitions = HashPartitionNode(
        ctx, (imported_urls,), npartitions=npartitions, hash_columns=["host"], engine_type=engine_type,
        output_name="urls_partitions", output_path=external_output_path,
    )
    if engine_type == "duckdb":
        sorted_urls = SqlEngineNode(ctx, (urls_partitions,), r"select * from {0} order by host", output_name="sorted_urls")
    else:
        sorted_urls = SortUrlsNode(ctx, (urls_partitions,), output_name="sorted_urls", output_path=external_output_path)
    final_result = DataSetPartitionNode(ctx, (sorted_urls,), npartitions=1)
    if external_output_path:
        final_result = DataSinkNode(ctx, (final_result,), output_path=os.path.join(external_output_path, "data_sink"))
    return LogicalPlan(ctx, final_result)


def main():
    driver = Driver()
    driver.add_argument("-i", "--input_paths", nargs="+", default=["tests/data/mock_urls/*.tsv"])
    driver.add_argument("-n", "--npartitions", type=int, default=10)
    driver.add_argument("-e", "--engine_type", default="duckdb")
    driver.add_argument("-x", "--external_output_path", default=None)
    plan = sort_mock_urls(**driver.get_arguments())
    driver.run(plan)


if __name__ == "__main__":
    main()
"""


def expected_urls(urls: str) -> list[tuple[Any, ...]]:
    return rows(
        "SELECT split_part(urlstr, '/', 1), split_part(urlstr, ' ', 1), from_base64(valstr) "
        f"FROM read_csv('{urls}/*.tsv', delim='\\t', header=false, columns={{'urlstr': 'VARCHAR', 'valstr': 'VARCHAR'}}) ORDER BY ALL"
    )


@pytest.mark.parametrize("engine", ["duckdb", "arrow"])
def test_sort_mock_urls(urls: str, tmp_path: Any, engine: str) -> None:
    """Hash by host into 4 partitions (some hold no host's rows with -n 8), sort each, gather:
    the arrow engine runs the user's ArrowComputeNode, and a DataSinkNode publishes the result."""
    sink = tmp_path / "external"
    run(tmp_path, SORT_MOCK_URLS, "-i", f"{urls}/*.tsv", "-n", "4", "-e", engine, "-x", str(sink))
    out = sink / "data_sink"
    assert rows(f"SELECT host, url, payload FROM {output(out)} ORDER BY ALL") == expected_urls(urls)
    assert_sorted_per_partition(out, "host")  # one file per sorted partition, gathered as they were
    spread = rows(f"SELECT host FROM {output(out)} GROUP BY host HAVING count(DISTINCT filename) > 1")
    assert spread == []  # each host was in one hash partition, so it is in one file


SHUFFLE_DATA = """
from smallpond.contrib.copy_table import StreamCopy
from smallpond.execution.driver import Driver
from smallpond.logical.dataset import ParquetDataSet
from smallpond.logical.node import Context, DataSetPartitionNode, DataSourceNode, HashPartitionNode, LogicalPlan, SqlEngineNode


def shuffle_data(input_paths, num_out_data_partitions: int = 0, num_data_partitions: int = 10, num_hash_partitions: int = 10,
                 engine_type="duckdb", skip_hash_partition=False) -> LogicalPlan:
    ctx = Context()
    data_files = DataSourceNode(ctx, ParquetDataSet(input_paths, union_by_name=True))
    data_partitions = DataSetPartitionNode(
        ctx, (data_files,), npartitions=num_data_partitions, partition_by_rows=True, random_shuffle=skip_hash_partition,
    )
    if skip_hash_partition:
        urls_partitions = data_partitions
    else:
        urls_partitions = HashPartitionNode(
            ctx, (data_partitions,), npartitions=num_hash_partitions, hash_columns=None, random_shuffle=True, engine_type=engine_type,
        )
    shuffled_urls = SqlEngineNode(
        ctx, (urls_partitions,), r"select *, cast(random() * 2147483647 as integer) as sort_key from {0} order by sort_key", cpu_limit=16,
    )
    repartitioned = DataSetPartitionNode(ctx, (shuffled_urls,), npartitions=num_out_data_partitions, partition_by_rows=True)
    shuffled_urls = StreamCopy(ctx, (repartitioned,), output_name="data_copy", cpu_limit=1)
    return LogicalPlan(ctx, shuffled_urls)


def main():
    driver = Driver()
    driver.add_argument("-i", "--input_paths", nargs="+")
    driver.add_argument("-nd", "--num_data_partitions", type=int, default=1024)
    driver.add_argument("-nh", "--num_hash_partitions", type=int, default=3840)
    driver.add_argument("-no", "--num_out_data_partitions", type=int, default=1920)
    driver.add_argument("-e", "--engine_type", default="duckdb", choices=("duckdb", "arrow"))
    driver.add_argument("-x", "--skip_hash_partition", action="store_true")
    plan = shuffle_data(**driver.get_arguments())
    driver.run(plan)


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("skip", [[], ["-x"]], ids=["hash", "skip_hash_partition"])
def test_shuffle_data(urls: str, tmp_path: Any, skip: list[str]) -> None:
    out = tmp_path / "out"
    paths = [f"{urls}/urls{i}.parquet" for i in range(4)]
    run(tmp_path, SHUFFLE_DATA, "--output_path", str(out), "-i", *paths, "-nd", "3", "-nh", "4", "-no", "2", *skip)
    assert rows(f"SELECT host, url FROM {output(out)} ORDER BY ALL") == rows(f"SELECT * FROM '{urls}/*.parquet' ORDER BY ALL")
    assert {partition_of(r[0]) for r in rows(f"SELECT DISTINCT filename FROM {output(out)}")} == {0, 1}


HASH_PARTITION_BENCHMARK = """
from smallpond.common import GB
from smallpond.contrib.log_dataset import LogDataSet
from smallpond.execution.driver import Driver
from smallpond.logical.dataset import ParquetDataSet
from smallpond.logical.node import ConsolidateNode, Context, DataSourceNode, HashPartitionNode, LogicalPlan, SqlEngineNode


def hash_partition_benchmark(input_paths, npartitions, hash_columns, engine_type="duckdb", use_parquet_writer=False,
                             hive_partitioning=False, cpu_limit=None, memory_limit=None, partition_stats=True, **kwargs) -> LogicalPlan:
    ctx = Context()
    data_files = DataSourceNode(ctx, ParquetDataSet(input_paths))
    partitioned_datasets = HashPartitionNode(
        ctx, (data_files,), npartitions=npartitions, hash_columns=hash_columns, data_partition_column="partition_keys",
        engine_type=engine_type, use_parquet_writer=use_parquet_writer, hive_partitioning=hive_partitioning,
        output_name="partitioned_datasets", cpu_limit=cpu_limit, memory_limit=memory_limit,
    )
    if partition_stats:
        partition_stats = SqlEngineNode(
            ctx, (partitioned_datasets,),
            f\"\"\"select partition_keys, count(*) as row_cnt, count( distinct ( {', '.join(hash_columns)} ) ) as uniq_key_cnt from {{0}}
            group by partition_keys\"\"\",
            output_name="partition_stats", cpu_limit=1, memory_limit=10 * GB,
        )
        sorted_stats = SqlEngineNode(ctx, (ConsolidateNode(ctx, partition_stats, []),), r"select * from {0} order by row_cnt desc")
        plan = LogicalPlan(ctx, LogDataSet(ctx, (sorted_stats,), num_rows=npartitions))
    else:
        plan = LogicalPlan(ctx, partitioned_datasets)
    return plan


def main():
    driver = Driver()
    driver.add_argument("-i", "--input_paths", nargs="+", required=True)
    driver.add_argument("-n", "--npartitions", type=int, default=None)
    driver.add_argument("-c", "--hash_columns", nargs="+", required=True)
    driver.add_argument("-e", "--engine_type", default="duckdb", choices=("duckdb", "arrow"))
    driver.add_argument("-S", "--partition_stats", action="store_true")
    driver.add_argument("-W", "--use_parquet_writer", action="store_true")
    driver.add_argument("-H", "--hive_partitioning", action="store_true")
    driver.add_argument("-C", "--cpu_limit", type=int, default=HashPartitionNode.default_cpu_limit)
    driver.add_argument("-M", "--memory_limit", type=int, default=HashPartitionNode.default_memory_limit)
    driver.add_argument("-NC", "--cpus_per_node", type=int, default=192)
    driver.add_argument("-NM", "--memory_per_node", type=int, default=2000 * GB)
    user_args, driver_args = driver.parse_arguments()
    total_num_cpus = driver_args.num_executors * user_args.cpus_per_node
    user_args.npartitions = user_args.npartitions or total_num_cpus
    plan = hash_partition_benchmark(**vars(user_args))
    driver.run(plan)


if __name__ == "__main__":
    main()
"""


def test_hash_partition_benchmark(urls: str, tmp_path: Any) -> None:
    out = tmp_path / "out"
    run(tmp_path, HASH_PARTITION_BENCHMARK, "--output_path", str(out), "-i", f"{urls}/*.parquet", "-n", "4", "-c", "host", "-H", "-W")
    assert rows(f"SELECT host, url FROM {output(out)} ORDER BY ALL") == rows(f"SELECT * FROM '{urls}/*.parquet' ORDER BY ALL")
    assert_keys_in_one_partition(out, "host", "partition_keys")
    # smallpond's partition key: hash(concat_ws('##', columns)) % n, so rows land where smallpond puts them
    placed = rows(f"SELECT count(*) FROM {output(out)} WHERE partition_keys != hash(concat_ws('##', host)) % 4")
    assert placed == [(0,)]


def test_hash_partition_benchmark_stats(urls: str, tmp_path: Any) -> None:
    """-S: per-partition stats, consolidated, sorted and logged by contrib's LogDataSet."""
    done = run(tmp_path, HASH_PARTITION_BENCHMARK, "-i", f"{urls}/*.parquet", "-n", "4", "-c", "host", "-S")
    stats = rows(
        f"SELECT hash(concat_ws('##', host)) % 4 AS k, count(*), count(DISTINCT host) FROM '{urls}/*.parquet' GROUP BY k ORDER BY 2 DESC"
    )
    logged = (done.stderr + done.stdout).splitlines()
    header = next(i for i, line in enumerate(logged) if line.split() == ["partition_keys", "row_cnt", "uniq_key_cnt"])
    table = [tuple(int(v) for v in line.split()[1:]) for line in logged[header + 1 : header + 1 + len(stats)]]
    assert sorted(table) == sorted(tuple(r) for r in stats)  # every partition's stats
    assert [r[1] for r in table] == sorted((r[1] for r in table), reverse=True)  # largest first, as the query orders


FILE_IO_BENCHMARK = """
from smallpond.common import DEFAULT_BATCH_SIZE, DEFAULT_ROW_GROUP_SIZE, GB
from smallpond.contrib.copy_table import CopyArrowTable, StreamCopy
from smallpond.execution.driver import Driver
from smallpond.logical.dataset import ParquetDataSet
from smallpond.logical.node import Context, DataSetPartitionNode, DataSourceNode, LogicalPlan, SqlEngineNode


def file_io_benchmark(input_paths, npartitions, io_engine="duckdb", batch_size=DEFAULT_BATCH_SIZE,
                      row_group_size=DEFAULT_ROW_GROUP_SIZE, output_name="data", **kwargs) -> LogicalPlan:
    ctx = Context()
    data_files = DataSourceNode(ctx, ParquetDataSet(input_paths))
    data_partitions = DataSetPartitionNode(ctx, (data_files,), npartitions=npartitions)
    if io_engine == "duckdb":
        data_copy = SqlEngineNode(ctx, (data_partitions,), r"select * from {0}", parquet_row_group_size=row_group_size,
                                  per_thread_output=False, output_name=output_name, cpu_limit=1, memory_limit=10 * GB)
    elif io_engine == "arrow":
        data_copy = CopyArrowTable(ctx, (data_partitions,), parquet_row_group_size=row_group_size, output_name=output_name,
                                   cpu_limit=1, memory_limit=10 * GB)
    elif io_engine == "stream":
        data_copy = StreamCopy(ctx, (data_partitions,), streaming_batch_size=batch_size, parquet_row_group_size=row_group_size,
                               output_name=output_name, cpu_limit=1, memory_limit=10 * GB)
    return LogicalPlan(ctx, data_copy)


def main():
    driver = Driver()
    driver.add_argument("-i", "--input_paths", nargs="+")
    driver.add_argument("-n", "--npartitions", type=int, default=None)
    driver.add_argument("-e", "--io_engine", default="duckdb", choices=("duckdb", "arrow", "stream"))
    driver.add_argument("-b", "--batch_size", type=int, default=1024 * 1024)
    driver.add_argument("-s", "--row_group_size", type=int, default=1024 * 1024)
    driver.add_argument("-o", "--output_name", default="data")
    driver.add_argument("-NC", "--cpus_per_node", type=int, default=128)
    user_args, driver_args = driver.parse_arguments()
    total_num_cpus = driver_args.num_executors * user_args.cpus_per_node
    user_args.npartitions = user_args.npartitions or total_num_cpus
    plan = file_io_benchmark(**driver.get_arguments())
    driver.run(plan)


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("engine", ["duckdb", "arrow", "stream"])
def test_file_io_benchmark(urls: str, tmp_path: Any, engine: str) -> None:
    out = tmp_path / "out"
    done = run(tmp_path, FILE_IO_BENCHMARK, "--output_path", str(out), "-i", f"{urls}/*.parquet", "-n", "3", "-e", engine, "-b", "16")
    assert rows(f"SELECT host, url FROM {output(out)} ORDER BY ALL") == rows(f"SELECT * FROM '{urls}/*.parquet' ORDER BY ALL")
    if engine == "stream":  # batches of 16 rows reach the user's stream node
        assert "copying batch: 16 rows" in done.stderr


URLS_SORT_BENCHMARK = """
from typing import List, OrderedDict

from smallpond.common import GB
from smallpond.dataframe import Session
from smallpond.execution.driver import Driver
from smallpond.logical.dataset import CsvDataSet
from smallpond.logical.node import Context, DataSetPartitionNode, DataSourceNode, HashPartitionNode, LogicalPlan, SqlEngineNode


def urls_sort_benchmark(input_paths: List[str], num_data_partitions: int, num_hash_partitions: int, engine_type="duckdb",
                        sort_cpu_limit=8, sort_memory_limit=None) -> LogicalPlan:
    ctx = Context()
    dataset = CsvDataSet(input_paths, schema=OrderedDict([("urlstr", "varchar"), ("valstr", "varchar")]), delim=r"\\t")
    data_files = DataSourceNode(ctx, dataset)
    data_partitions = DataSetPartitionNode(ctx, (data_files,), npartitions=num_data_partitions)
    imported_urls = SqlEngineNode(ctx, (data_partitions,), r"select urlstr, valstr from {0}", output_name="imported_urls",
                                  parquet_row_group_size=1024 * 1024, cpu_limit=1, memory_limit=16 * GB)
    urls_partitions = HashPartitionNode(ctx, (imported_urls,), npartitions=num_hash_partitions, hash_columns=["urlstr"],
                                        engine_type=engine_type, parquet_row_group_size=1024 * 1024, cpu_limit=1, memory_limit=16 * GB)
    sorted_urls = SqlEngineNode(ctx, (urls_partitions,), r"select * from {0} order by urlstr", output_name="sorted_urls",
                                parquet_row_group_size=1024 * 1024, cpu_limit=sort_cpu_limit, memory_limit=sort_memory_limit)
    return LogicalPlan(ctx, sorted_urls)


def main():
    driver = Driver()
    driver.add_argument("-i", "--input_paths", nargs="+")
    driver.add_argument("-n", "--num_data_partitions", type=int, default=None)
    driver.add_argument("-m", "--num_hash_partitions", type=int, default=None)
    driver.add_argument("-e", "--engine_type", default="duckdb")
    driver.add_argument("-TC", "--sort_cpu_limit", type=int, default=8)
    driver.add_argument("-TM", "--sort_memory_limit", type=int, default=None)
    user_args, driver_args = driver.parse_arguments()
    num_nodes = driver_args.num_executors
    user_args.num_data_partitions = user_args.num_data_partitions or num_nodes * 120 * 2
    user_args.num_hash_partitions = user_args.num_hash_partitions or num_nodes * 120
    plan = urls_sort_benchmark(**vars(user_args))
    driver.run(plan)


if __name__ == "__main__":
    main()
"""


def test_urls_sort_benchmark(urls: str, tmp_path: Any) -> None:
    out = tmp_path / "out"
    run(tmp_path, URLS_SORT_BENCHMARK, "--output_path", str(out), "-i", f"{urls}/*.tsv", "-n", "3", "-m", "4")
    source = f"read_csv('{urls}/*.tsv', delim='\\t', header=false, columns={{'urlstr': 'VARCHAR', 'valstr': 'VARCHAR'}})"
    assert rows(f"SELECT urlstr, valstr FROM {output(out)} ORDER BY ALL") == rows(f"SELECT * FROM {source} ORDER BY ALL")
    assert_keys_in_one_partition(out, "urlstr", "__data_partition__")
    assert_sorted_per_partition(out, "urlstr")


GRAY_SORT = """
import functools
import os.path
from pathlib import PurePath
from typing import Iterable, List

import duckdb
import pyarrow as arrow
import pyarrow.compute as pc

from smallpond.common import MB, next_power_of_two, pytest_running
from smallpond.execution.driver import Driver
from smallpond.execution.task import ArrowStreamTask, PythonScriptTask, RuntimeContext, StreamOutput
from smallpond.logical.dataset import ArrowTableDataSet, DataSet
from smallpond.logical.node import (
    ArrowStreamNode, Context, DataSetPartitionNode, DataSourceNode, LogicalPlan, ProjectionNode, PythonScriptNode, ShuffleNode,
)


def gensort(offset, count, record_nbytes):
    # what `gensort -b{offset} {count}` writes: 100-byte records, a 10-byte random key first
    import random
    rng = random.Random(offset)
    return b"".join(rng.randbytes(10) + (b"%090d" % (offset + i)) for i in range(count))


def generate_records(runtime_ctx: RuntimeContext, input_readers: List[arrow.RecordBatchReader], record_nbytes=100,
                     key_nbytes=10, bucket_nbits=12, gensort_batch_nbytes=500 * MB) -> Iterable[arrow.Table]:
    runtime_task: ArrowStreamTask = runtime_ctx.task
    batch_size = gensort_batch_nbytes // record_nbytes
    schema = arrow.schema([arrow.field("buckets", arrow.uint16()), arrow.field("keys", arrow.binary()), arrow.field("records", arrow.binary())])
    for batch_idx, batch in enumerate(input_readers[0]):
        for begin_at, num_records in zip(*batch.columns):
            begin_at, num_records = begin_at.as_py(), num_records.as_py()
            for offset in range(begin_at, begin_at + num_records, batch_size):
                record_count = min(batch_size, begin_at + num_records - offset)
                buffer = arrow.py_buffer(gensort(offset, record_count, record_nbytes))
                runtime_task.add_elapsed_time("generate records (secs)")
                records = arrow.Array.from_buffers(arrow.binary(record_nbytes), record_count, [None, buffer])
                keys = pc.binary_slice(records, 0, key_nbytes)
                binary_prefix = pc.binary_slice(records, 0, 2).cast(arrow.binary())
                reversed_prefix = pc.binary_reverse(binary_prefix).cast(arrow.binary(2))
                uint16_prefix = reversed_prefix.view(arrow.uint16())
                buckets = pc.shift_right(uint16_prefix, 16 - bucket_nbits)
                yield arrow.Table.from_arrays([buckets, keys, records], schema=schema)
        yield StreamOutput(schema.empty_table(), batch_indices=[batch_idx], force_checkpoint=pytest_running())


def sort_records(runtime_ctx: RuntimeContext, input_datasets: List[DataSet], output_path: str, sort_engine="arrow",
                 write_io_nbytes=500 * MB) -> bool:
    runtime_task: PythonScriptTask = runtime_ctx.task
    data_file_path = os.path.join(runtime_task.runtime_output_abspath, f"{runtime_task.output_filename}.dat")
    if sort_engine == "arrow":
        input_table = input_datasets[0].to_arrow_table(runtime_task.cpu_limit)
        runtime_task.perf_metrics["num input rows"] += input_table.num_rows
        record_arrays = input_table.sort_by("keys").column("records").chunks
    else:
        with duckdb.connect(database=":memory:", config={"allow_unsigned_extensions": "true"}) as conn:
            runtime_task.prepare_connection(conn)
            input_views = runtime_task.create_input_views(conn, input_datasets)
            sorted_table = conn.sql("select records from {0} order by keys".format(*input_views)).to_arrow_table()
            record_arrays = sorted_table.column("records").chunks
    with open(data_file_path, "wb") as fout:
        for record_array in record_arrays:
            validity_bitmap, offsets, values = record_array.buffers()
            buffer_mem = memoryview(values)
            total = sum(fout.write(buffer_mem[offset: offset + write_io_nbytes]) for offset in range(0, len(buffer_mem), write_io_nbytes))
            assert total == len(buffer_mem)
    return True


def valsort(path):
    # what `valsort -o` checks and summarises: records in key order; first key, last key, count
    data = open(path, "rb").read()
    keys = [data[i:i + 10] for i in range(0, len(data), 100)]
    assert all(a <= b for a, b in zip(keys, keys[1:])), f"{path} is not sorted"
    return (keys[0] + keys[-1] if keys else b"") + len(keys).to_bytes(8, "little")


def validate_records(runtime_ctx: RuntimeContext, input_datasets: List[DataSet], output_path: str) -> bool:
    for data_path in input_datasets[0].resolved_paths:
        summary_path = os.path.join(output_path, PurePath(data_path).with_suffix(".sum").name)
        open(summary_path, "wb").write(valsort(data_path))
    return True


def validate_summary(runtime_ctx: RuntimeContext, input_datasets: List[DataSet], output_path: str) -> bool:
    # what `valsort -s` checks: the partitions, in order, are in key order too
    last, total = b"", 0
    for path in input_datasets[0].resolved_paths:
        summary = open(path, "rb").read()
        total += int.from_bytes(summary[-8:], "little")
        if len(summary) > 8:
            assert last <= summary[:10], f"{path} starts before the partition before it ends"
            last = summary[10:20]
    open(os.path.join(output_path, "total.txt"), "w").write(str(total))
    return True


def generate_random_records(ctx, record_nbytes, key_nbytes, total_data_nbytes, gensort_batch_nbytes, num_data_partitions,
                            num_sort_partitions):
    num_record_ranges = num_data_partitions * 10
    total_num_records = total_data_nbytes // record_nbytes
    record_range_size = (total_num_records + num_record_ranges - 1) // num_record_ranges
    range_begin_at = [pos for pos in range(0, total_num_records, record_range_size)]
    range_num_records = [min(total_num_records, record_range_size * (i + 1)) - begin_at for i, begin_at in enumerate(range_begin_at)]
    record_range = DataSourceNode(
        ctx, ArrowTableDataSet(arrow.Table.from_arrays([range_begin_at, range_num_records], names=["begin_at", "num_records"])),
    )
    record_range_partitions = DataSetPartitionNode(ctx, (record_range,), npartitions=num_data_partitions, partition_by_rows=True)
    return ArrowStreamNode(
        ctx, (record_range_partitions,),
        process_func=functools.partial(generate_records, record_nbytes=record_nbytes, key_nbytes=key_nbytes,
                                       bucket_nbits=num_sort_partitions.bit_length() - 1, gensort_batch_nbytes=gensort_batch_nbytes),
        background_io_thread=True, streaming_batch_size=10, parquet_row_group_size=1024 * 1024, output_name="random_records", cpu_limit=2,
    )


def gray_sort_benchmark(record_nbytes, key_nbytes, total_data_nbytes, gensort_batch_nbytes, num_data_partitions, num_sort_partitions,
                        sort_engine="arrow", **kwargs) -> LogicalPlan:
    ctx = Context()
    num_sort_partitions = next_power_of_two(num_sort_partitions)
    random_records = generate_random_records(ctx, record_nbytes, key_nbytes, total_data_nbytes, gensort_batch_nbytes,
                                             num_data_partitions, num_sort_partitions)
    partitioned_records = ShuffleNode(ctx, (random_records,), npartitions=num_sort_partitions, data_partition_column="buckets",
                                      engine_type="duckdb", parquet_row_group_size=10 * 1024 * 1024, cpu_limit=2)
    sorted_records = PythonScriptNode(
        ctx, (ProjectionNode(ctx, partitioned_records, ["keys", "records"]),),
        process_func=functools.partial(sort_records, sort_engine=sort_engine), output_name="sorted_records", cpu_limit=2,
    )
    partitioned_summaries = PythonScriptNode(ctx, (sorted_records,), process_func=validate_records, output_name="partitioned_summaries")
    merged_summaries = DataSetPartitionNode(ctx, (partitioned_summaries,), npartitions=1)
    final_check = PythonScriptNode(ctx, (merged_summaries,), process_func=validate_summary, output_name="final_check")
    return LogicalPlan(ctx, final_check)


def main():
    driver = Driver()
    driver.add_argument("-R", "--record_nbytes", type=int, default=100)
    driver.add_argument("-K", "--key_nbytes", type=int, default=10)
    driver.add_argument("-T", "--total_data_nbytes", type=int)
    driver.add_argument("-B", "--gensort_batch_nbytes", type=int, default=512 * MB)
    driver.add_argument("-n", "--num_data_partitions", type=int)
    driver.add_argument("-t", "--num_sort_partitions", type=int)
    driver.add_argument("-s", "--sort_engine", default="arrow", choices=("duckdb", "arrow"))
    user_args, driver_args = driver.parse_arguments()
    plan = gray_sort_benchmark(**vars(user_args))
    driver.run(plan)


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("engine", ["arrow", "duckdb"])
def test_gray_sort_benchmark(tmp_path: Any, engine: str) -> None:
    """3,000 generated records, shuffled into 8 buckets by their key's top bits, each sorted to a
    .dat file; the program checks each file and their order as valsort does, and so does this test."""
    run(tmp_path, GRAY_SORT, "-T", "300000", "-B", "50000", "-n", "2", "-t", "6", "-s", engine)
    output_dir = tmp_path / "root" / "jobs" / "job1" / "output"
    assert (output_dir / "final_check" / "total.txt").read_text() == "3000"
    records = [f.read_bytes() for f in sorted((output_dir / "sorted_records").glob("*.dat"))]
    assert len(records) == 8 and sum(len(r) for r in records) == 300000
    ranges = []
    for data in records:
        keys = [data[i:i + 10] for i in range(0, len(data), 100)]
        assert keys == sorted(keys)
        buckets = {k[0] >> 5 for k in keys}  # 8 buckets: the top 3 bits of the key
        assert len(buckets) <= 1
        ranges.append(buckets)
    assert set().union(*ranges) <= set(range(8))


def test_sort_mock_urls_in_ray_mode(urls: str, tmp_path: Any, ray_instance: Any) -> None:
    """`ray` mode: the same program on the test session's Ray, the user's ArrowComputeNode
    pickled to Ray workers."""
    address = ray_instance.get_runtime_context().gcs_address
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(SORT_MOCK_URLS))
    flags = ["ray", "--data_root", str(tmp_path / "root"), "--job_id", "job1", "-i", f"{urls}/*.tsv", "-n", "3", "-e", "arrow",
             "-x", str(tmp_path / "external")]
    env = {**os.environ, "POND_RAY_ADDRESS": address}
    done = subprocess.run([POND, "smallpond", str(script), *flags], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    out = tmp_path / "external" / "data_sink"
    assert rows(f"SELECT host, url, payload FROM {output(out)} ORDER BY ALL") == expected_urls(urls)
    assert_sorted_per_partition(out, "host")


FAIL_ONCE = """
import os
from smallpond.execution.driver import Driver
from smallpond.logical.dataset import ParquetDataSet
from smallpond.logical.node import ArrowComputeNode, Context, DataSetPartitionNode, DataSourceNode, HashPartitionNode, LogicalPlan


class FailOnce(ArrowComputeNode):
    def process(self, runtime_ctx, input_tables):
        if not os.path.exists("marker"):
            open("marker", "w").close()
            raise ValueError("the first run fails here")
        return input_tables[0]


driver = Driver()
driver.add_argument("-i", "--input_paths", nargs="+")
ctx = Context()
parts = DataSetPartitionNode(ctx, (DataSourceNode(ctx, ParquetDataSet(driver.get_arguments()["input_paths"])),), npartitions=2)
hashed = HashPartitionNode(ctx, (parts,), npartitions=2, hash_columns=["host"], output_name="by_host")
driver.run(LogicalPlan(ctx, FailOnce(ctx, (hashed,), output_name="checked")))
"""


def test_a_rerun_of_a_failed_job_resumes_from_its_committed_stages(urls: str, tmp_path: Any) -> None:
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(FAIL_ONCE))
    flags = ["scheduler", "--data_root", str(tmp_path / "root"), "--job_id", "job1", "--output_path", str(tmp_path / "out"),
             "-i", f"{urls}/*.parquet"]
    first = subprocess.run([POND, "smallpond", str(script), *flags], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert first.returncode == 70 and "the first run fails here" in first.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written is visible
    second = subprocess.run([POND, "smallpond", str(script), *flags], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "pond stage by_host already committed, reused" in second.stderr
    assert rows(f"SELECT host, url FROM {output(tmp_path / 'out')} ORDER BY ALL") == rows(f"SELECT * FROM '{urls}/*.parquet' ORDER BY ALL")
