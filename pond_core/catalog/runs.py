"""Runs and stage runs: the statements behind start/finish, results and retention.

Each function runs inside a transaction the caller opened (see `api.py`); the upserts make a
rerun of the same run or stage update its row (and bump `attempts`) instead of adding one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, case, delete, func, select, update

from pond_core.catalog.convert import iso, run_dict, stage_dict
from pond_core.catalog.models import RUNNING, SUCCESS, Run, StageRun, table_of
from pond_core.catalog.statements import upsert
from pond_core.errors import PondConfigError
from pond_core.heartbeat import is_stale

RUNS = table_of(Run)
STAGES = table_of(StageRun)


def start_run(
    conn: Connection,
    run_id: str,
    pipeline: str,
    params: dict[str, Any],
    plan_fingerprint: str | None,
    executor: str,
    at: dt.datetime,
) -> None:
    _check_same_run(conn, run_id, pipeline, plan_fingerprint)
    stmt = upsert(conn, RUNS).values(
        run_id=run_id,
        pipeline=pipeline,
        params=params,
        plan_fingerprint=plan_fingerprint,
        executor=executor,
        status=RUNNING,
        attempts=1,
        error=None,
        created_at=at,
        started_at=at,
        finished_at=None,
    )
    # Starting a run that is still running joins it (every stage task of an orchestrator may
    # call start_run); starting a finished run is a rerun: a new attempt with a new start time.
    rerun = RUNS.c.status != RUNNING
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[RUNS.c.run_id],
            set_={
                "status": RUNNING,
                "attempts": case((rerun, RUNS.c.attempts + 1), else_=RUNS.c.attempts),
                "params": stmt.excluded.params,
                "executor": stmt.excluded.executor,
                "plan_fingerprint": func.coalesce(
                    stmt.excluded.plan_fingerprint, RUNS.c.plan_fingerprint
                ),
                "error": None,
                "started_at": case((rerun, at), else_=RUNS.c.started_at),
                "finished_at": None,
            },
        )
    )


def _check_same_run(
    conn: Connection, run_id: str, pipeline: str, plan_fingerprint: str | None
) -> None:
    # Reusing a run_id for another pipeline or plan would reuse stage results that do not apply.
    row = conn.execute(
        select(RUNS.c.pipeline, RUNS.c.plan_fingerprint).where(RUNS.c.run_id == run_id)
    ).first()
    if row is None:
        return
    if row.pipeline != pipeline:
        raise PondConfigError(
            f"run {run_id!r} belongs to pipeline {row.pipeline!r}, not {pipeline!r}; "
            "use a new run_id"
        )
    if plan_fingerprint and row.plan_fingerprint and row.plan_fingerprint != plan_fingerprint:
        raise PondConfigError(
            f"run {run_id!r} was started with plan {row.plan_fingerprint}, not {plan_fingerprint}: "
            "the pipeline changed, so its recorded stages do not apply; use a new run_id"
        )


def finish_run(
    conn: Connection, run_id: str, status: str, error: str | None, at: dt.datetime
) -> None:
    done = conn.execute(
        update(RUNS)
        .where(RUNS.c.run_id == run_id)
        .values(status=status, error=error, finished_at=at)
    )
    if done.rowcount == 0:
        raise PondConfigError(f"run {run_id!r} was never started (call start_run first)")


def start_stage(
    conn: Connection, run_id: str, stage_id: str, stage_name: str, npartitions: int, at: dt.datetime, position: int | None = None
) -> int:
    if conn.execute(select(RUNS.c.run_id).where(RUNS.c.run_id == run_id)).first() is None:
        raise PondConfigError(
            f"run {run_id!r} was never started (call start_run before start_stage)"
        )
    stmt = upsert(conn, STAGES).values(
        run_id=run_id,
        stage_id=stage_id,
        stage_name=stage_name,
        npartitions=npartitions,
        status=RUNNING,
        attempts=1,
        task_retries=0,
        node_failures=0,
        speculative_attempts=0,
        started_at=at,
        heartbeat_at=at,
        position=position,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[STAGES.c.run_id, STAGES.c.stage_id],
        set_={
            "stage_name": stage_name,
            "npartitions": npartitions,
            "position": position,
            "status": RUNNING,
            "attempts": STAGES.c.attempts + 1,
            "row_count": None,
            "byte_count": None,
            "file_count": None,
            "duration_s": None,
            "result": None,
            "error": None,
            "started_at": at,
            "finished_at": None,
            "heartbeat_at": at,
        },
    )
    return int(conn.execute(stmt.returning(STAGES.c.attempts)).scalar_one())


def heartbeat(conn: Connection, run_id: str, stage_id: str, at: dt.datetime) -> None:
    conn.execute(
        update(STAGES)
        .where(STAGES.c.run_id == run_id, STAGES.c.stage_id == stage_id, STAGES.c.status == RUNNING)
        .values(heartbeat_at=at)
    )


def finish_stage(
    conn: Connection, run_id: str, stage_id: str, values: dict[str, Any], at: dt.datetime
) -> None:
    counters = {
        name: getattr(STAGES.c, name) + values.pop(name)
        for name in ("task_retries", "node_failures", "speculative_attempts")
    }
    done = conn.execute(
        update(STAGES)
        .where(STAGES.c.run_id == run_id, STAGES.c.stage_id == stage_id)
        .values(**values, **counters, finished_at=at)
    )
    if done.rowcount == 0:
        raise PondConfigError(
            f"stage {stage_id!r} of run {run_id!r} was never started (call start_stage first)"
        )


def stage_result(conn: Connection, run_id: str, stage_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(STAGES.c.result).where(
            STAGES.c.run_id == run_id, STAGES.c.stage_id == stage_id, STAGES.c.status == SUCCESS
        )
    ).first()
    if row is None:
        return None
    return row.result if row.result is not None else {}


def get_run(conn: Connection, run_id: str, cutoff: dt.datetime) -> dict[str, Any] | None:
    row = conn.execute(select(RUNS).where(RUNS.c.run_id == run_id)).mappings().first()
    if row is None:
        return None
    rows = conn.execute(
        select(STAGES)
        .where(STAGES.c.run_id == run_id)
        .order_by(func.coalesce(STAGES.c.position, 1 << 30), STAGES.c.started_at, STAGES.c.stage_id)
    ).mappings().all()
    stages = [{**stage_dict(s), "stale": is_stale(s["status"], s["heartbeat_at"], cutoff)} for s in rows]
    latest = max((s["heartbeat_at"] for s in rows if s["status"] == RUNNING and s["heartbeat_at"]), default=None)
    return {**_with_heartbeat(run_dict(row), latest, cutoff), "stages": stages}


def list_runs(
    conn: Connection, limit: int, pipeline: str | None, status: str | None, cutoff: dt.datetime
) -> list[dict[str, Any]]:
    query = select(RUNS).order_by(RUNS.c.started_at.desc(), RUNS.c.run_id.desc()).limit(limit)
    if pipeline is not None:
        query = query.where(RUNS.c.pipeline == pipeline)
    if status is not None:
        query = query.where(RUNS.c.status == status)
    runs = [run_dict(row) for row in conn.execute(query).mappings()]
    running = [r["run_id"] for r in runs if r["status"] == RUNNING]
    beats: dict[str, dt.datetime | None] = {}
    if running:
        latest = (
            select(STAGES.c.run_id, func.max(STAGES.c.heartbeat_at))
            .where(STAGES.c.run_id.in_(running), STAGES.c.status == RUNNING)
            .group_by(STAGES.c.run_id)
        )
        beats = {run_id: at for run_id, at in conn.execute(latest).all()}
    return [_with_heartbeat(r, beats.get(r["run_id"]), cutoff) for r in runs]


def _with_heartbeat(run: dict[str, Any], latest: dt.datetime | None, cutoff: dt.datetime) -> dict[str, Any]:
    """A run's latest stage heartbeat, and whether it is stale: running, yet none of its running
    stages was stamped lately (its drivers are gone). Between stages a run has no beat."""
    return {**run, "heartbeat_at": iso(latest), "stale": is_stale(run["status"], latest, cutoff)}


def delete_run(conn: Connection, run_id: str) -> bool:
    # Stage runs and lineage records go with the run (ON DELETE CASCADE); partitions stay.
    return conn.execute(delete(RUNS).where(RUNS.c.run_id == run_id)).rowcount > 0


def runs_older_than(conn: Connection, cutoff: dt.datetime) -> list[str]:
    last_activity = func.coalesce(RUNS.c.finished_at, RUNS.c.started_at)
    query = (
        select(RUNS.c.run_id).where(last_activity < cutoff).order_by(last_activity, RUNS.c.run_id)
    )
    return list(conn.execute(query).scalars())
