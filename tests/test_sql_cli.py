"""`pond sql`: one query over named datasets from the shell, planned as Session.sql and the
orchestrators' SQL tasks plan it; prints, writes or explains; exit 0, 1 or 2 as every command."""

from __future__ import annotations

import os

import duckdb
import pytest
from click.testing import CliRunner, Result

from pond_core.cli import pond
from tests.join3 import QUERY, expected, write_tables


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in list(os.environ):
        if name.startswith(("POND_", "SP_")) and name != "POND_TEST_TMP":
            monkeypatch.delenv(name)
    monkeypatch.setenv("POND_DATA_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("POND_EXECUTOR", "local")


@pytest.fixture(scope="module")
def join3(tmp_path_factory):
    paths = write_tables(tmp_path_factory.mktemp("join3"))
    return paths, expected(paths)


def pond_sql(*args: str) -> Result:
    return CliRunner().invoke(pond, ["sql", *args], catch_exceptions=False)


def _inputs(paths: dict[str, str]) -> list[str]:
    return [arg for name, path in paths.items() for arg in ("-i", f"{name}={path}")]


def test_a_three_way_join_prints_duckdbs_rows(join3):
    paths, want = join3
    result = pond_sql(QUERY, *_inputs(paths), "-n", "3")
    assert result.exit_code == 0, result.stderr
    for segment, lines, revenue, _ in want:
        assert f"{segment}" in result.stdout and f"{lines}" in result.stdout and f"{revenue}" in result.stdout


def test_output_writes_the_result_as_a_dataset(join3, tmp_path):
    paths, want = join3
    out = tmp_path / "out"
    result = pond_sql(QUERY, *_inputs(paths), "-o", str(out), "--strict")
    assert result.exit_code == 0, result.stderr
    assert f"to {out}" in result.stderr
    assert duckdb.sql(f"SELECT * FROM read_parquet('{out}/*.parquet') ORDER BY c_mktsegment").fetchall() == want


def test_explain_shows_the_plan_and_runs_nothing(join3, tmp_path):
    paths, _ = join3
    result = pond_sql(QUERY, *_inputs(paths), "-n", "3", "--explain")
    assert result.exit_code == 0, result.stderr
    assert "== distributed plan (3 partitions) ==" in result.stdout and "== physical plan ==" in result.stdout
    assert "SPLIT read lineitem" in result.stdout
    assert not (tmp_path / "root").exists() or not any((tmp_path / "root").rglob("*.parquet"))


def test_limit_caps_the_rows_printed(join3):
    paths, _ = join3
    result = pond_sql("SELECT o_orderkey FROM orders ORDER BY 1", "-i", f"orders={paths['orders']}", "--limit", "3")
    assert result.exit_code == 0, result.stderr
    assert [line.strip() for line in result.stdout.splitlines()[2:5]] == ["1", "2", "3"]
    assert "(first 3 rows;" in result.stdout.splitlines()[5]


@pytest.mark.parametrize(
    "args, message",
    [
        (["SELECT 1; COPY (SELECT 1) TO 'x.csv'", "-i", "t=/nowhere"], "more than one statement"),
        (["SELECT nope FROM t", "-i", "t={orders}"], "nope"),
        (["SELECT * FROM t", "-i", "t=/nowhere"], "read_parquet: path not found: /nowhere"),
        (["SELECT 1", "-i", "t"], "--input takes NAME=PATH"),
        (["SELECT 1"], "give the statement's tables with --input"),
        (["SELECT k, count(*) FROM (SELECT o_custkey AS k FROM t) GROUP BY ROLLUP (k)", "-i", "t={orders}", "--strict"],
         "strict planning"),
    ],
)
def test_invalid_statements_exit_2_before_anything_runs(join3, tmp_path, args, message):
    paths, _ = join3
    result = pond_sql(*[a.format(orders=paths["orders"]) for a in args])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert not (tmp_path / "x.csv").exists()


def test_a_run_that_fails_exits_1(join3):
    paths, _ = join3
    result = pond_sql("SELECT CAST('x' || o_orderkey AS INTEGER) AS bad FROM orders", "-i", f"orders={paths['orders']}")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Conversion Error" in result.stderr
