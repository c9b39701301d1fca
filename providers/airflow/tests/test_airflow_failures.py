"""Failures under dag.test(): a transient one retried (that stage only), a data error not retried."""

from __future__ import annotations

import os

import pytest
from airflow_rig import lineage_events, read_dataset, run_dag, task_states

DAY = "2026-11-22"


@pytest.fixture(scope="module")
def shop(airflow_db, rig):
    from _pond_airflow_examples import ensure_shop_day

    ensure_shop_day(DAY, str(rig["examples"] / "shop"))
    return str(rig["examples"] / "shop")


def test_transient_failure_retries_exactly_the_failed_stage(shop, rig):
    marker = rig["tmp"] / "outputs" / f"flaky-{DAY}.marker"
    os.makedirs(marker.parent, exist_ok=True)
    run = run_dag("pond_test_flaky", DAY)
    assert run.state == "success"
    assert marker.exists()  # the injected failure did happen
    assert task_states(run) == {
        "flaky_totals.orders_by_customer_id": ("success", 1),
        "flaky_totals.write_flaky_totals": ("success", 2),
    }
    rows = read_dataset(str(rig["tmp"] / "outputs" / "flaky_totals"), "count(*), sum(orders)")
    assert rows == [(2000, 20_000)]  # every customer once, every order once: nothing lost or doubled

    from pond_airflow.hooks.pond import PondHook
    from pond_airflow.runs import pond_run_id

    pond_run = PondHook().catalog().get_run(pond_run_id({"dag_run": run}, "flaky_totals"))
    attempts = {s["stage_name"]: s["attempts"] for s in pond_run["stages"]}
    assert pond_run["status"] == "success"
    assert attempts == {"orders_by_customer_id": 1, "write_flaky_totals": 2}  # the retry re-ran only the failed stage
    failed = [e for e in lineage_events("pond_test_flaky.flaky_totals.write_flaky_totals") if e["eventType"] == "FAIL"]
    assert failed and "injected" in failed[0]["run"]["facets"]["errorMessage"]["message"]


def test_data_error_fails_without_retry(shop, rig):
    run = run_dag("pond_test_bad_data", DAY)
    assert run.state == "failed"
    states = task_states(run)
    assert states["bad_totals.orders_by_customer_id"] == ("success", 1)
    assert states["bad_totals.write_bad_totals"] == ("failed", 1)  # retries=3, but a data error is final
    assert not (rig["tmp"] / "outputs" / "bad_totals").exists()
    from pond_airflow.hooks.pond import PondHook
    from pond_airflow.runs import pond_run_id

    pond_run = PondHook().catalog().get_run(pond_run_id({"dag_run": run}, "bad_totals"))
    assert pond_run["status"] == "failed"
    assert "PondDataError" in pond_run["error"] or "must not be negative" in pond_run["error"]
