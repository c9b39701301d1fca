"""Plain data in and out of the catalog: timestamps, JSON, dataset URIs, rows as dicts."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from pond_core.errors import PondConfigError

Timestamp = dt.datetime | float | int | str


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def json_dumps(value: Any) -> str:
    # Orchestrators pass dates and other non-JSON values as parameters; keep their text form.
    return json.dumps(value, default=str, sort_keys=True)


def to_datetime(value: Timestamp | None, what: str = "timestamp") -> dt.datetime | None:
    """A UTC datetime from a datetime (naive = UTC), epoch seconds or an ISO 8601 string."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    elif isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise PondConfigError(f"{what} {value!r} is not an ISO 8601 timestamp") from None
    else:
        raise PondConfigError(
            f"{what} must be a datetime, epoch seconds or ISO text, not {value!r}"
        )
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.astimezone(dt.timezone.utc)


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def seconds_between(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 6)


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")


def dataset_uri(uri: str) -> str:
    """The catalog's key for a dataset: no credentials, no trailing slash."""
    if not isinstance(uri, str) or not uri.strip():
        raise PondConfigError(f"dataset URI must be a non-empty string, not {uri!r}")
    uri = _USERINFO.sub(r"\1", uri.strip())
    stripped = uri.rstrip("/")
    return stripped if stripped and not stripped.endswith(":") else uri


def count(value: Any, what: str) -> int | None:
    """A non-negative integer count (None means unknown)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PondConfigError(f"{what} must be a non-negative integer, not {value!r}")
    return value


def run_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "run_id": row["run_id"],
        "pipeline": row["pipeline"],
        "params": row["params"] or {},
        "plan_fingerprint": row["plan_fingerprint"],
        "executor": row["executor"],
        "status": row["status"],
        "attempts": row["attempts"],
        "error": row["error"],
        "created_at": iso(row["created_at"]),
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
        "duration_s": seconds_between(row["started_at"], row["finished_at"]),
    }


def stage_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "run_id": row["run_id"],
        "stage_id": row["stage_id"],
        "stage_name": row["stage_name"],
        "npartitions": row["npartitions"],
        "status": row["status"],
        "attempts": row["attempts"],
        "task_retries": row["task_retries"],
        "node_failures": row["node_failures"],
        "speculative_attempts": row["speculative_attempts"],
        "rows": row["row_count"],
        "bytes": row["byte_count"],
        "files": row["file_count"],
        "duration_s": row["duration_s"],
        "result": row["result"],
        "error": row["error"],
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
        "heartbeat_at": iso(row["heartbeat_at"]),
    }


def dataset_ref(uri: str, schema: Any, rows: int | None) -> dict[str, Any]:
    return {"uri": uri, "schema": schema or [], "rows": rows}
