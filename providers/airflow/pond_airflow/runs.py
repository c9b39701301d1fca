"""How an Airflow task instance maps onto a pond run, and what it hands back to Airflow."""

from __future__ import annotations

import hashlib
import re
from typing import Any, NoReturn

from airflow.sdk.exceptions import AirflowFailException

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_LISTED_PARTITIONS = 50
MAX_RUN_ID = 200  # pond_core.api.check_run_id's limit


_AIRFLOW_RUN_ID = re.compile(r"^([a-z_]+)__(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?\+00:00$")


def compact_run_id(run_id: str) -> str:
    """Airflow's own run ids, shorter: `backfill__2026-11-02T00:00:00+00:00` ->
    `backfill__20261102T000000` (a manual run keeps its microseconds); others unchanged."""
    m = _AIRFLOW_RUN_ID.match(run_id)
    if not m:
        return run_id
    kind, y, mo, d, h, mi, sec, frac = m.groups()
    return f"{kind}__{y}{mo}{d}T{h}{mi}{sec}{frac or ''}"


def pond_run_id(context: Any, scope: str) -> str:
    """`<dag_id>__<run_id>__<scope>`, safe as a directory name, with Airflow's own run ids
    compacted (`pond_daily_revenue__backfill__20261102T000000__daily_revenue`).

    Every task of one DAG run (and every retry of a task) gets the same pond run, so a retry
    finds the stages its upstream tasks committed. Characters outside [A-Za-z0-9._-] become
    `_`, and a short digest of the raw id keeps two raw ids from meeting on one safe id.
    """
    dag_run = context["dag_run"]
    raw = f"{dag_run.dag_id}__{compact_run_id(dag_run.run_id)}__{scope}"
    safe = _UNSAFE.sub("_", raw).lstrip("._-") or "run"
    if safe != raw or len(safe) > MAX_RUN_ID:
        # pond's run ids are at most 200 characters (a dag id and a run id may be 250 each)
        safe = f"{safe[: MAX_RUN_ID - 9]}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}"
    return safe


def lineage_scope(dag_id: str | None, group_id: str) -> str:
    """Where a DAG's pipeline keeps its intermediate datasets: `<dag_id>.<group>`."""
    return f"{dag_id}.{group_id}" if dag_id else group_id


def first_try(context: Any) -> bool:
    """True on a task's first try since it was scheduled or last cleared (not a retry).

    Clearing a task sets max_tries = try_number + retries (as Airflow computes the first try
    for reschedules), so the first try of the current round is max_tries - retries + 1.
    """
    ti = context["ti"]
    retries = getattr(ti.task, "retries", 0) or 0
    max_tries = getattr(ti, "max_tries", None)
    if max_tries is None:
        return ti.try_number <= 1
    return ti.try_number <= max_tries - retries + 1


def final_try(context: Any) -> bool:
    """True when Airflow will not retry this try if it fails."""
    ti = context["ti"]
    max_tries = getattr(ti, "max_tries", None)
    return max_tries is None or ti.try_number > max_tries


def xcom_result(result: dict[str, Any]) -> dict[str, Any]:
    """The small, JSON-only part of a pond stage result that goes to XCom."""
    keep = (
        "run_id", "stage", "stage_id", "output_kind", "location", "npartitions", "files", "rows",
        "bytes", "seconds", "task_retries", "node_failures", "speculative_attempts", "executor",
    )
    out = {k: result.get(k) for k in keep if k in result}
    out["schema"] = [list(col) for col in result.get("schema") or []]
    sink = result.get("sink")
    if sink:
        parts = [p if isinstance(p, str) else p.get("key") for p in sink.get("partitions") or []]
        out["sink"] = {
            "path": sink.get("path"),
            "mode": sink.get("mode"),
            "rows": sink.get("rows"),
            "partitions": parts[:MAX_LISTED_PARTITIONS],
            "partition_count": len(parts),
        }
    return out


def partition_keys(result: dict[str, Any]) -> list[str]:
    sink = result.get("sink") or {}
    keys = [p if isinstance(p, str) else p.get("key") for p in sink.get("partitions") or []]
    return [k for k in keys if k]


def fail_for(exc: BaseException, scrub: Any = None) -> NoReturn:
    """Re-raise a pond error the way Airflow should treat it.

    Transient errors keep their type, so Airflow's normal retries apply; every other PondError
    (bad SQL, a missing input, bad data, configuration) fails the task without a retry.
    """
    from pond_core import api

    if not isinstance(exc, api.PondError) or api.is_retryable(exc):
        raise exc
    text = str(exc) if scrub is None else scrub(str(exc))
    raise AirflowFailException(f"{type(exc).__name__}: {text}") from exc
