"""Datasets and their committed partitions: what a backfill consults.

A partition key is the hive path of the partition (`dt=2026-11-20/region=eu`), or "" for an
unpartitioned dataset. Writers of one dataset are serialised by a row lock on the dataset
(PostgreSQL; SQLite serialises all writers anyway), so concurrent overwrites of one key leave
exactly one row for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, select, update

from pond_core.catalog.convert import count, iso
from pond_core.catalog.models import Dataset, Partition, table_of
from pond_core.catalog.statements import chunks, upsert
from pond_core.errors import PondConfigError

DATASETS = table_of(Dataset)
PARTITIONS = table_of(Partition)

# Sink modes: "error" writes a dataset that did not exist, so it replaces all like "overwrite".
MODES = ("overwrite_partitions", "overwrite", "append", "error")
MAX_KEY_LENGTH = 1024


def find_datasets(conn: Connection, uris: Iterable[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for part in chunks(sorted(set(uris))):
        query = select(DATASETS.c.uri, DATASETS.c.id).where(DATASETS.c.uri.in_(part))
        ids.update({row.uri: row.id for row in conn.execute(query)})
    return ids


def create_datasets(conn: Connection, uris: Iterable[str], at: dt.datetime) -> dict[str, int]:
    """Ids of the datasets, created when missing (in sorted order, so writers never deadlock)."""
    for uri in sorted(set(uris)):
        stmt = upsert(conn, DATASETS).values(uri=uri, created_at=at, updated_at=at)
        conn.execute(stmt.on_conflict_do_nothing(index_elements=[DATASETS.c.uri]))
    return find_datasets(conn, uris)


def partition_rows(partitions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validated partition dicts keyed by partition key; duplicates of a key are summed."""
    merged: dict[str, dict[str, Any]] = {}
    for part in partitions:
        key = part.get("key", "")
        if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH:
            raise PondConfigError(
                f"partition key must be text of at most {MAX_KEY_LENGTH} chars, not {key!r}"
            )
        values = part.get("values") or {}
        if not isinstance(values, Mapping):
            raise PondConfigError(f"values of partition {key!r} must be a dict, not {values!r}")
        row = {
            "partition_key": key,
            "partition_values": dict(values),
            "file_count": count(part.get("files", 0), f"files of partition {key!r}") or 0,
            "row_count": count(part.get("rows"), f"rows of partition {key!r}"),
            "byte_count": count(part.get("bytes"), f"bytes of partition {key!r}"),
        }
        if key in merged:
            row = _add_counts(merged[key], row)
        merged[key] = row
    return list(merged.values())


def _plus(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b  # unknown stays unknown


def _add_counts(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {
        **new,
        "file_count": old["file_count"] + new["file_count"],
        "row_count": _plus(old["row_count"], new["row_count"]),
        "byte_count": _plus(old["byte_count"], new["byte_count"]),
    }


def record_partitions(
    conn: Connection,
    dataset_id: int,
    rows: list[dict[str, Any]],
    run_id: str,
    stage_id: str,
    mode: str,
    at: dt.datetime,
) -> None:
    # FOR NO KEY UPDATE: serialises writers of this dataset, yet lets lineage rows reference it.
    conn.execute(
        select(DATASETS.c.id).where(DATASETS.c.id == dataset_id).with_for_update(key_share=True)
    )
    _delete_replaced(conn, dataset_id, [r["partition_key"] for r in rows], run_id, stage_id, mode)
    if rows:
        conn.execute(
            PARTITIONS.insert(),
            [
                {
                    **r,
                    "dataset_id": dataset_id,
                    "run_id": run_id,
                    "stage_id": stage_id,
                    "committed_at": at,
                }
                for r in rows
            ],
        )
    conn.execute(update(DATASETS).where(DATASETS.c.id == dataset_id).values(updated_at=at))


def _delete_replaced(
    conn: Connection, dataset_id: int, keys: list[str], run_id: str, stage_id: str, mode: str
) -> None:
    of_dataset = PARTITIONS.c.dataset_id == dataset_id
    if mode in ("overwrite", "error"):
        conn.execute(delete(PARTITIONS).where(of_dataset))
        return
    for part in chunks(keys):
        query = delete(PARTITIONS).where(of_dataset, PARTITIONS.c.partition_key.in_(part))
        if mode == "append":  # a retried append replaces its own earlier rows, not others'
            query = query.where(PARTITIONS.c.run_id == run_id, PARTITIONS.c.stage_id == stage_id)
        conn.execute(query)


def list_partitions(conn: Connection, uri: str) -> list[dict[str, Any]]:
    query = (
        select(PARTITIONS)
        .join(DATASETS, DATASETS.c.id == PARTITIONS.c.dataset_id)
        .where(DATASETS.c.uri == uri)
        .order_by(PARTITIONS.c.partition_key, PARTITIONS.c.committed_at, PARTITIONS.c.id)
    )
    by_key: dict[str, dict[str, Any]] = {}
    for row in conn.execute(query).mappings():
        key = row["partition_key"]
        item, prev = _partition_dict(row), by_key.get(key)
        if prev is not None:  # appended to: totals over all writers, identity of the latest
            item["files"] += prev["files"]
            item["rows"] = _plus(prev["rows"], item["rows"])
            item["bytes"] = _plus(prev["bytes"], item["bytes"])
            item["commits"] = prev["commits"] + 1
        by_key[key] = item
    return list(by_key.values())


def _partition_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "key": row["partition_key"],
        "values": row["partition_values"] or {},
        "files": row["file_count"],
        "rows": row["row_count"],
        "bytes": row["byte_count"],
        "run_id": row["run_id"],
        "stage_id": row["stage_id"],
        "committed_at": iso(row["committed_at"]),
        "commits": 1,
    }


def has_partition(conn: Connection, uri: str, key: str) -> bool:
    query = (
        select(PARTITIONS.c.id)
        .join(DATASETS, DATASETS.c.id == PARTITIONS.c.dataset_id)
        .where(DATASETS.c.uri == uri, PARTITIONS.c.partition_key == key)
        .limit(1)
    )
    return conn.execute(query).first() is not None


def list_datasets(conn: Connection) -> list[dict[str, Any]]:
    query = select(DATASETS).order_by(DATASETS.c.uri)
    return [
        {
            "uri": row["uri"],
            "schema": row["schema_fields"] or [],
            "created_at": iso(row["created_at"]),
            "updated_at": iso(row["updated_at"]),
        }
        for row in conn.execute(query).mappings()
    ]


def set_schemas(
    conn: Connection, ids: dict[str, int], schemas: dict[str, list], at: dt.datetime
) -> None:
    for uri in sorted(schemas):
        conn.execute(
            update(DATASETS)
            .where(DATASETS.c.id == ids[uri])
            .values(schema_fields=schemas[uri], updated_at=at)
        )
