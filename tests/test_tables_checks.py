"""Checks before publish: run on the staged output; a failure publishes nothing and says what
failed; warn-only checks record; results reach the stage result and the catalog."""

from __future__ import annotations

import duckdb
import pytest

from pond_core.catalog import Catalog
from pond_core.checks import CheckKind, PondCheckError, accepted_values, expression, not_null, query, row_count, unique
from pond_core.errors import PondConfigError, is_retryable
from pond_core.pipeline import compile_pipeline
from pond_core.runner import run_plan
from tests.support.iceberg import catalog, duckdb_rows, pyiceberg_rows, sqlite_catalog

DATA = "SELECT i AS id, i % 3 AS k, CASE WHEN i = 7 THEN NULL ELSE 'n' || i END AS name, DATE '2026-11-20' + (i % 2)::INT AS dt FROM range(10) t(i)"


def dataset(path) -> list[tuple]:
    return duckdb.sql(f"SELECT id FROM read_parquet('{path}/**/*.parquet') ORDER BY id").fetchall()


def test_every_kind_passes_on_good_data_and_results_are_returned(local_sp, tmp_path):
    checks = [
        row_count(min=10, max=10), not_null("id", "dt"), unique("id"), unique("k", "id"), accepted_values("k", [0, 1, 2]),
        expression("id BETWEEN 0 AND 9"), query("SELECT * FROM staged WHERE id > 100"),
    ]
    result = local_sp.sql(DATA).write_parquet(str(tmp_path / "out"), partition_by="dt", checks=checks)
    assert [(c["name"], c["passed"]) for c in result["checks"]] == [
        ("row_count between 10 and 10", True), ("not_null(id, dt)", True), ("unique(id)", True), ("unique(k, id)", True),
        ("accepted_values(k)", True), ("expression: id BETWEEN 0 AND 9", True), ("query: SELECT * FROM staged WHERE id > 100", True),
    ]
    assert len(dataset(tmp_path / "out")) == 10


@pytest.mark.parametrize(
    "check, failing, sample",
    [
        (not_null("name"), 1, "7 | 1 | NULL | 2026-11-21"),
        (unique("k"), 3, "0 | 4"),
        (accepted_values("k", [0, 1]), 3, "2 | 2 | n2"),
        (expression("name LIKE 'n%'"), 1, "7 | 1 | NULL"),  # NULL is not true: the row fails
        (query("SELECT dt, count(*) AS n FROM staged GROUP BY dt HAVING count(*) < 6"), 2, "2026-11-20 | 5"),
        (row_count(max=5), 10, None),
    ],
    ids=lambda v: v.kind.value if hasattr(v, "kind") else None,
)
def test_a_failing_check_publishes_nothing_and_shows_what_failed(local_sp, tmp_path, check, failing, sample):
    out = tmp_path / "out"
    local_sp.sql("SELECT 100 AS id, 0 AS k, 'old' AS name, DATE '2026-11-20' AS dt").write_parquet(str(out), partition_by="dt")
    with pytest.raises(PondCheckError) as caught:
        local_sp.sql(DATA).write_parquet(str(out), partition_by="dt", mode="overwrite", checks=[check, row_count(min=1)])
    error = caught.value
    assert not is_retryable(error)
    assert "1 check(s) failed" in str(error) and "nothing was published" in str(error)
    assert f"{check.name}" in str(error) and "FAILED" in str(error)
    failed = [r for r in error.results if not r.passed]
    assert [(r.name, r.failing) for r in failed] == [(check.name, failing)]
    if sample:
        assert sample in str(error)
    assert dataset(out) == [(100,)]  # the previous contents
    assert not list(tmp_path.glob(".out.pond-staging-*"))


def test_warn_only_checks_record_and_publish(local_sp, tmp_path):
    result = local_sp.sql(DATA).write_parquet(str(tmp_path / "out"), checks=[not_null("name", warn=True), unique("k", warn=True)])
    assert [(c["name"], c["severity"], c["passed"], c["failing"]) for c in result["checks"]] == [
        ("not_null(name)", "warn", False, 1), ("unique(k)", "warn", False, 3)]
    assert len(dataset(tmp_path / "out")) == 10


def test_bad_checks_are_clear_errors(local_sp, tmp_path):
    with pytest.raises(PondConfigError, match="accepted_values takes one column"):
        accepted_values("k", [])
    with pytest.raises(PondConfigError, match="row_count needs min= or max="):
        row_count()
    with pytest.raises(PondConfigError, match="two checks share a name"):
        local_sp.sql(DATA).sink_parquet(str(tmp_path / "x"), checks=[unique("k"), unique("k")])
    with pytest.raises(PondConfigError, match="check 'not_null\\(nope\\)' cannot run: .*nope"):
        local_sp.sql(DATA).write_parquet(str(tmp_path / "x"), checks=[not_null("nope")])
    assert not (tmp_path / "x").exists()


def test_checks_round_trip_through_the_plan(tmp_path):
    from pond_core.specs.sink import SinkSpec

    spec = SinkSpec(str(tmp_path / "x"), checks=(accepted_values("k", [1, "a"], warn=True), query("SELECT 1")))
    again = SinkSpec.from_dict(spec.to_dict())
    assert again == spec and again.checks[0].kind is CheckKind.ACCEPTED_VALUES
    assert "checks" not in SinkSpec(str(tmp_path / "y")).to_dict()  # a sink without checks keeps its definition


def test_daily_iceberg_pipeline_a_failing_day_keeps_its_previous_contents(tmp_path):
    props = sqlite_catalog(tmp_path)
    url = f"sqlite:///{tmp_path}/pond-catalog.sqlite"
    days = ["2026-11-20", "2026-11-21", "2026-11-22"]

    def run(ds: str, run_id: str, **params):
        plan = compile_pipeline(
            "tests.tables_pipelines:daily_events",
            {"ds": ds, "catalog_uri": props["uri"], "warehouse": props["warehouse"], **params},
            data_root=str(tmp_path / "root"),
        )
        with Catalog(url) as cat:
            return run_plan(plan, run_id, settings={"data_root": str(tmp_path / "root"), "executor": "local"}, catalog=cat)

    for ds in days:
        run(ds, f"v1-{ds}")
    table = catalog(props).load_table("db.events")
    before = table.metadata_location
    good = duckdb_rows(before)
    with pytest.raises(PondCheckError, match="amount is not negative"):
        run(days[1], "v2-bad", version="v2", bad=True)
    table = catalog(props).load_table("db.events")
    assert table.metadata_location == before  # day 2 keeps its previous contents
    assert duckdb_rows(table.metadata_location) == pyiceberg_rows(table) == good
    with Catalog(url) as cat:
        bad = cat.get_run("v2-bad")
        ok = cat.get_run(f"v1-{days[0]}")
    (stage,) = [s for s in bad["stages"] if s["status"] == "failed"]
    assert "amount is not negative" in stage["error"] and "sample rows" in stage["error"]
    (written,) = ok["stages"]
    assert [c["name"] for c in written["result"]["checks"]] == [
        "row_count between 1 and 1000", "not_null(id, dt)", "unique(dt, id)", "accepted_values(channel)", "amount is not negative"]
    # The same day, good again, replaces it.
    run(days[1], "v2-good", version="v2")
    names = sorted({r[2].split("-")[0] for r in duckdb_rows(catalog(props).load_table("db.events").metadata_location) if r[1].isoformat() == days[1]})
    assert names == ["v2"]
