"""Backfill a partitioned pipeline: one flow run of a deployment per day of a date range.

    report = backfill("pond-daily-revenue/daily", "2026-11-01", "2026-11-30",
                      dataset="/data/revenue", config="prod")
    report.wait()

Prefect OSS has no backfill command, so this is the client side of one. A request is
idempotent: each day's run is created with an idempotency key, so asking again returns the
same run instead of a second one (a day whose run failed, crashed or was cancelled gets one
follow-up run, itself keyed). Days whose partition is already committed in pond's catalog
(`dataset`, key `dt=<day>`) are skipped unless `force=True`; a forced request makes new runs,
keyed by `request` so a repeated forced request is idempotent too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import uuid
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import State

from pond_core import api
from pond_prefect.blocks import PondConfig, load_config

log = logging.getLogger("pond_prefect")

_RETRYABLE = (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED)


@dataclasses.dataclass
class BackfillReport:
    deployment_id: UUID
    runs: dict[str, FlowRun]  # partition value -> its flow run (new or the existing one)
    skipped: list[str]  # partitions already committed

    def wait(self, timeout: float = 3600.0, poll: float = 2.0) -> dict[str, State]:
        """Block until every run is final; return their states by partition value."""
        deadline = time.monotonic() + timeout
        states: dict[str, State] = {}
        with get_client(sync_client=True) as client:
            while True:
                for value, run in self.runs.items():
                    state = client.read_flow_run(run.id).state
                    if state is not None:
                        states[value] = state
                if all(s.is_final() for s in states.values()) and len(states) == len(self.runs):
                    return states
                if time.monotonic() > deadline:
                    raise TimeoutError(f"backfill runs not finished after {timeout}s: {({k: s.name for k, s in states.items()})}")
                time.sleep(poll)


def days(start: dt.date | str, end: dt.date | str) -> list[str]:
    """Every day from `start` to `end`, both included, as ISO dates."""
    first, last = _date(start), _date(end)
    if last < first:
        raise ValueError(f"backfill end {last} is before its start {first}")
    return [(first + dt.timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def backfill(
    deployment: str | UUID,
    start: dt.date | str,
    end: dt.date | str,
    *,
    param: str = "ds",
    parameters: dict[str, Any] | None = None,
    dataset: str | None = None,
    partition_key: str = "dt={value}",
    config: PondConfig | str | None = None,
    force: bool = False,
    request: str | None = None,
) -> BackfillReport:
    """Create one run of `deployment` ("flow-name/deployment-name" or id) per day.

    Each run gets `parameters` plus `{param: day}` (and `force=True` when forcing, for flows
    that take it). With `dataset`, days whose partition (`partition_key` formatted with the day)
    is committed in the catalog of `config` are skipped unless `force`.
    """
    values = days(start, end)
    committed = _committed(dataset, partition_key, values, config) if dataset and not force else set()
    force_token = (request or uuid.uuid4().hex) if force else None
    runs: dict[str, FlowRun] = {}
    with get_client(sync_client=True) as client:
        dep = client.read_deployment(deployment) if isinstance(deployment, UUID) else client.read_deployment_by_name(str(deployment))
        if force and "force" not in (dep.parameter_openapi_schema or {}).get("properties", {}):
            raise ValueError(f"deployment {dep.name!r} cannot be forced: its flow takes no `force` parameter")
        for value in values:
            if value in committed:
                continue
            run_params = {**(parameters or {}), param: value}
            if force:
                run_params["force"] = True
            key = f"pond-backfill/{dep.id}/{param}={value}" + (f"/force/{force_token}" if force_token else "")
            runs[value] = _run_for(client, dep.id, run_params, key, value)
    return BackfillReport(deployment_id=dep.id, runs=runs, skipped=sorted(committed))


def _run_for(client: SyncPrefectClient, deployment_id: UUID, params: dict[str, Any], key: str, value: str) -> FlowRun:
    """The run for `key`; after a failed one, its keyed follow-up (so repeats stay idempotent)."""
    while True:
        run = client.create_flow_run_from_deployment(
            deployment_id, parameters=params, idempotency_key=key, tags=["pond-backfill"], name=f"backfill-{value}"
        )
        if run.state is None or run.state.type not in _RETRYABLE:
            return run
        key = f"{key}/after/{run.id}"


def _committed(dataset: str, partition_key: str, values: list[str], config: PondConfig | str | None) -> set[str]:
    cfg = load_config(config)
    if cfg.service_target() is not None and not cfg.values().get("catalog_url"):
        # The catalog is the pond service's own: every day is requested, and a day whose stages
        # are committed finishes at once on the service (its stages return their committed results).
        log.warning("backfill: the config names a pond service and no catalog_url, so committed days are not skipped")
        return set()
    with api.open_catalog(cfg.settings(job_id="backfill")) as catalog:
        return {v for v in values if catalog.has_partition(dataset, partition_key.format(value=v))}


def _date(value: dt.date | str) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
