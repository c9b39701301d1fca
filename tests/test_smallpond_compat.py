"""The smallpond entry (`pond_core.compat.smallpond`, `pond smallpond SCRIPT.py`): each behaviour
docs/smallpond.md promises, and the engine changes it rests on (empty partitions, per-stage
threads and memory, set-up statements, the partition variable)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

import pond_core
from pond_core.compat.aliases import install, smallpond_aliased
from pond_core.compat.node_options import ACCEPTED, UnknownOptionError
from pond_core.errors import PondConfigError, PondDataError, PondSerializationError

install()

import smallpond  # noqa: E402  (resolved by the alias just installed)

POND = os.path.join(os.path.dirname(sys.executable), "pond")


@pytest.fixture
def sp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.chdir(tmp_path)
    session = smallpond.init(data_root=str(tmp_path / "root"))
    yield session
    session.shutdown()


def _files(folder: str, n: int) -> str:
    os.makedirs(folder, exist_ok=True)
    import pyarrow.parquet as pq

    for i in range(n):
        pq.write_table(pa.table({"v": [i * 10 + k for k in range(4)]}), os.path.join(folder, f"f{i}.parquet"))
    return os.path.join(folder, "*.parquet")


# -- empty partitions (pond's engine, both APIs) ---------------------------------------------------


def test_repartition_by_files_beyond_the_file_count_gives_empty_partitions(tmp_path: Any) -> None:
    session = pond_core.init(data_root=str(tmp_path / "root"))
    try:
        df = session.read_parquet(_files(str(tmp_path / "in"), 5)).repartition(10)
        assert df.count() == 20
        per_partition = session.partial_sql("SELECT getvariable('pond_partition') AS p, count(*) AS n FROM {0}", df).take_all()
        assert sorted(r["p"] for r in per_partition) == list(range(10))
        assert sorted(r["n"] for r in per_partition) == [0] * 5 + [4] * 5
        items = session.from_items([1, 2, 3]).repartition(2)
        assert sorted(r["item"] for r in items.take_all()) == [1, 2, 3]
        assert session.from_items([1, 2, 3]).repartition(4, by_rows=True).count() == 3
    finally:
        session.shutdown()


def test_smallpond_from_items_repartition(sp: Any) -> None:
    assert sp.from_items([{"a": 1}]).repartition(2).take_all() == [{"a": 1}]


# -- node options ----------------------------------------------------------------------------------


def _every_method(sp: Any, df: Any, **options: Any) -> list[Any]:
    return [
        df.repartition(2, **options), df.repartition(2, hash_by="item", **options), df.random_shuffle(**options),
        df.partial_sort("item", **options), df.filter("item > 1", **options), df.filter(lambda r: r["item"] > 1, **options),
        df.map("item", **options), df.map(lambda r: r, **options), df.flat_map("item", **options),
        df.flat_map(lambda r: [r], **options), df.map_batches(lambda t: t, **options),
        sp.partial_sql("SELECT * FROM {0}", df, **options),
    ]


def test_every_smallpond_node_option_is_accepted_by_every_method(sp: Any) -> None:
    df = sp.from_items([1, 2, 3])
    for name in sorted(ACCEPTED - {"udfs", "output_name", "cpu_limit", "memory_limit"}):
        assert len(_every_method(sp, df, **{name: 1})) == 12, name
    frames = _every_method(sp, df, cpu_limit=2, memory_limit="256MB", gpu_limit=1, engine_type="duckdb", output_name="named")
    assert sorted(r["item"] for r in frames[6].take_all()) == [1, 2, 3]


def test_an_unknown_option_is_an_error_naming_it(sp: Any) -> None:
    df = sp.from_items([1, 2, 3])
    with pytest.raises(UnknownOptionError, match="'cpu_limt' \\(did you mean 'cpu_limit'\\?\\)") as err:
        df.map("item", cpu_limt=2)
    assert isinstance(err.value, TypeError) and isinstance(err.value, PondConfigError)
    with pytest.raises(TypeError, match="'by_row'"):
        df.repartition(3, by_row=True)  # getstarted.rst's typo fails on smallpond too
    with pytest.raises(TypeError, match="'bogus'"):
        sp.partial_sql("SELECT 1", bogus=1)


def test_cpu_limit_and_memory_limit_size_the_stages_tasks(tmp_path: Any) -> None:
    session = smallpond.init(data_root=str(tmp_path / "r"), task_threads=1, memory_limit="200MiB")
    try:
        df = session.from_items(list(range(6))).repartition(2, by_rows=True)
        probe = "current_setting('threads') AS threads, current_setting('memory_limit') AS memory"
        limited = df.map(probe, cpu_limit=2, memory_limit="300MiB").take_all()
        assert {(r["threads"], r["memory"]) for r in limited} == {(2, "300.0 MiB")}
        default = df.map(probe + ", 0 AS other_stage").take_all()  # same SQL: the same stage, reused
        assert {(r["threads"], r["memory"]) for r in default} == {(1, "200.0 MiB")}, "the limits belong to that stage only"
    finally:
        session.shutdown()


def test_stage_limits_and_set_up_survive_the_plan_json_and_keep_ids(sp: Any) -> None:
    from pond_core.plan.compile import compile_plan
    from pond_core.plan.physical import PhysicalPlan

    df = sp.from_items([1, 2])
    plain = compile_plan(sp.partial_sql("SELECT * FROM {0}", df).plan)
    limited = compile_plan(sp.partial_sql(["SET VARIABLE a = 1", "SELECT * FROM {0}"], df, cpu_limit=2, memory_limit=1 << 28).plan)
    final = limited.final
    assert (final.task_threads, final.task_memory, final.steps[-1].setup) == (2, 1 << 28, ("SET VARIABLE a = 1",))
    assert PhysicalPlan.from_json(limited.to_json()) == limited
    assert "task_threads" not in plain.to_json() and "setup" not in plain.to_json()
    same_sql = compile_plan(sp.partial_sql("SELECT * FROM {0}", df, cpu_limit=2).plan)
    assert same_sql.final.id == plain.final.id, "limits change no result, so not the stage id"


def test_output_name_names_the_stage(sp: Any) -> None:
    from pond_core.plan.compile import compile_plan

    df = sp.from_items([1, 2]).map("item * 2 AS y", output_name="doubled")
    assert compile_plan(df.plan).final.name == "doubled"


# -- partial_sql: placeholders and statement lists --------------------------------------------------


def test_smallpond_placeholders_are_filled(sp: Any) -> None:
    df = sp.from_items(list(range(30))).repartition(3, by_rows=True)
    rows = sp.partial_sql(
        "SELECT {__data_partition__} AS p, {batch_index} AS b, {query_index} AS q, {cpu_limit} AS c, count(*) AS n FROM {0}",
        df, cpu_limit=2,
    ).take_all()
    assert sorted((r["p"], r["b"], r["q"], r["c"], r["n"]) for r in rows) == [(0, 0, 0, 2, 10), (1, 0, 0, 2, 10), (2, 0, 0, 2, 10)]
    sampled = sp.partial_sql("select * from {0} using sample 100% (reservoir, {rand_seed})", df).take_all()
    assert sorted(r["item"] for r in sampled) == list(range(30))
    mapped = df.map("item, {__data_partition__} AS p").take_all()
    assert all(r["p"] == r["item"] // 10 for r in mapped)
    hashed = sp.from_items(list(range(100))).repartition(4, hash_by="item")  # a stage pond may fuse on one machine
    placed = sp.partial_sql("SELECT item, {__data_partition__} AS p FROM {0}", hashed).take_all()
    import duckdb

    buckets = dict(duckdb.sql("SELECT i, hash(i) % 4 FROM range(100) t(i)").fetchall())
    assert all(r["p"] == buckets[r["item"]] for r in placed) and len(placed) == 100
    with pytest.raises(PondConfigError, match=r"placeholder \{nope\}"):
        sp.partial_sql("SELECT {nope} FROM {0}", df)


def test_a_list_of_statements_runs_the_earlier_ones_as_set_up(sp: Any) -> None:
    df = sp.from_items([1, 2, 3]).repartition(2, by_rows=True)
    out = sp.partial_sql(
        [
            "SET VARIABLE step = 100", "CREATE MACRO bump(x) AS x + getvariable('step')",
            "CREATE TEMP TABLE seen AS SELECT count(*) AS n FROM {0}",
            "SELECT bump(item) AS y, {query_index} AS q, (SELECT n FROM seen) AS n FROM {0}",
        ],
        df,
    )
    assert sorted((r["y"], r["q"], r["n"]) for r in out.take_all()) == [(101, 3, 1), (102, 3, 2), (103, 3, 2)]
    hashed = sp.from_items([1, 2, 3]).repartition(2, hash_by="item")
    fused = sp.partial_sql(["SET VARIABLE step2 = 10", "SELECT item + getvariable('step2') AS y FROM {0}"], hashed)
    assert sorted(r["y"] for r in fused.take_all()) == [11, 12, 13]
    plain = sp.partial_sql("SELECT getvariable('step') AS s FROM {0}", df).take_all()
    assert {r["s"] for r in plain} == {None}, "set-up does not leak into the next task"


@pytest.mark.parametrize(
    "statement,why",
    [
        ("COPY (SELECT 1) TO 'x.parquet'", "write files"),
        ("ATTACH 'other.db'", "attach"),
        ("INSTALL httpfs", "install"),
        ("SET temp_directory = '/tmp'", "temp_directory"),
        ("SET threads = 1; SELECT 1", "one statement"),
    ],
)
def test_set_up_statements_may_not_write_or_attach(sp: Any, statement: str, why: str) -> None:
    df = sp.from_items([1])
    with pytest.raises(PondConfigError, match=why):
        sp.partial_sql([statement, "SELECT * FROM {0}"], df)


# -- keyword forms, lazy writes, computed state, graph, timeline -----------------------------------


def test_keyword_forms(sp: Any) -> None:
    df = sp.from_items([1, 2, 3])
    assert df.take(limit=2) == [{"item": 1}, {"item": 2}]
    assert df.limit(limit=2).count() == 2


def test_write_parquet_lazy_wait_and_is_computed(sp: Any, tmp_path: Any) -> None:
    df = sp.from_items([1, 2, 3])
    assert not df.is_computed()
    o1, o2 = df.write_parquet_lazy("o1"), df.map("item * 2 AS y").write_parquet_lazy("o2")
    assert not os.path.exists(tmp_path / "o1") and not o1.is_computed()
    sp.wait(o1, o2)
    assert o1.is_computed() and o2.is_computed()
    import pyarrow.dataset as ds

    assert sorted(ds.dataset(str(tmp_path / "o2")).to_table().column("y").to_pylist()) == [2, 4, 6]
    df.count()
    assert df.is_computed()


def test_write_parquet_replaces_its_output_on_rerun(sp: Any, tmp_path: Any) -> None:
    sp.from_items([1, 2, 3]).write_parquet("out")
    sp.from_items([7]).write_parquet("out")
    import pyarrow.dataset as ds

    assert ds.dataset(str(tmp_path / "out")).to_table().column("item").to_pylist() == [7]
    session = pond_core.init(data_root=str(tmp_path / "root2"))
    try:
        with pytest.raises(PondConfigError):
            session.from_items([1]).write_parquet(str(tmp_path / "out"))  # pond's own API: mode="error"
    finally:
        session.shutdown()


def test_graph_and_timeline_need_no_graphviz(sp: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no `dot`
    df = sp.from_items([1, 2, 3]).repartition(2, by_rows=True).map("item + 1 AS x")
    df.count()
    source = sp.graph().source
    assert source.startswith("digraph") and source.count("->") >= 2 and "repartition" in source
    graph_file = sp.dump_graph()
    assert open(graph_file).read() == source and graph_file.startswith(sp.job_root)
    events = json.load(open(sp.dump_timeline(str(tmp_path / "timeline.json"))))
    assert events and all(e["ph"] == "X" and e["dur"] >= 0 for e in events)


# -- init ------------------------------------------------------------------------------------------


def test_init_takes_smallponds_arguments_and_environment(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SP_JOBID", "from-sp-jobid")
    monkeypatch.setenv("SP_NUM_EXECUTORS", "0")
    session = smallpond.init(data_root=str(tmp_path / "r"), num_executors=0, memory_allocator="system", bind_numa_node=False)
    try:
        assert session.job_id == "from-sp-jobid"
        assert session.config.num_executors is None and not session.config.use_ray
        assert session.from_items([1]).count() == 1
    finally:
        session.shutdown()
    explicit = smallpond.init(job_id="explicit", data_root=str(tmp_path / "r"))
    assert explicit.job_id == "explicit", "an explicit argument wins over SP_JOBID"
    explicit.shutdown()
    with pytest.raises(PondConfigError, match="nonsense"):
        smallpond.init(data_root=str(tmp_path / "r"), nonsense=1)


@pytest.mark.parametrize("remove", [True, False])
def test_remove_output_root(tmp_path: Any, remove: bool) -> None:
    session = smallpond.init(data_root=str(tmp_path / "r"), _remove_output_root=remove)
    session.from_items([1]).count()
    output = os.path.join(session.job_root, "output")
    assert os.path.isdir(output)
    session.shutdown()
    assert os.path.isdir(output) is not remove


def test_a_session_used_after_shutdown_says_so(tmp_path: Any) -> None:
    session = smallpond.init(data_root=str(tmp_path / "r"))
    df = session.from_items([1, 2])
    session.shutdown()
    for use in (df.count, lambda: session.from_items([1]), lambda: session.read_parquet("x.parquet"), lambda: session.partial_sql("SELECT 1")):
        with pytest.raises(PondConfigError, match="was shut down; start a new one with smallpond.init"):
            use()


# -- filter truthiness, and pickling ------------------------------------------------------------------


def test_filter_takes_truthiness_under_smallpond_only(sp: Any, tmp_path: Any) -> None:
    df = sp.from_items([0, 1, 2, 3])
    assert [r["item"] for r in df.filter(lambda r: r["item"] % 2).take_all()] == [1, 3]
    assert [r["item"] for r in df.filter("item % 2").take_all()] == [1, 3]
    session = pond_core.init(data_root=str(tmp_path / "root2"))
    try:
        with pytest.raises(PondDataError, match="must return True or False"):
            session.from_items([0, 1]).filter(lambda r: r["item"] % 2).take_all()
    finally:
        session.shutdown()


def test_a_function_capturing_the_loguru_logger_is_refused_in_smallponds_words(sp: Any) -> None:
    loguru = pytest.importorskip("loguru")
    logger = loguru.logger
    with pytest.raises(PondSerializationError, match="Can't pickle task") as err:
        sp.from_items([1]).map(lambda x: logger.info("x"))
    assert "HINT: DO NOT use externally imported loguru logger" in str(err.value)


# -- imports and the runner ----------------------------------------------------------------------------


def test_smallpond_module_tree() -> None:
    from smallpond.common import GB, MB
    from smallpond.dataframe import DataFrame, Session

    import pond_core.compat.smallpond as compat

    assert (GB, MB) == (1 << 30, 1 << 20)
    assert Session is compat.Session and DataFrame is compat.DataFrame and smallpond.init is compat.init
    assert sys.modules["smallpond.dataframe"] is sys.modules["pond_core.compat.smallpond.dataframe"]


def test_the_alias_lasts_for_the_block_only() -> None:
    from pond_core.compat import aliases

    aliases.uninstall()
    try:
        with pytest.raises(ModuleNotFoundError):
            __import__("smallpond")
        with smallpond_aliased():
            assert __import__("smallpond.common").common.GB == 1 << 30
        with pytest.raises(ModuleNotFoundError):
            __import__("smallpond")
    finally:
        install()


def _script(tmp_path: Any, body: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(body))
    env = {**os.environ, "SP_DATA_ROOT": str(tmp_path / "root")}
    return subprocess.run([POND, "smallpond", str(path), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_pond_smallpond_runs_a_script_with_its_argv_and_exit_code(tmp_path: Any) -> None:
    done = _script(
        tmp_path,
        """
        import sys
        import smallpond
        from smallpond.dataframe import Session
        sp = smallpond.init()
        assert isinstance(sp, Session)
        print("argv", sys.argv[1:], sys.argv[0].endswith("script.py"), __name__)
        print("count", sp.from_items([1, 2, 3]).repartition(2).count())
        sys.exit(int(sys.argv[1]))
        """,
        "3", "--flag",
    )
    assert done.returncode == 3, done.stderr
    assert "argv ['3', '--flag'] True __main__" in done.stdout and "count 3" in done.stdout


def test_pond_smallpond_reports_an_uncaught_exception_with_exit_code_1(tmp_path: Any) -> None:
    done = _script(tmp_path, "import smallpond\nsp = smallpond.init()\nsp.partial_sql('select a,, from {0}', sp.from_items([1])).count()\n")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr and "script.py" in done.stderr
    assert "select a,, from" in done.stderr
    assert "runpy" not in done.stderr, "the traceback starts at the script"
    ok = _script(tmp_path, "import smallpond\n")
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run([POND, "smallpond", str(tmp_path / "nope.py")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such script" in missing.stderr


def test_pond_smallpond_records_the_run_in_the_catalog(tmp_path: Any) -> None:
    env = {**os.environ, "SP_DATA_ROOT": str(tmp_path / "root"), "SP_JOBID": "nightly-1"}
    path = tmp_path / "script.py"
    path.write_text("import smallpond\nsp = smallpond.init()\nsp.from_items([1, 2]).write_parquet('out')\n")
    done = subprocess.run([POND, "smallpond", str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    runs = subprocess.run([POND, "runs", "--json", "--data-root", str(tmp_path / "root")], capture_output=True, text=True, timeout=120)
    assert runs.returncode == 0, runs.stderr
    recorded = {r["run_id"]: r for r in json.loads(runs.stdout)}
    assert recorded["nightly-1"]["status"] == "success"

