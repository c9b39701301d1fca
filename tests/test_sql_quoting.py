"""Hostile text in every place that reaches SQL: data roots, job and run ids, dataset paths,
partition values and pipeline parameters run as data on both executors, or are refused with a
clear error; never a parse error, never a side effect (no attacker file appears)."""

from __future__ import annotations

import datetime as dt
import decimal
import os
import pathlib

import duckdb
import pytest

import pond_core
from pond_core.errors import PondConfigError, PondDataError, PondError
from pond_core.pipeline import compile_pipeline
from pond_core.runner import run_plan
from pond_core.sql_quote import bind_params, quote_ident, quote_str, sql_list, sql_literal

HOSTILE = ["q'uote", "back\\slash", "semi;colon", "dash--dash", "new\nline", "uniçødé✓", "tab\tand 'two' ''"]


def _injection(base) -> str:
    """Text that, pasted unescaped into a '…' literal, ends it and writes a file."""
    return "x'); COPY (SELECT 1) TO '" + str(base / "PWNED.csv") + "'; --"


def _read(path: str) -> list[tuple]:
    """Every visible Parquet file under `path` (listed by Python: DuckDB globs treat \\ as an escape)."""
    files = sorted(str(f) for f in pathlib.Path(path).rglob("*.parquet") if not any(p.startswith((".", "_")) for p in f.relative_to(path).parts))
    return duckdb.sql(f"SELECT * FROM read_parquet({sql_list(files)}, hive_partitioning=true) ORDER BY ALL").fetchall()


# -- the one helper --------------------------------------------------------------------------


@pytest.mark.parametrize("value", HOSTILE + ["x'); SELECT 1; --", "$ds", "{0}", "日本語", "", "'"])
def test_a_quoted_string_reads_back_as_exactly_itself(value):
    assert duckdb.sql(f"SELECT {quote_str(value)} AS v").fetchone() == (value,)
    assert duckdb.sql(f"SELECT 1 AS {quote_ident(value or 'x')}").columns == [value or "x"]


def test_a_nul_character_is_refused_not_truncated():
    with pytest.raises(PondConfigError, match="NUL"):
        quote_str("a\x00b")


@pytest.mark.parametrize(
    "value",
    [None, True, 7, -2.5, decimal.Decimal("12.340"), dt.date(2026, 11, 20), dt.datetime(2026, 11, 20, 1, 2, 3), "it's", ["a'", "b"]],
)
def test_literals_keep_their_type_and_value(value):
    got = duckdb.sql(f"SELECT {sql_literal(value)}").fetchone()[0]
    assert got == value


def test_bind_params_replaces_only_parameters_outside_strings_and_comments():
    query = "SELECT $v AS v, '$v' AS s, \"$v\" AS q -- $v\n/* $v */ FROM t WHERE x = $v"
    bound = bind_params(query, {"v": "a'; DROP TABLE t; --"})
    assert bound == (
        "SELECT 'a''; DROP TABLE t; --' AS v, '$v' AS s, \"$v\" AS q -- $v\n/* $v */ FROM t WHERE x = 'a''; DROP TABLE t; --'"
    )


def test_bind_params_names_a_missing_or_unused_parameter():
    with pytest.raises(PondConfigError, match=r"\$day has no value"):
        bind_params("SELECT $day", {"ds": "x"})
    with pytest.raises(PondConfigError, match="parameter ds is not used"):
        bind_params("SELECT 1", {"ds": "x"})


# -- hostile paths on both executors ---------------------------------------------------------


@pytest.fixture(params=["local", "ray"])
def executor(request):
    if request.param == "ray":
        request.getfixturevalue("ray_instance")
    return request.param


def _source(folder) -> str:
    folder.mkdir(parents=True)
    duckdb.sql(f"COPY (SELECT i AS id, i % 4 AS k FROM range(40) t(i)) TO {quote_str(str(folder / 'a.parquet'))} (FORMAT parquet)")
    return str(folder / "*.parquet")


