"""`pond backfill` of a daily Iceberg pipeline: three days, run twice (then forced), leave
exactly three days with the same rows, read by DuckDB's iceberg extension and by pyiceberg."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pond_core.cli import pond
from tests.support.iceberg import catalog, duckdb_rows, pyiceberg_rows


def backfill(tmp_path, *extra: str) -> dict:
    args = [
        "backfill", "tests.tables_pipelines:daily_events", "--from", "2026-11-20", "--to", "2026-11-22",
        "-p", f"catalog_uri=sqlite:///{tmp_path}/iceberg.db", "-p", f"warehouse=file://{tmp_path}/warehouse",
        "--data-root", str(tmp_path / "root"), "--executor", "local", "--json", *extra,
    ]
    result = CliRunner().invoke(pond, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_backfill_twice_leaves_exactly_three_days(tmp_path):
    first = backfill(tmp_path)
    assert (first["success"], first["skipped"]) == (3, 0)
    props = {"uri": f"sqlite:///{tmp_path}/iceberg.db", "warehouse": f"file://{tmp_path}/warehouse"}
    table = catalog(props).load_table("db.events")
    rows = pyiceberg_rows(table)
    assert len(rows) == 30 and len({r[1] for r in rows}) == 3
    again = backfill(tmp_path)
    assert (again["success"], again["skipped"]) == (0, 3)  # the catalog knows the table's days
    forced = backfill(tmp_path, "--force")
    assert forced["success"] == 3
    table = catalog(props).load_table("db.events")
    assert len(table.snapshots()) == 6
    assert pyiceberg_rows(table) == duckdb_rows(table.metadata_location) == rows
