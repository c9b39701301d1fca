"""The `pond` command through click's CliRunner: help, runs, plans, inspection, errors, clean.

Every command runs for real (DuckDB, the SQLite catalog under the data root); each test gets
its own data root, and the example shop is generated once per module.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pond_core.catalog import Catalog
from pond_core.cli import pond
from pond_core.cli.graph import plan_graph
from pond_core.pipeline import compile_pipeline
from pond_core.plan.physical import PhysicalPlan
from tests.test_pipeline_defs import make_shop, revenue_by_day, written_revenue

REVENUE = "pond_core.examples:daily_revenue"
DAY, OTHER_DAY, NO_DATA_DAY = "2026-11-20", "2026-11-21", "2026-11-25"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_shop(str(tmp_path_factory.mktemp("shop")), [DAY, OTHER_DAY])


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("POND_", "SP_")) and name != "POND_TEST_TMP":
            monkeypatch.delenv(name)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "revenue"


def pond_cli(*args: str) -> Result:
    return CliRunner().invoke(pond, list(args), catch_exceptions=False)


def revenue_args(shop: str, out: Path, day: str = DAY) -> list[str]:
    return [REVENUE, "-p", f"ds={day}", "-p", f"source_root={shop}", "-p", f"output_root={out}"]


def run_json(*args: str) -> dict:
    result = pond_cli("run", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def catalog_of(root: Path) -> Catalog:
    return Catalog(Catalog.default_url(str(root)))


# -- help ---------------------------------------------------------------------------------------


def test_every_command_has_help() -> None:
    top = pond_cli("--help")
    assert top.exit_code == 0
    assert "Exit codes: 0 ok; 1 a run failed; 2 invalid command" in top.stdout
    for name in pond.commands:
        result = pond_cli(name, "--help")
        assert result.exit_code == 0, name
        assert f"Usage: pond {name}" in result.stdout
        assert len(pond.commands[name].help or "") > 40, f"{name} needs real help text"


# -- run ----------------------------------------------------------------------------------------


def test_run_writes_the_day_and_a_rerun_of_the_run_id_skips_every_stage(shop: str, root: Path, out: Path) -> None:
    first = run_json(*revenue_args(shop, out), "--run-id", "day-1", "--data-root", str(root))
    assert first["status"] == "success" and first["run_id"] == "day-1"
    assert [s["state"] for s in first["stages"]] == ["ran"] * 4
    assert first["output"] == str(out)
    assert first["params"] == {"ds": DAY, "source_root": shop, "output_root": str(out)}
    assert written_revenue(str(out), DAY) == revenue_by_day(shop, DAY)

    again = run_json(*revenue_args(shop, out), "--run-id", "day-1", "--data-root", str(root))
    assert [s["state"] for s in again["stages"]] == ["skipped"] * 4
    assert [s["rows"] for s in again["stages"]] == [s["rows"] for s in first["stages"]]
    assert written_revenue(str(out), DAY) == revenue_by_day(shop, DAY)
    with catalog_of(root) as catalog:
        run = catalog.get_run("day-1")
    assert (run["status"], run["attempts"]) == ("success", 2)
    assert all(s["attempts"] == 1 for s in run["stages"])


def test_run_prints_a_table_of_stages(shop: str, root: Path, out: Path) -> None:
    result = pond_cli("run", *revenue_args(shop, out), "--run-id", "table", "--data-root", str(root))
    assert result.exit_code == 0, result.stderr
    for name in ("orders_by_customer_id", "customers_by_customer_id", "join_aggregate_customers_orders", "write_daily_revenue"):
        assert name in result.stdout
    assert "run table succeeded in" in result.stdout and f"output: {out}" in result.stdout
    assert "run table: pond_core.examples:daily_revenue, 4 stages" in result.stderr
    assert "4/4" in result.stderr  # the progress bar of join_aggregate_customers_orders: partitions done / total


def test_run_ids_are_generated_from_the_function_name(shop: str, root: Path, out: Path) -> None:
    report = run_json(*revenue_args(shop, out), "--data-root", str(root))
    assert report["run_id"].startswith("daily_revenue-")
    with catalog_of(root) as catalog:
        assert catalog.get_run(report["run_id"])["status"] == "success"


def test_parameters_are_cast_to_the_types_the_function_declares() -> None:
    result = pond_cli(
        "plan", "tests.test_pipeline_defs:takes_options", "-p", "ds=2026-11-20", "-p", "limit=3",
        "-p", "ratio=0.25", "-p", "flag=yes", "-p", 'tags=["a", "b"]', "--format", "json",
    )
    assert result.exit_code == 0, result.stderr
    assert PhysicalPlan.from_json(result.stdout).params == {"ds": "2026-11-20", "limit": 3, "ratio": 0.25, "flag": True, "tags": ["a", "b"]}


def test_a_failed_run_exits_1_and_resume_finishes_it(root: Path, out: Path, tmp_path: Path) -> None:
    shop = make_shop(str(tmp_path / "shop"), [DAY])  # its own: the missing day arrives below
    failing = pond_cli("run", *revenue_args(shop, out, NO_DATA_DAY), "--run-id", "late", "--data-root", str(root), "--json")
    assert failing.exit_code == 1
    assert json.loads(failing.stdout)["status"] == "failed"
    assert "error: run late failed:" in failing.stderr and "resume it with: pond resume late" in failing.stderr
    shown = json.loads(pond_cli("runs", "late", "--data-root", str(root), "--json").stdout)
    assert shown["status"] == "failed" and NO_DATA_DAY in shown["error"]

    make_shop(shop, [DAY, NO_DATA_DAY])  # the data arrives (the same files for the old day)
    resumed = pond_cli("resume", "late", "--data-root", str(root), "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "success"
    assert written_revenue(str(out), NO_DATA_DAY) == revenue_by_day(shop, NO_DATA_DAY)


def test_a_run_id_cannot_be_reused_for_other_parameters(shop: str, root: Path, out: Path) -> None:
    run_json(*revenue_args(shop, out), "--run-id", "reused", "--data-root", str(root))
    result = pond_cli("run", *revenue_args(shop, out, OTHER_DAY), "--run-id", "reused", "--data-root", str(root))
    assert result.exit_code == 2
    assert "the pipeline or its parameters changed since; use another --run-id" in result.stderr
    assert not (out / f"dt={OTHER_DAY}").exists()


# -- bad input: exit 2, one line, nothing run ---------------------------------------------------

BAD_INPUT = {
    "not a pipeline": (["run", "yesterday"], "'yesterday' is not a pipeline: write it module:function"),
    "unknown module": (["run", "no_such_pkg.flows:daily"], "cannot import module 'no_such_pkg.flows'"),
    "unknown function": (["run", "pond_core.examples:nope"], "module 'pond_core.examples' has no function 'nope'"),
    "unknown parameter": (["run", "{rev}", "-p", "colour=red"], "takes no parameter colour (it takes: ds, source_root, output_root, npartitions)"),
    "missing parameter": (["run", REVENUE, "-p", f"ds={DAY}"], "needs parameter source_root, output_root"),
    "not an int": (["run", "{rev}", "-p", "npartitions=four"], "parameter npartitions='four' is not a valid int"),
    "not key=value": (["run", REVENUE, "-p", "ds"], "parameter 'ds' must be written KEY=VALUE"),
    "bad day": (["run", REVENUE, "-p", "ds=yesterday", "-p", "source_root=/s", "-p", "output_root=/o"], "expected a date like 2026-11-20, got 'yesterday'"),
    "raises while planning": (["run", "tests.test_pipeline_defs:raises_while_planning", "-p", f"ds={DAY}"],
                              "raised while building its plan: RuntimeError: no data configured for 2026-11-20"),
    "dead catalog": (["run", "{rev}", "--catalog", "postgresql://postgres@127.0.0.1:1/pond"], "catalog at postgresql+psycopg://postgres@127.0.0.1:1/pond does not answer"),
    "bad catalog URL": (["runs", "--catalog", "mysql://db/pond"], "only sqlite and postgresql catalogs are supported"),
    "bad run id": (["run", "{rev}", "--run-id", "../escape"], "run id '../escape' is not allowed"),
    "pipeline and plan": (["run", "{rev}", "--plan", "plan.json"], "give a PIPELINE (module:function) or --plan FILE, not both"),
    "missing plan file": (["run", "--plan", "{tmp}/missing.json"], "cannot read plan"),
    "unknown run": (["runs", "no-such-run"], "no run no-such-run in the catalog"),
    "unknown dataset": (["partitions", "/no/such/dataset"], "no dataset /no/such/dataset in the catalog"),
    "unknown executor": (["run", "{rev}", "--executor", "spark"], "'spark' is not one of 'auto', 'local', 'ray'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_exits_2_with_one_clear_line_and_runs_nothing(case: str, shop: str, root: Path, out: Path, tmp_path: Path) -> None:
    argv, message = BAD_INPUT[case]
    rev = " ".join(revenue_args(shop, out))
    argv = [part for a in argv for part in (a.format(rev=rev, tmp=tmp_path).split(" ") if a == "{rev}" else [a.format(tmp=tmp_path)])]
    result = pond_cli(*argv, "--data-root", str(root))
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    if not case.startswith("unknown executor"):
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert not (root / "jobs").exists() and not out.exists()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["stages"][0].update(npartitions=9), "checksum does not match its content"),
    (lambda d: d.update(version=99), "plan version 99 is not supported by this pond"),
])
def test_a_tampered_or_foreign_plan_file_exits_2_and_runs_nothing(edit, message: str, shop: str, root: Path, out: Path, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    assert pond_cli("plan", *revenue_args(shop, out), "--format", "json", "-o", str(plan_file)).exit_code == 0
    data = json.loads(plan_file.read_text())
    edit(data)
    plan_file.write_text(json.dumps(data))
    result = pond_cli("run", "--plan", str(plan_file), "--data-root", str(root))
    assert result.exit_code == 2
    assert f"error: plan {plan_file}: " in result.stderr and message in result.stderr
    assert not (root / "jobs").exists() and not out.exists()


# -- plan ---------------------------------------------------------------------------------------


def test_plan_as_text_json_mermaid_and_svg(shop: str, out: Path, tmp_path: Path) -> None:
    plan = compile_pipeline(REVENUE, {"ds": DAY, "source_root": shop, "output_root": str(out)})
    nodes, edges = plan_graph(plan)

    text = pond_cli("plan", *revenue_args(shop, out)).stdout
    assert f"plan {plan.fingerprint}, 4 stages" in text
    assert all(f"{s.name} ({s.id})" in text for s in plan.stages)

    assert PhysicalPlan.from_json(pond_cli("plan", *revenue_args(shop, out), "--format", "json").stdout) == plan

    mermaid = pond_cli("plan", *revenue_args(shop, out), "--format", "mermaid").stdout
    assert mermaid.startswith("flowchart TD\n")
    assert all(f"s_{s.id}[\"{s.name}<br/>" in mermaid for s in plan.stages)
    assert f"s_{plan.stages[2].id} --> s_{plan.stages[3].id}" in mermaid
    assert sum(" --> " in line for line in mermaid.splitlines()) == len(edges) == 6
    assert f'sink_{plan.final.id}[("{out}<br/><small>overwrite_partitions, partition_by dt</small>")]' in mermaid

    svg_file = tmp_path / "graphs" / "plan.svg"
    result = pond_cli("plan", *revenue_args(shop, out), "--format", "svg", "-o", str(svg_file))
    assert result.exit_code == 0 and f"wrote svg plan to {svg_file}" in result.stderr
    svg = ET.parse(svg_file).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    groups = svg.findall("s:g", ns)
    assert sorted(g.get("class") for g in groups) == sorted(f"node {n.kind}" for n in nodes)
    assert len(svg.findall("s:line", ns)) == len(edges)
    assert {s.name for s in plan.stages} <= {t.text for g in groups for t in g.findall("s:text", ns)}


def test_a_compiled_plan_file_runs_as_is(shop: str, root: Path, out: Path, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    pond_cli("plan", *revenue_args(shop, out, OTHER_DAY), "--format", "json", "-o", str(plan_file))
    report = run_json("--plan", str(plan_file), "--run-id", "from-file", "--data-root", str(root))
    assert report["pipeline"] == REVENUE and report["params"]["ds"] == OTHER_DAY
    assert written_revenue(str(out), OTHER_DAY) == revenue_by_day(shop, OTHER_DAY)
    refused = pond_cli("run", "--plan", str(plan_file), "-p", "ds=2026-01-01", "--data-root", str(root))
    assert refused.exit_code == 2 and "cannot change a compiled plan" in refused.stderr


# -- runs, datasets, partitions, lineage --------------------------------------------------------


def test_runs_lists_filters_and_shows_one_run(shop: str, root: Path, out: Path) -> None:
    run_json(*revenue_args(shop, out), "--run-id", "good", "--data-root", str(root))
    assert pond_cli("run", *revenue_args(shop, out, NO_DATA_DAY), "--run-id", "bad", "--data-root", str(root)).exit_code == 1

    listed = json.loads(pond_cli("runs", "--data-root", str(root), "--json").stdout)
    assert [r["run_id"] for r in listed] == ["bad", "good"]
    failed = json.loads(pond_cli("runs", "--status", "failed", "--data-root", str(root), "--json").stdout)
    assert [r["run_id"] for r in failed] == ["bad"]
    assert len(json.loads(pond_cli("runs", "--limit", "1", "--data-root", str(root), "--json").stdout)) == 1

    shown = json.loads(pond_cli("runs", "good", "--data-root", str(root), "--json").stdout)
    assert [(s["stage_name"], s["status"]) for s in shown["stages"]] == [
        ("orders_by_customer_id", "success"), ("customers_by_customer_id", "success"), ("join_aggregate_customers_orders", "success"), ("write_daily_revenue", "success")]
    assert shown["stages"][0]["rows"] == 2_000 and shown["stages"][-1]["rows"] == 12

    table = pond_cli("runs", "bad", "--data-root", str(root)).stdout
    assert "status    failed" in table and f"error     no files match {shop}/orders/dt={NO_DATA_DAY}" in table
    listing = pond_cli("runs", "--data-root", str(root)).stdout
    assert "good" in listing and "success" in listing and f"ds={DAY}" in listing
    assert pond_cli("runs", "good", "--status", "failed", "--data-root", str(root)).exit_code == 2


def test_datasets_partitions_and_lineage(shop: str, root: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_json(*revenue_args(shop, out), "--run-id", "r1", "--data-root", str(root))
    run_json(*revenue_args(shop, out, OTHER_DAY), "--run-id", "r2", "--data-root", str(root))

    datasets = [d["uri"] for d in json.loads(pond_cli("datasets", "--data-root", str(root), "--json").stdout)]
    assert str(out) in datasets and "pond://pond_core.examples.daily_revenue/join_aggregate_customers_orders" in datasets

    parts = json.loads(pond_cli("partitions", str(out), "--data-root", str(root), "--json").stdout)
    assert [(p["key"], p["run_id"]) for p in parts] == [(f"dt={DAY}", "r1"), (f"dt={OTHER_DAY}", "r2")]
    monkeypatch.chdir(out.parent)  # a relative path names the same dataset
    assert "dt=2026-11-21" in pond_cli("partitions", out.name, "--data-root", str(root)).stdout

    lineage = json.loads(pond_cli("lineage", str(out), "--data-root", str(root), "--json").stdout)
    assert {e["uri"] for e in lineage["upstream"]} == {"pond://pond_core.examples.daily_revenue/join_aggregate_customers_orders"}
    assert {e["run_id"] for e in lineage["upstream"]} == {"r1", "r2"} and lineage["downstream"] == []
    source = f"{shop}/customers.parquet"
    down = json.loads(pond_cli("lineage", source, "--data-root", str(root), "--json").stdout)["downstream"]
    assert {e["uri"] for e in down} == {"pond://pond_core.examples.daily_revenue/customers_by_customer_id"}
    text = pond_cli("lineage", str(out), "--data-root", str(root)).stdout
    assert f"upstream of {out}" in text and f"downstream of {out}" in text
    assert "join_aggregate_customers_orders" in text  # the STAGE column names stages

    tree = pond_cli("lineage", str(out), "--format", "tree", "--direction", "upstream", "--data-root", str(root)).stdout
    assert "<- [write_daily_revenue, 48 rows] pond://pond_core.examples.daily_revenue/join_aggregate_customers_orders" in tree
    assert "<- [join_aggregate_customers_orders, 2000 rows] pond://pond_core.examples.daily_revenue/orders_by_customer_id" in tree
    assert f"] {shop}/customers.parquet" in tree  # the chain reaches the source files
    chain = json.loads(pond_cli("lineage", str(out), "--depth", "1", "--direction", "upstream", "--json", "--data-root", str(root)).stdout)
    assert [(c["uri"], c["stage"], c["children"]) for c in chain["upstream"]] == [
        ("pond://pond_core.examples.daily_revenue/join_aggregate_customers_orders", "write_daily_revenue", [])]
    graph = pond_cli("lineage", source, "--format", "mermaid", "--direction", "downstream", "--data-root", str(root)).stdout
    assert graph.splitlines()[1] == "flowchart LR" and "-->|customers_by_customer_id|" in graph and "-->|write_daily_revenue|" in graph


# -- clean --------------------------------------------------------------------------------------


def test_clean_deletes_old_intermediates_only(shop: str, root: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_json(*revenue_args(shop, out), "--run-id", "old", "--data-root", str(root))
    job = root / "jobs" / "old"
    assert (job / "staging").is_dir()
    expected = written_revenue(str(out), DAY)

    fresh = json.loads(pond_cli("clean", "--data-root", str(root), "--json").stdout)
    assert fresh["runs"] == []  # default retention: 7 days
    dry = json.loads(pond_cli("clean", "--older-than", "0", "--dry-run", "--data-root", str(root), "--json").stdout)
    assert [(r["run_id"], r["action"]) for r in dry["runs"]] == [("old", "would delete")] and dry["runs"][0]["bytes"] > 0
    assert job.is_dir()

    monkeypatch.setenv("POND_RETENTION", "0s")
    done = json.loads(pond_cli("clean", "--data-root", str(root), "--json").stdout)
    assert [(r["run_id"], r["action"]) for r in done["runs"]] == [("old", "deleted")]
    assert not job.exists()
    assert written_revenue(str(out), DAY) == expected  # the sink dataset is never touched
    with catalog_of(root) as catalog:
        assert catalog.get_run("old")["status"] == "success"
        assert [p["key"] for p in catalog.list_partitions(str(out))] == [f"dt={DAY}"]

    rerun = run_json(*revenue_args(shop, out), "--run-id", "old", "--data-root", str(root))
    assert [s["state"] for s in rerun["stages"]] == ["ran"] * 4  # a cleaned run starts over

    forgotten = pond_cli("clean", "--run-id", "old", "--forget", "--data-root", str(root))
    assert forgotten.exit_code == 0 and "deleted, forgotten" in forgotten.stdout
    with catalog_of(root) as catalog:
        assert catalog.get_run("old") is None
        assert [p["key"] for p in catalog.list_partitions(str(out))] == [f"dt={DAY}"]


@pytest.mark.parametrize(("args", "message"), [
    (["--older-than", "a week"], "--older-than 'a week' is not a duration"),
    (["--run-id", "nope"], "no run nope in the catalog"),
    (["--run-id", "x", "--older-than", "1d"], "give --run-id or --older-than, not both"),
])
def test_clean_rejects_bad_input(args: list[str], message: str, root: Path) -> None:
    result = pond_cli("clean", *args, "--data-root", str(root))
    assert result.exit_code == 2 and message in result.stderr


def test_a_healthy_runs_stage_table_has_no_fault_columns(shop: str, root: Path, out: Path) -> None:
    run_json(*revenue_args(shop, out), "--run-id", "narrow", "--data-root", str(root))
    shown = pond_cli("runs", "narrow", "--data-root", str(root)).stdout
    header = next(line for line in shown.splitlines() if "STAGE" in line)
    assert "ROWS" in header and "RETRIES" not in header and "ERROR" not in header
    assert max(len(line) for line in shown.splitlines() if "│" in line) <= 100