@pytest.mark.parametrize("root_name", ["hostile", "injection"])
def test_hostile_data_root_and_dataset_paths_run_as_data(executor, tmp_path, root_name):
    name = "".join(HOSTILE) if root_name == "hostile" else _injection(tmp_path)
    base = tmp_path / name
    source = _source(base / ("src " + name))
    sp = pond_core.init(data_root=str(base / "pond"), executor=executor, job_id="job.1:a+b=c@d--e")
    try:
        grouped = sp.partial_sql("SELECT k, count(*)::BIGINT AS n FROM {0} GROUP BY k", sp.read_parquet(source).repartition(3, hash_by="k"))
        assert sorted(r["n"] for r in grouped.take_all()) == [10, 10, 10, 10]
        out = str(base / ("out " + name))
        grouped.write_parquet(out)
        assert sorted(n for _, n in _read(out)) == [10, 10, 10, 10]
    finally:
        sp.shutdown()
    assert not any(p.name == "PWNED.csv" for p in tmp_path.rglob("*")), "injected SQL ran"


def test_hostile_partition_values_are_written_as_data_or_refused(executor, tmp_path):
    sp = pond_core.init(data_root=str(tmp_path / "pond"), executor=executor)
    values = ["q'uote", "semi;colon", "dash--dash", "uniçødé✓", "x'); SELECT 1; --"]
    try:
        df = sp.partial_sql(
            "SELECT unnest($values) AS p, 1 AS one", sp.from_items([{"z": 1}]), params={"values": values}
        )
        out = str(tmp_path / "by_p")
        df.write_parquet(out, partition_by="p")
        assert sorted(p for _, p in _read(out)) == sorted(values)
        for bad, why in [("back\\slash", "path separator|may not"), ("new\nline", "control|may not"), ("x" * 300, "too long")]:
            frame = sp.partial_sql("SELECT $v AS p, 1 AS one", sp.from_items([{"z": 1}]), params={"v": bad})
            with pytest.raises(PondDataError, match=why):
                frame.write_parquet(str(tmp_path / "bad"), partition_by="p")
    finally:
        sp.shutdown()


# -- ids and parameters ----------------------------------------------------------------------


@pytest.mark.parametrize("job_id", [h for h in HOSTILE if h != "dash--dash"] + ["a/b", "../up", "x'); --"])
def test_hostile_job_ids_are_refused_naming_the_id(tmp_path, job_id):
    with pytest.raises(PondConfigError, match="is not allowed"):
        pond_core.init(data_root=str(tmp_path / "pond"), job_id=job_id)


def test_hostile_run_ids_are_refused_before_anything_runs(tmp_path):
    plan = compile_pipeline(_params_pipeline, {"label": "x", "out": str(tmp_path / "o")}, data_root=str(tmp_path / "pond"))
    with pytest.raises(PondConfigError, match="is not allowed"):
        run_plan(plan, "run'; --", settings={"data_root": str(tmp_path / "pond"), "executor": "local"}, record=False)
    assert not (tmp_path / "o").exists()


def _params_pipeline(sp, label: str, out: str):
    frame = sp.partial_sql("SELECT $label AS label, id FROM {0}", sp.from_items([{"id": 1}, {"id": 2}]), params={"label": label})
    return frame.sink_parquet(out, mode="overwrite")


@pytest.mark.parametrize("label", HOSTILE + ["x'; COPY (SELECT 1) TO 'PWNED.csv'; --", "{0} {1}", "$label"])
def test_pipeline_parameters_bound_as_values_reach_the_data_unchanged(tmp_path, label, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "out")
    plan = compile_pipeline(_params_pipeline, {"label": label, "out": out}, data_root=str(tmp_path / "pond"))
    run_plan(plan, "params-1", settings={"data_root": str(tmp_path / "pond"), "executor": "local"}, record=False)
    assert _read(out) == [(1, label), (2, label)] or _read(out) == [(label, 1), (label, 2)]
    assert not os.path.exists(tmp_path / "PWNED.csv")


def test_the_example_pipeline_refuses_a_day_that_is_not_a_date(tmp_path):
    with pytest.raises(PondError, match="expected a date"):
        compile_pipeline(
            "pond_core.examples:daily_revenue",
            {"ds": "2026-11-20'; --", "source_root": str(tmp_path), "output_root": str(tmp_path / "o")},
            data_root=str(tmp_path / "pond"),
        )
