"""Column-level lineage: a three-way join's output columns trace back to their source
columns, through the exchanges of a DataFrame pipeline and of planned SQL alike, into the
catalog and `pond lineage --columns` (the OpenLineage event: the Airflow provider's tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pond_core.catalog import Catalog
from pond_core.cli import pond
from pond_core.column_lineage import PlanLineage, SourceColumn, Transformation
from pond_core.errors import PondConfigError
from pond_core.lineage import stage_lineage
from pond_core.pipeline import compile_pipeline
from pond_core.plan.physical import SinkOutput
from pond_core.runner import run_plan
from pond_core.source_schemas import source_schema
from tests.lineage_pipelines import EXPECTED, write_sources

PIPELINES = ["tests.lineage_pipelines:three_way_frames", "tests.lineage_pipelines:three_way_sql"]


def expected(src: Path) -> dict[str, tuple[SourceColumn, ...]]:
    return {c: tuple(sorted(SourceColumn(str(src / f"{d}.parquet"), col) for d, col in pairs)) for c, pairs in EXPECTED.items()}


@pytest.mark.parametrize("ref", PIPELINES)
def test_each_output_column_traces_to_its_source_columns_through_every_stage(ref: str, tmp_path: Path) -> None:
    write_sources(str(tmp_path / "src"))
    plan = compile_pipeline(ref, {"source_root": str(tmp_path / "src"), "output": str(tmp_path / "out")}, data_root=str(tmp_path / "run"))
    lineage = PlanLineage(plan, source_schema)
    final = lineage.stage(plan.final.id)
    assert final == expected(tmp_path / "src")
    hows = {c: {s.how for s in sources} for c, sources in final.items()}
    assert hows["order_id"] == hows["customer"] == hows["region"] == {Transformation.IDENTITY}  # copied through two exchanges
    assert hows["net"] == hows["market"] == {Transformation.TRANSFORMATION}
    if ref.endswith("frames"):  # two exchange rounds lie between the sources and the sink
        assert len(plan.stages) == 5
        middle = lineage.stage(plan.stage("customers_orders_by_country").id)
        assert middle is not None and middle["country"] == (SourceColumn(str(tmp_path / "src/customers.parquet"), "country"),)


def test_an_untraceable_stage_has_no_column_lineage_rather_than_a_guess(tmp_path: Path) -> None:
    write_sources(str(tmp_path / "src"))
    plan = compile_pipeline(PIPELINES[0], {"source_root": str(tmp_path / "src"), "output": str(tmp_path / "out")}, data_root=str(tmp_path / "run"))
    lineage = PlanLineage(plan, lambda inp: None if "regions" in inp.source.paths[0] else source_schema(inp))
    assert lineage.stage(plan.stage("customers_orders_by_country").id) is not None
    assert lineage.stage(plan.final.id) is None  # it reads regions, whose columns are unknown


def pond_cli(*args: str) -> str:
    result = CliRunner().invoke(pond, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("ref", PIPELINES)
def test_the_catalog_records_it_and_pond_lineage_columns_shows_it(ref: str, tmp_path: Path) -> None:
    src, out, root = tmp_path / "src", tmp_path / "out", tmp_path / "root"
    write_sources(str(src))
    params = ["-p", f"source_root={src}", "-p", f"output={out}"]
    pond_cli("run", ref, *params, "--run-id", "cols-1", "--data-root", str(root), "--json")

    record = Catalog(Catalog.default_url(str(root))).column_lineage(str(out))
    assert record is not None and record["run_id"] == "cols-1"
    assert {c: {(s["dataset"], s["column"]) for s in sources} for c, sources in record["columns"].items()} == {
        c: {(s.dataset, s.column) for s in sources} for c, sources in expected(src).items()
    }
    shown = json.loads(pond_cli("lineage", str(out), "--columns", "--json", "--data-root", str(root)))
    assert shown["columns"] == record["columns"]

    text = pond_cli("lineage", str(out), "--columns", "--data-root", str(root)).splitlines()
    assert text[0].startswith(f"columns of {out} (run cols-1, stage write_")
    lines = {line.split("<-")[0].strip(): line.split("<-")[1].strip() for line in text[1:]}
    assert lines["net"] == f"{src}/orders.parquet: amount, discount (transformation)"
    assert lines["market"] == f"{src}/customers.parquet: country (transformation); {src}/regions.parquet: region_name (transformation)"
    assert lines["customer"] == f"{src}/customers.parquet: name"  # copied as is


def test_a_source_has_no_column_lineage_and_the_cli_says_why(tmp_path: Path) -> None:
    src, out, root = tmp_path / "src", tmp_path / "out", tmp_path / "root"
    write_sources(str(src))
    pond_cli("run", PIPELINES[0], "-p", f"source_root={src}", "-p", f"output={out}", "--data-root", str(root), "--json")
    result = CliRunner().invoke(pond, ["lineage", str(src / "orders.parquet"), "--columns", "--data-root", str(root)])
    assert result.exit_code == 2 and "no column lineage recorded" in result.output


def test_the_stage_record_carries_it_for_the_providers(tmp_path: Path) -> None:
    write_sources(str(tmp_path / "src"))
    plan = compile_pipeline(PIPELINES[1], {"source_root": str(tmp_path / "src"), "output": str(tmp_path / "out")}, data_root=str(tmp_path / "run"))
    final = plan.final
    assert isinstance(final.output, SinkOutput)
    record = stage_lineage(plan, final).to_dict()
    assert record["outputs"][0]["column_lineage"]["net"] == [
        {"dataset": str(tmp_path / "src/orders.parquet"), "column": "amount", "transformation": "transformation"},
        {"dataset": str(tmp_path / "src/orders.parquet"), "column": "discount", "transformation": "transformation"},
    ]


def test_the_catalog_keeps_the_newest_column_lineage_on_sqlite_and_postgresql(catalog_db_url: str) -> None:
    catalog = Catalog(catalog_db_url)
    older = {"total": [{"dataset": "/data/orders", "column": "amount"}]}
    newer = {"total": [{"dataset": "/data/orders", "column": "amount"}, {"dataset": "/data/orders", "column": "discount"}], "n": []}
    for run_id, columns in (("r1", older), ("r2", newer)):
        catalog.start_run(run_id, "p")
        catalog.record_lineage(run_id, "s1", [{"uri": "/data/orders"}], [{"uri": "/data/totals", "column_lineage": columns}], "SELECT 1")
    record = catalog.column_lineage("/data/totals")
    assert record is not None and (record["run_id"], record["columns"]) == ("r2", newer)
    assert catalog.column_lineage("/data/orders") is None  # a source: nothing computed it
    (recorded,) = [r for r in catalog.run_lineage("r2")]
    assert recorded["outputs"][0]["column_lineage"] == newer and "column_lineage" not in recorded["inputs"][0]
    with pytest.raises(PondConfigError, match="column_lineage of /data/totals must map each column"):
        catalog.record_lineage("r2", "s2", [], [{"uri": "/data/totals", "column_lineage": {"total": ["amount"]}}])


def test_sources_on_s3_are_read_with_the_runs_storage_options(s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)  # only the run's own options can reach the bucket
    bucket = s3_server.new_bucket()
    for name, path in write_sources(str(tmp_path / "src")).items():
        s3_server.client().upload_file(path, bucket, f"src/{name}.parquet")
    src, out = f"s3://{bucket}/src", f"s3://{bucket}/out"
    plan = compile_pipeline(PIPELINES[0], {"source_root": src, "output": out}, data_root=str(tmp_path / "run"))
    run_plan(plan, "s3-cols", settings={"data_root": str(tmp_path / "run"), "executor": "local"}, storage=s3_server.options())

    record = Catalog(Catalog.default_url(str(tmp_path / "run"))).column_lineage(out)
    assert record is not None
    assert [(s["dataset"], s["column"]) for s in record["columns"]["net"]] == [(f"{src}/orders.parquet", c) for c in ("amount", "discount")]
    assert "secret" not in json.dumps(record).lower()


def test_a_python_filter_keeps_origins_and_a_python_map_hides_them(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_sources(str(src))
    plan = compile_pipeline("tests.lineage_pipelines:python_steps", {"source_root": str(src), "output": str(tmp_path / "out")}, data_root=str(tmp_path / "run"))
    lineage = PlanLineage(plan, source_schema).stage(plan.final.id)
    orders = str(src / "orders.parquet")
    assert lineage == {
        "order_id": (SourceColumn(orders, "order_id"),),  # k.order_id: through the Python filter unchanged
        "discount": (SourceColumn(orders, "discount"),),
        "twice": (),  # a Python map's column: it exists, its origin is unknown
    }


def test_a_two_phase_aggregate_traces_through_its_partial_columns(tmp_path: Path) -> None:
    """Partial aggregates cross the exchange in pond's own `__pond` columns: traced through,
    never reported as columns of their own."""
    from tests.support.sql_tpch import tpch_dir

    plan = compile_pipeline("tests.sql_pipelines:revenue_by_priority", {"data": str(tpch_dir(0.1))}, data_root=str(tmp_path / "run"))
    assert len(plan.stages) >= 2 and any("__pond" in sql for s in plan.stages for sql in s.sql)
    lineage = PlanLineage(plan, source_schema).stage(plan.final.id)
    assert lineage is not None
    assert {c: {s.column for s in sources} for c, sources in lineage.items()} == {
        "o_orderpriority": {"o_orderpriority"},
        "revenue": {"l_extendedprice", "l_discount"},
        "n": set(),
    }
    assert {s.how for s in lineage["revenue"]} == {Transformation.AGGREGATION}  # partial sums, then their sum
    assert {s.how for s in lineage["o_orderpriority"]} == {Transformation.IDENTITY}


def test_every_tpch_querys_columns_trace_at_8_partitions(tmp_path: Path) -> None:
    import pond_core
    from pond_core.plan.compile import compile_plan
    from pond_core.sqlplan import plan_sql
    from tests.support.sql_tpch import tpch_dir
    from tests.tpch_queries import QUERIES, table_paths

    paths = table_paths(tpch_dir(0.1))
    sp = pond_core.init(data_root=str(tmp_path), executor="local")
    try:
        sourceless = []
        for q, sql in QUERIES.items():
            frame = plan_sql(sp, sql, {k: v for k, v in paths.items() if k in sql.lower()}, npartitions=8).frame
            plan = compile_plan(frame._node, options=sp.compile_options())
            lineage = PlanLineage(plan, source_schema)
            assert all(lineage.stage(s.id) is not None for s in plan.stages), f"Q{q}: a stage not traced"
            final = lineage.stage(plan.final.id) or {}
            sourceless += [f"Q{q}.{c}" for c, sources in final.items() if not sources]
    finally:
        sp.shutdown()
    # only counts of rows come from no column
    assert sourceless == ["Q1.count_order", "Q4.order_count", "Q13.custdist", "Q21.numwait", "Q22.numcust"]
