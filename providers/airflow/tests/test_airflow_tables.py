"""A daily Iceberg table under dag.test(): three days written, then a day whose checks fail:
the task fails without retry, the check table is in the task log and in lineage, and the
table keeps that day's previous contents."""

from __future__ import annotations

import os

from airflow_rig import lineage_events, run_dag, task_states

DAYS = ["2026-11-20", "2026-11-21", "2026-11-22"]


def table(rig):
    from pyiceberg.catalog import load_catalog

    root = rig["tmp"] / "outputs"
    return load_catalog("pond", uri=f"sqlite:///{root / 'iceberg.db'}", warehouse=f"file://{root / 'warehouse'}").load_table("db.events")


def test_daily_iceberg_table_and_a_failing_check(airflow_db, rig, capfd):
    os.makedirs(rig["tmp"] / "outputs", exist_ok=True)
    for day in DAYS:
        run = run_dag("pond_test_iceberg_daily", day)
        assert run.state == "success"
    (write_task,) = [t for t in task_states(run) if t.startswith("events.") and not t.endswith("_checks")]
    before = table(rig)
    rows = before.scan().to_arrow()
    assert rows.num_rows == 30 and sorted(set(rows.column("dt").to_pylist()))[0].isoformat() == DAYS[0]

    capfd.readouterr()
    bad = run_dag("pond_test_iceberg_bad_day", DAYS[1])
    assert bad.state == "failed"
    assert task_states(bad)[write_task] == ("failed", 1)  # retries=2, but a failed check is final
    assert task_states(bad)[f"{write_task}_checks"] == ("failed", 1)  # the check's own result in the grid
    after = table(rig)
    assert after.metadata_location == before.metadata_location  # day 2's previous contents stay current
    log = capfd.readouterr().out  # dag.test() prints the task log
    assert "checks failed, nothing was published" in log and "iceberg://pond/db.events" in log
    assert "amount is not negative        error     FAILED  2" in log and "sample rows failing amount is not negative" in log
    failed = [e for e in lineage_events(f"pond_test_iceberg_bad_day.{write_task}") if e["eventType"] == "FAIL"]
    assert failed, "no FAIL lineage event"
    (output,) = failed[-1]["outputs"]
    assertions = {a["name"]: a["success"] for a in output["facets"]["dataQualityAssertions"]["assertions"]}
    assert assertions["amount is not negative"] is False and assertions["not_null(id, dt)"] is True
    ok = [e for e in lineage_events(f"pond_test_iceberg_daily.{write_task}") if e["eventType"] == "COMPLETE"]
    assert all(a["success"] for a in ok[-1]["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"])


def test_sql_operator_writes_an_iceberg_table_with_checks(airflow_db, rig):
    import duckdb
    from pyiceberg.catalog import load_catalog

    root = rig["tmp"] / "outputs"
    os.makedirs(root, exist_ok=True)
    duckdb.sql(f"COPY (SELECT range AS i FROM range(30)) TO '{root / 'sql_src.parquet'}' (FORMAT parquet)")
    for _ in range(2):  # a rerun of the day replaces it
        run = run_dag("pond_test_iceberg_sql", DAYS[0])
        assert run.state == "success"
    table = load_catalog("pond", uri=f"sqlite:///{root / 'iceberg.db'}", warehouse=f"file://{root / 'warehouse'}").load_table("db.by_channel")
    assert sorted(table.scan().to_arrow().column("n").to_pylist()) == [10, 10, 10]
    complete = [e for e in lineage_events("pond_test_iceberg_sql.events_by_channel") if e["eventType"] == "COMPLETE"]
    (output,) = complete[-1]["outputs"]
    assert output["namespace"] == "iceberg://pond" and output["name"] == "db.by_channel"
    assert [a["name"] for a in output["facets"]["dataQualityAssertions"]["assertions"]] == ["not_null(dt)", "unique(dt, channel)"]
