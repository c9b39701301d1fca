"""Stage leases: one live driver per stage of a run.

Two drivers of one run id (an Airflow zombie and its retry, two `pond resume` calls) would
otherwise run the same stage at once, and one's clean-up deletes the other's files. A driver
takes the lease of each stage it runs, in one write transaction: free, its own, or stale (not
renewed for three heartbeat intervals, or held by a process of this machine that no longer
runs: its driver is gone) it becomes the holder; held live by
another driver it is refused, naming the holder. The heartbeat renews it; finishing releases
it. Different stages of one run still run at once (an orchestrator runs each as its own task).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from sqlalchemy import Connection, delete, select, update

from pond_core.catalog.models import StageLease, table_of
from pond_core.catalog.statements import upsert

LEASES = table_of(StageLease)


@dataclasses.dataclass(frozen=True)
class LeaseHolder:
    """Who holds a stage's lease, and since when it last proved alive."""

    holder: str
    acquired_at: dt.datetime
    renewed_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class LeaseOutcome:
    """`acquired` is False when another live driver holds the lease (`holder` says who);
    `took_over` names the stale holder a new driver replaced."""

    acquired: bool
    holder: LeaseHolder | None = None
    took_over: LeaseHolder | None = None


def acquire(
    conn: Connection, run_id: str, stage_id: str, holder: str, at: dt.datetime, stale_before: dt.datetime,
    gone: Callable[[str], bool] | None = None,
) -> LeaseOutcome:
    conn.execute(
        upsert(conn, LEASES)
        .values(run_id=run_id, stage_id=stage_id, holder=holder, acquired_at=at, renewed_at=at)
        .on_conflict_do_nothing(index_elements=[LEASES.c.run_id, LEASES.c.stage_id])
    )
    row = conn.execute(
        select(LEASES.c.holder, LEASES.c.acquired_at, LEASES.c.renewed_at)
        .where(LEASES.c.run_id == run_id, LEASES.c.stage_id == stage_id)
        .with_for_update()
    ).one()
    current = LeaseHolder(row.holder, row.acquired_at, row.renewed_at)
    if current.holder == holder:
        renew(conn, run_id, stage_id, holder, at)
        return LeaseOutcome(True)
    if current.renewed_at >= stale_before and not (gone is not None and gone(current.holder)):
        return LeaseOutcome(False, holder=current)
    conn.execute(
        update(LEASES)
        .where(LEASES.c.run_id == run_id, LEASES.c.stage_id == stage_id, LEASES.c.holder == current.holder)
        .values(holder=holder, acquired_at=at, renewed_at=at)
    )
    return LeaseOutcome(True, took_over=current)


def renew(conn: Connection, run_id: str, stage_id: str, holder: str, at: dt.datetime) -> bool:
    """Stamp the lease as alive; False when this driver no longer holds it (taken over)."""
    done = conn.execute(
        update(LEASES)
        .where(LEASES.c.run_id == run_id, LEASES.c.stage_id == stage_id, LEASES.c.holder == holder)
        .values(renewed_at=at)
    )
    return bool(done.rowcount)


def release(conn: Connection, run_id: str, stage_id: str, holder: str) -> None:
    conn.execute(delete(LEASES).where(LEASES.c.run_id == run_id, LEASES.c.stage_id == stage_id, LEASES.c.holder == holder))
