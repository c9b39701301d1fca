"""Lineage records and edges: which stage of which run read and wrote which datasets.

A record is neutral (datasets with schema and row counts, the SQL, run and stage ids, timings);
the Airflow and Prefect integrations translate it. Recording the same (run, stage) again
replaces its record, so a retried stage never duplicates lineage.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, select

from pond_core.catalog.convert import count, dataset_ref, dataset_uri, iso
from pond_core.catalog.models import Dataset, LineageEdge, LineageRecord, Run, table_of
from pond_core.catalog.statements import upsert
from pond_core.errors import PondConfigError

DATASETS = table_of(Dataset)
RECORDS = table_of(LineageRecord)
EDGES = table_of(LineageEdge)
RUNS = table_of(Run)
INPUT, OUTPUT = "input", "output"


def dataset_refs(items: Sequence[Mapping[str, Any]], what: str) -> list[dict[str, Any]]:
    """Validated {"uri", "schema", "rows"} dicts, one per URI (the first mention wins)."""
    refs: dict[str, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, Mapping) or "uri" not in item:
            raise PondConfigError(f"each lineage {what} needs a 'uri', got {item!r}")
        uri = dataset_uri(item["uri"])
        rows = count(item.get("rows"), f"rows of lineage {what} {uri}")
        ref = dataset_ref(uri, _schema(item.get("schema"), uri), rows)
        ref["column_lineage"] = _column_lineage(item.get("column_lineage"), uri)
        refs.setdefault(uri, ref)
    return list(refs.values())


def _column_lineage(value: Any, uri: str) -> dict[str, list[dict[str, str]]] | None:
    """{"column": [{"dataset", "column", "transformation"}, ...]}: which source columns each column
    of `uri` is from, and how (the transformation is optional)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(sources, (list, tuple)) and all(isinstance(s, Mapping) and {"dataset", "column"} <= set(s) for s in sources)
        for sources in value.values()
    ):
        raise PondConfigError(
            f"column_lineage of {uri} must map each column to a list of {{'dataset', 'column'}} dicts, not {value!r}"
        )
    return {str(c): [_source_column(s) for s in sources] for c, sources in value.items()}


def _source_column(source: Mapping[str, Any]) -> dict[str, str]:
    out = {"dataset": str(source["dataset"]), "column": str(source["column"])}
    if source.get("transformation") is not None:
        out["transformation"] = str(source["transformation"])  # identity, transformation or aggregation
    return out


def _schema(fields: Any, uri: str) -> list[dict[str, Any]]:
    if fields is None:
        return []
    if not isinstance(fields, (list, tuple)) or not all(
        isinstance(f, Mapping) and "name" in f for f in fields
    ):
        raise PondConfigError(
            f"schema of {uri} must be a list of {{'name', 'type'}} dicts, not {fields!r}"
        )
    return [{**f, "name": str(f["name"]), "type": str(f.get("type", ""))} for f in fields]


def record_lineage(
    conn: Connection,
    run_id: str,
    stage_id: str,
    ids: dict[str, int],
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    sql: str | None,
    times: tuple[dt.datetime | None, dt.datetime | None],
    at: dt.datetime,
) -> None:
    if conn.execute(select(RUNS.c.run_id).where(RUNS.c.run_id == run_id)).first() is None:
        raise PondConfigError(
            f"run {run_id!r} was never started (call start_run before record_lineage)"
        )
    started_at, finished_at = times
    stmt = upsert(conn, RECORDS).values(
        run_id=run_id,
        stage_id=stage_id,
        sql_text=sql,
        started_at=started_at,
        finished_at=finished_at,
        recorded_at=at,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[RECORDS.c.run_id, RECORDS.c.stage_id],
        set_={
            "sql_text": sql,
            "started_at": started_at,
            "finished_at": finished_at,
            "recorded_at": at,
        },
    )
    record_id = conn.execute(stmt.returning(RECORDS.c.id)).scalar_one()
    conn.execute(delete(EDGES).where(EDGES.c.record_id == record_id))
    edges = [
        _edge(record_id, ids[ref["uri"]], direction, position, ref)
        for direction, refs in ((INPUT, inputs), (OUTPUT, outputs))
        for position, ref in enumerate(refs)
    ]
    if edges:
        conn.execute(EDGES.insert(), edges)


def _edge(
    record_id: int, dataset_id: int, direction: str, position: int, ref: dict[str, Any]
) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "dataset_id": dataset_id,
        "direction": direction,
        "position": position,
        "schema_fields": ref["schema"],
        "row_count": ref["rows"],
        "column_lineage": ref["column_lineage"] if direction == OUTPUT else None,
    }


