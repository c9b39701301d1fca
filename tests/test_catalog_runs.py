"""Runs and stage runs in the catalog, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from pond_core.catalog import Catalog
from pond_core.errors import PondConfigError


@pytest.fixture
def catalog(catalog_db_url: str):
    with Catalog(catalog_db_url) as cat:
        yield cat


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp)


def test_a_run_goes_from_running_to_success_with_its_parameters_and_timings(catalog):
    catalog.start_run("r1", "daily", {"date": "2026-11-20", "n": 3}, "fp1", "local")
    running = catalog.get_run("r1")
    assert running["status"] == "running" and running["finished_at"] is None
    catalog.finish_run("r1", "success")

    run = catalog.get_run("r1")
    assert {
        k: run[k] for k in ("run_id", "pipeline", "params", "plan_fingerprint", "executor")
    } == {
        "run_id": "r1",
        "pipeline": "daily",
        "params": {"date": "2026-11-20", "n": 3},
        "plan_fingerprint": "fp1",
        "executor": "local",
    }
    assert (run["status"], run["attempts"], run["error"], run["stages"]) == ("success", 1, None, [])
    assert _parse(run["finished_at"]) >= _parse(run["started_at"]) == _parse(run["created_at"])
    assert run["duration_s"] == pytest.approx(
        (_parse(run["finished_at"]) - _parse(run["started_at"])).total_seconds()
    )
    assert _parse(run["started_at"]).utcoffset() == dt.timedelta(0)
    assert json.loads(json.dumps(run)) == run


def test_a_rerun_of_the_same_run_id_is_running_again_with_one_more_attempt(catalog):
    catalog.start_run("r1", "daily", {"n": 1}, "fp1", "local")
    catalog.finish_run("r1", "failed", error="worker lost")
    first = catalog.get_run("r1")
    assert (first["status"], first["error"]) == ("failed", "worker lost")

    catalog.start_run("r1", "daily", {"n": 1}, None, "ray")
    again = catalog.get_run("r1")
    assert (again["status"], again["attempts"], again["error"], again["finished_at"]) == (
        "running",
        2,
        None,
        None,
    )
    assert again["created_at"] == first["created_at"]
    assert _parse(again["started_at"]) >= _parse(first["started_at"])
    assert (again["executor"], again["plan_fingerprint"]) == ("ray", "fp1")
    assert len(catalog.list_runs()) == 1


def test_starting_a_run_that_is_still_running_joins_it(catalog):
    catalog.start_run("r1", "daily", {"n": 1}, "fp1", "local")
    first = catalog.get_run("r1")
    time.sleep(0.01)
    catalog.start_run("r1", "daily", {"n": 1}, "fp1", "local")  # e.g. the next stage's task
    again = catalog.get_run("r1")
    assert (again["status"], again["attempts"], again["started_at"]) == (
        "running",
        1,
        first["started_at"],
    )


def test_reusing_a_run_id_for_another_pipeline_or_plan_is_refused(catalog):
    catalog.start_run("r1", "daily", {}, "fp1", "local")
    with pytest.raises(PondConfigError, match="run 'r1' belongs to pipeline 'daily', not 'hourly'"):
        catalog.start_run("r1", "hourly", {}, "fp1", "local")
    with pytest.raises(PondConfigError, match="started with plan fp1, not fp2.*new run_id"):
        catalog.start_run("r1", "daily", {}, "fp2", "local")
    assert catalog.get_run("r1")["attempts"] == 1


def test_parameters_that_are_not_json_are_kept_as_text(catalog):
    catalog.start_run("r1", "daily", {"day": dt.date(2026, 11, 20)}, None, "local")
    assert catalog.get_run("r1")["params"] == {"day": "2026-11-20"}


def test_stage_attempts_count_up_and_counters_add_up_over_attempts(catalog):
    catalog.start_run("r1", "daily", {}, None, "local")
    assert catalog.start_stage("r1", "s1", "scan", 4) == 1
    catalog.finish_stage(
        "r1",
        "s1",
        "failed",
        rows=None,
        bytes=None,
        files=None,
        duration_s=0.5,
        result=None,
        error="PondTransientError: worker died",
        task_retries=2,
        node_failures=1,
    )
    assert catalog.stage_result("r1", "s1") is None
    assert catalog.start_stage("r1", "s1", "scan", 4) == 2
    catalog.finish_stage(
        "r1",
        "s1",
        "success",
        rows=100,
        bytes=2048,
        files=4,
        duration_s=1.25,
        result={"path": "/out", "rows": 100},
        error=None,
        task_retries=1,
        speculative_attempts=3,
    )

    stage = catalog.get_run("r1")["stages"][0]
    assert {k: stage[k] for k in stage if k not in ("started_at", "finished_at", "heartbeat_at")} == {
        "run_id": "r1",
        "stage_id": "s1",
        "stage_name": "scan",
        "npartitions": 4,
        "status": "success",
        "attempts": 2,
        "task_retries": 3,
        "node_failures": 1,
        "speculative_attempts": 3,
        "rows": 100,
        "bytes": 2048,
        "files": 4,
        "duration_s": 1.25,
        "result": {"path": "/out", "rows": 100},
        "error": None,
        "stale": False,
    }
    assert catalog.stage_result("r1", "s1") == {"path": "/out", "rows": 100}


def test_restarting_a_finished_stage_forgets_its_old_result(catalog):
    catalog.start_run("r1", "daily", {}, None, "local")
    catalog.start_stage("r1", "s1", "scan", 2)
    catalog.finish_stage(
        "r1",
        "s1",
        "success",
        rows=5,
        bytes=10,
        files=1,
        duration_s=0.1,
        result={"rows": 5},
        error=None,
    )
    assert catalog.start_stage("r1", "s1", "scan", 3) == 2

    stage = catalog.get_run("r1")["stages"][0]
    assert (
        stage["status"],
        stage["npartitions"],
        stage["rows"],
        stage["result"],
        stage["finished_at"],
    ) == (
        "running",
        3,
        None,
        None,
        None,
    )
    assert catalog.stage_result("r1", "s1") is None
    assert catalog.stage_result("r1", "unknown") is None
    assert catalog.stage_result("unknown", "s1") is None


def test_stage_runs_are_listed_in_start_order(catalog):
    catalog.start_run("r1", "daily", {}, None, "local")
    for stage in ("b", "a", "c"):
        catalog.start_stage("r1", stage, f"stage {stage}", 1)
    assert [s["stage_id"] for s in catalog.get_run("r1")["stages"]] == ["b", "a", "c"]


def test_calls_out_of_order_or_with_bad_values_are_refused_with_the_reason(catalog):
    with pytest.raises(PondConfigError, match="run 'nope' was never started"):
        catalog.start_stage("nope", "s1", "scan", 1)
    with pytest.raises(PondConfigError, match="run 'nope' was never started"):
        catalog.finish_run("nope", "success")
    catalog.start_run("r1", "daily", {}, None, "local")
    with pytest.raises(PondConfigError, match="stage 's9' of run 'r1' was never started"):
        catalog.finish_stage(
            "r1", "s9", "success", rows=1, bytes=1, files=1, duration_s=0.1, result={}, error=None
        )
    with pytest.raises(PondConfigError, match="status must be one of"):
        catalog.finish_run("r1", "done")
    with pytest.raises(PondConfigError, match="rows must be a non-negative integer"):
        catalog.start_stage("r1", "s1", "scan", 1)
        catalog.finish_stage(
            "r1", "s1", "success", rows=-1, bytes=1, files=1, duration_s=0.1, result={}, error=None
        )
    with pytest.raises(PondConfigError, match="run_id must be a non-empty string of at most 255"):
        catalog.start_run("", "daily", {}, None, "local")
    with pytest.raises(PondConfigError, match="stage_id must be a non-empty string of at most 128"):
        catalog.start_stage("r1", "s" * 129, "scan", 1)
    assert catalog.get_run("nope") is None


def test_list_runs_shows_the_newest_first_and_filters_by_pipeline_and_status(catalog):
    for i, pipeline in enumerate(["a", "b", "a", "b", "a"]):
        catalog.start_run(f"r{i}", pipeline, {"i": i}, None, "local")
    catalog.finish_run("r0", "success")
    catalog.finish_run("r2", "failed", "boom")

    assert [r["run_id"] for r in catalog.list_runs()] == ["r4", "r3", "r2", "r1", "r0"]
    assert [r["run_id"] for r in catalog.list_runs(limit=2)] == ["r4", "r3"]
    assert [r["run_id"] for r in catalog.list_runs(pipeline="a")] == ["r4", "r2", "r0"]
    assert [r["run_id"] for r in catalog.list_runs(pipeline="a", status="running")] == ["r4"]
    assert [(r["run_id"], r["error"]) for r in catalog.list_runs(status="failed")] == [
        ("r2", "boom")
    ]
    assert "stages" not in catalog.list_runs()[0]


def test_retention_finds_old_runs_and_deleting_one_takes_its_stages_and_lineage(catalog):
    catalog.start_run("old", "daily", {}, None, "local")
    catalog.start_stage("old", "s1", "scan", 1)
    catalog.record_lineage("old", "s1", [{"uri": "/in"}], [{"uri": "/out"}], "select 1")
    catalog.record_partitions("/out", [{"key": "", "files": 1, "rows": 1, "bytes": 8}], "old", "s1")
    catalog.finish_run("old", "success")
    time.sleep(0.05)
    cutoff = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.05)
    catalog.start_run("new", "daily", {}, None, "local")

    assert catalog.runs_older_than(cutoff) == ["old"]
    assert catalog.runs_older_than(cutoff.isoformat()) == ["old"]
    assert catalog.runs_older_than(cutoff.timestamp()) == ["old"]
    assert catalog.runs_older_than(cutoff.replace(tzinfo=None)) == ["old"]  # naive means UTC
    assert catalog.runs_older_than(time.time() + 60) == ["old", "new"]

    assert catalog.delete_run("old") is True
    assert catalog.delete_run("old") is False
    assert catalog.get_run("old") is None
    assert catalog.run_lineage("old") == []
    assert catalog.lineage("/out") == {"upstream": [], "downstream": []}
    assert [p["run_id"] for p in catalog.list_partitions("/out")] == [
        "old"
    ]  # the data is still there
    assert [r["run_id"] for r in catalog.list_runs()] == ["new"]


def test_a_bad_timestamp_is_refused(catalog):
    with pytest.raises(PondConfigError, match="timestamp 'yesterday' is not an ISO 8601 timestamp"):
        catalog.runs_older_than("yesterday")


def test_a_running_stage_without_heartbeats_goes_stale_and_a_beat_revives_it(catalog, monkeypatch):
    monkeypatch.setenv("POND_HEARTBEAT_SECONDS", "0.2")  # stale after 3 intervals: 0.6 s
    catalog.start_run("r1", "daily", {}, None, "local")
    catalog.start_stage("r1", "s1", "scan", 2)
    run = catalog.get_run("r1")
    assert (run["stale"], run["stages"][0]["stale"]) == (False, False)
    assert run["heartbeat_at"] == run["stages"][0]["heartbeat_at"] == run["stages"][0]["started_at"]

    time.sleep(1.0)  # its driver stopped beating
    run = catalog.get_run("r1")
    assert (run["status"], run["stale"], run["stages"][0]["status"], run["stages"][0]["stale"]) == ("running", True, "running", True)
    assert [(r["run_id"], r["stale"]) for r in catalog.list_runs()] == [("r1", True)]

    catalog.heartbeat("r1", "s1")
    run = catalog.get_run("r1")
    assert _parse(run["stages"][0]["heartbeat_at"]) > _parse(run["stages"][0]["started_at"])
    assert (run["stale"], run["stages"][0]["stale"], catalog.list_runs()[0]["stale"]) == (False, False, False)

    catalog.finish_stage("r1", "s1", "success", rows=1, bytes=1, files=1, duration_s=0.5)
    catalog.heartbeat("r1", "s1")  # a late beat does not touch a finished stage
    time.sleep(1.0)
    run = catalog.get_run("r1")
    assert (run["stale"], run["stages"][0]["stale"]) == (False, False)  # finished, and between stages: no beat expected
    assert run["heartbeat_at"] is None  # a run's heartbeat is its running stages' latest


def test_a_bad_heartbeat_interval_is_refused_naming_the_setting(catalog, monkeypatch):
    monkeypatch.setenv("POND_HEARTBEAT_SECONDS", "soon")
    catalog.start_run("r1", "daily", {}, None, "local")
    with pytest.raises(PondConfigError, match="POND_HEARTBEAT_SECONDS must be a positive number of seconds, not 'soon'"):
        catalog.get_run("r1")


def test_a_runs_stages_are_listed_in_plan_order_whatever_order_they_started_in(catalog):
    catalog.start_run("r-order", "daily", {}, None, "local")
    catalog.start_stage("r-order", "s-b", "customers_by_id", 4, position=1)
    catalog.start_stage("r-order", "s-a", "orders_by_customer", 4, position=0)
    catalog.start_stage("r-order", "s-c", "unpositioned", 1)
    assert [s["stage_name"] for s in catalog.get_run("r-order")["stages"]] == ["orders_by_customer", "customers_by_id", "unpositioned"]
