"""Checks before publish shown as checks: a `<stage>_checks` task after the stage that writes,
succeeding with a warning for `warn=` checks and failing without retry, naming the check, for
error-level ones; the check's label says what it checks."""

from __future__ import annotations

import os

import pytest
from airflow_rig import asset_events, get_dag, run_dag, task_states, xcom

DAY = "2026-11-20"


def tasks(dag_id: str) -> tuple[str, str]:
    """(the stage task that writes, its checks task)."""
    (checks,) = [t for t in get_dag(dag_id).tasks if t.task_id.endswith("_checks")]
    (write,) = checks.upstream_task_ids
    return write, checks.task_id


@pytest.fixture(scope="module")
def shop(airflow_db, rig):
    from _pond_airflow_examples import ensure_shop_day

    return ensure_shop_day(DAY, str(rig["examples"] / "shop"))


def test_the_checks_task_follows_the_write_and_lists_its_checks():
    write, checks = tasks("pond_test_checks_warn")
    assert write.startswith("totals.") and checks == write + "_checks"
    task = get_dag("pond_test_checks_warn").get_task(checks)
    assert task.trigger_rule == "all_done" and task.retries == 0
    assert "`row_count at least 1`" in task.doc_md and "`few orders per customer`" in task.doc_md


def test_a_warn_check_publishes_and_warns_in_its_own_task(shop, rig, capfd):
    capfd.readouterr()
    run = run_dag("pond_test_checks_warn", DAY)
    write, checks = tasks("pond_test_checks_warn")
    assert run.state == "success"
    states = task_states(run)
    assert states[write] == ("success", 1) and states[checks] == ("success", 1)
    assert xcom(run, checks) == {
        "summary": "1 passed; warned: few orders per customer", "passed": ["row_count at least 1"], "warned": ["few orders per customer"],
    }
    assert "checks warned: few orders per customer; the output was published" in capfd.readouterr().out
    (event,) = asset_events("file://" + str(rig["tmp"] / "outputs" / "pond_test_checks_warn"))
    assert event["extra"]["checks"] == "1 passed; warned: few orders per customer"


def test_a_failed_check_fails_both_tasks_without_retry_and_names_the_check(shop, rig, capfd):
    capfd.readouterr()
    run = run_dag("pond_test_checks_fail", DAY)
    write, checks = tasks("pond_test_checks_fail")
    assert run.state == "failed"
    states = task_states(run)
    assert states[write] == ("failed", 1) and states[checks] == ("failed", 1)  # retries=2: a check failure is final
    log = capfd.readouterr().out
    assert "checks failed: few orders per customer; nothing was published (stage" in log
    assert "checks failed: few orders per customer; nothing was published (1 passed; failed: few orders per customer)" in log
    assert not os.path.exists(rig["tmp"] / "outputs" / "pond_test_checks_fail")
    assert asset_events("file://" + str(rig["tmp"] / "outputs" / "pond_test_checks_fail")) == []


def test_row_count_labels_say_what_they_check():
    from pond_core.checks import row_count

    assert row_count(min=1).name == "row_count at least 1"
    assert row_count(max=5).name == "row_count at most 5"
    assert row_count(min=1, max=5).name == "row_count between 1 and 5"