def lineage(conn: Connection, uri: str, limit: int | None) -> dict[str, list[dict[str, Any]]]:
    """Edges into (upstream) and out of (downstream) a dataset, newest first."""
    return {
        "upstream": _neighbours(conn, uri, this=OUTPUT, other=INPUT, limit=limit),
        "downstream": _neighbours(conn, uri, this=INPUT, other=OUTPUT, limit=limit),
    }


def _neighbours(
    conn: Connection, uri: str, *, this: str, other: str, limit: int | None
) -> list[dict[str, Any]]:
    mine, theirs, dataset = EDGES.alias("mine"), EDGES.alias("theirs"), DATASETS.alias("dataset")
    query = (
        select(
            dataset.c.uri,
            theirs.c.schema_fields,
            theirs.c.row_count,
            RECORDS.c.run_id,
            RECORDS.c.stage_id,
            RECORDS.c.sql_text,
            RECORDS.c.started_at,
            RECORDS.c.finished_at,
        )
        .select_from(DATASETS)
        .join(mine, (mine.c.dataset_id == DATASETS.c.id) & (mine.c.direction == this))
        .join(RECORDS, RECORDS.c.id == mine.c.record_id)
        .join(theirs, (theirs.c.record_id == RECORDS.c.id) & (theirs.c.direction == other))
        .join(dataset, dataset.c.id == theirs.c.dataset_id)
        .where(DATASETS.c.uri == uri)
        .order_by(RECORDS.c.recorded_at.desc(), RECORDS.c.id.desc(), theirs.c.position)
        .limit(limit)
    )
    return [_edge_dict(row) for row in conn.execute(query).mappings()]


def _edge_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        **dataset_ref(row["uri"], row["schema_fields"], row["row_count"]),
        "run_id": row["run_id"],
        "stage_id": row["stage_id"],
        "sql": row["sql_text"],
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
    }


def column_lineage(conn: Connection, uri: str) -> dict[str, Any] | None:
    """The newest column lineage recorded for the dataset `uri`: {"uri", "run_id", "stage_id",
    "finished_at", "columns": {column: [{"dataset", "column"}]}}, or None when none was."""
    query = (
        select(EDGES.c.column_lineage, RECORDS.c.run_id, RECORDS.c.stage_id, RECORDS.c.finished_at)
        .join(RECORDS, RECORDS.c.id == EDGES.c.record_id)
        .join(DATASETS, DATASETS.c.id == EDGES.c.dataset_id)
        .where(DATASETS.c.uri == uri, EDGES.c.direction == OUTPUT, EDGES.c.column_lineage.is_not(None))
        .order_by(RECORDS.c.recorded_at.desc(), RECORDS.c.id.desc())
        .limit(1)
    )
    row = conn.execute(query).mappings().first()
    if row is None:
        return None
    return {
        "uri": uri, "run_id": row["run_id"], "stage_id": row["stage_id"], "finished_at": iso(row["finished_at"]),
        "columns": row["column_lineage"],
    }


def run_lineage(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    """The lineage records of a run, as recorded, in the order they were recorded."""
    records = (
        conn.execute(
            select(RECORDS)
            .where(RECORDS.c.run_id == run_id)
            .order_by(RECORDS.c.recorded_at, RECORDS.c.id)
        )
        .mappings()
        .all()
    )
    edges = (
        conn.execute(
            select(EDGES, DATASETS.c.uri)
            .join(DATASETS, DATASETS.c.id == EDGES.c.dataset_id)
            .join(RECORDS, RECORDS.c.id == EDGES.c.record_id)
            .where(RECORDS.c.run_id == run_id)
            .order_by(EDGES.c.record_id, EDGES.c.direction, EDGES.c.position)
        )
        .mappings()
        .all()
    )
    return [
        _record_dict(record, [e for e in edges if e["record_id"] == record["id"]])
        for record in records
    ]


def _record_dict(record: Mapping[Any, Any], edges: list[Mapping[Any, Any]]) -> dict[str, Any]:
    def refs(direction: str) -> list[dict[str, Any]]:
        out = []
        for e in edges:
            if e["direction"] == direction:
                ref = dataset_ref(e["uri"], e["schema_fields"], e["row_count"])
                if e["column_lineage"] is not None:
                    ref["column_lineage"] = e["column_lineage"]
                out.append(ref)
        return out

    return {
        "run_id": record["run_id"],
        "stage_id": record["stage_id"],
        "inputs": refs(INPUT),
        "outputs": refs(OUTPUT),
        "sql": record["sql_text"],
        "started_at": iso(record["started_at"]),
        "finished_at": iso(record["finished_at"]),
    }
