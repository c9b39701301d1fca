"""One task: one partition of one stage, run in its own DuckDB connection.

The driver resolves everything a task needs into a `TaskSpec` (plain data: the SQL that reads
each input, the steps, the output statement, the resources), so a task is the same function in
this process or on a Ray worker. Rows move from storage to storage inside DuckDB; only the small
result dict comes back.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from typing import Any

import duckdb

from pond_core.errors import (
    PondDataError,
    PondError,
    PondInputError,
    PondOutOfMemoryError,
    PondSqlError,
    PondStorageError,
    PondTransientError,
)
from pond_core.plan.physical import Step
from pond_core.plan.sql import bind, quote_ident


# Intermediate files (stage outputs and exchanges) are Snappy Parquet, as sinks are by default,
# so a write that only moves an exchange's files can link them instead of rewriting them.
EXCHANGE_COMPRESSION = "snappy"


@dataclasses.dataclass
class TaskSpec:
    run_id: str
    stage_id: str
    stage_name: str
    partition: int
    attempt: int
    relations: list[tuple[str, str]]  # (name, SQL that reads it)
    steps: list[dict[str, Any]]
    result: str
    output: dict[str, Any]
    threads: int
    memory_limit: str  # DuckDB's memory_limit, e.g. "512MiB"
    spill_dir: str
    storage: dict[str, Any] = dataclasses.field(repr=False, default_factory=dict)
    paths: list[str] = dataclasses.field(default_factory=list)  # every URL the task touches
    memory_bytes: int = 0  # what the task reserves where a scheduler reserves memory (Ray)
    # Speculation on Ray: a task still running after `report_running_after` seconds writes the
    # node it runs on to `running_record`, so a copy of it can be placed on another node.
    running_record: str = ""
    report_running_after: float | None = None
    avoid_node: str | None = None  # a speculative copy: run anywhere but on this node

    @property
    def where(self) -> str:
        return f"stage {self.stage_name} partition {self.partition}"


def run_task(spec: TaskSpec) -> dict[str, Any]:
    """Run one task and return its result; raise a PondError naming stage, partition and cause."""
    started = time.time()
    os.makedirs(spec.spill_dir, exist_ok=True)
    con = duckdb.connect(config=_connection_config(spec))
    try:
        _configure_storage(con, spec)
        current = "reading the inputs"
        sql_text = ""
        try:
            for name, sql in spec.relations:
                sql_text = sql
                con.execute(f"CREATE VIEW {quote_ident(name)} AS {sql}")
            for raw in spec.steps:
                step = Step.from_dict(raw)
                current, sql_text = f"step {step.id}", step.query or ""
                _run_step(con, spec, step, raw)
            current, sql_text = "writing the output", "\n".join(s.get("query") or "" for s in spec.steps)
            schema = _schema(con, spec.result)
            if spec.output["kind"] == "exchange":
                schema = exchange_columns(schema, spec.output.get("columns"))
            files = _write_output(con, spec, schema)
            schema = [[name, _WIDE_INTEGERS.get(typ.upper(), typ)] for name, typ in schema]
        except duckdb.Error as exc:
            raise _sink_error(spec, exc) or classify(exc, spec.where, current, sql_text) from exc
    finally:
        con.close()
        shutil.rmtree(spec.spill_dir, ignore_errors=True)  # per attempt; on a worker node nobody else cleans it
    rows = sum(f["rows"] for f in files)
    return {
        "partition": spec.partition,
        "attempt": spec.attempt,
        "files": files,
        "rows": rows,
        "bytes": sum(f["bytes"] for f in files),
        "schema": schema,
        "started_at": started,
        "seconds": time.time() - started,
        "threads": spec.threads,
        "host": os.uname().nodename,
        "pid": os.getpid(),
    }


def _connection_config(spec: TaskSpec) -> dict[str, Any]:
    config: dict[str, Any] = {
        "threads": spec.threads,
        "memory_limit": spec.memory_limit,
        "temp_directory": spec.spill_dir,
        "preserve_insertion_order": True,
    }
    if any(p.startswith("s3://") for p in spec.paths):
        from pond_core.io import duckdb_connect_config

        config.update(duckdb_connect_config(spec.paths))
    return config


def _configure_storage(con: duckdb.DuckDBPyConnection, spec: TaskSpec) -> None:
    if not any(p.startswith("s3://") for p in spec.paths):
        return
    from pond_core.io import StorageOptions, configure_duckdb

    configure_duckdb(con, StorageOptions.from_dict(spec.storage), spec.paths)


def _run_step(con: duckdb.DuckDBPyConnection, spec: TaskSpec, step: Step, raw: dict[str, Any]) -> None:
    if step.kind == "sql":
        for u in step.udfs:
            from pond_core.udfs import UDF

            UDF(u.name, u.func.load(), u.params, u.return_type).register(con)
        query = bind(step.query or "", [quote_ident(n) for n in step.inputs])
        con.execute(f"CREATE VIEW {quote_ident(step.id)} AS {query}")
        return
    from pond_core.execute import python_steps  # pyarrow: loaded only for Python steps

    source = con.cursor().execute(f"SELECT * FROM {quote_ident(step.inputs[0])}")
    reader = source.to_arrow_reader(python_steps.DEFAULT_BATCH_ROWS)
    out = python_steps.apply(
        step.method or "map",
        step.func.load(),
        reader,
        python_steps.arrow_schema(step.schema),
        step.batch_size,
        step.streaming,
        f"{spec.where} {step.method}({step.func.label})",
    )
    if _uses(spec, step.id) > 1:
        out = out.read_all()
    con.register(step.id, out)


def _uses(spec: TaskSpec, name: str) -> int:
    return sum(name in s["inputs"] for s in spec.steps) + (spec.result == name)


def _sink_error(spec: TaskSpec, exc: duckdb.Error) -> PondError | None:
    """The sink's own explanation of a failed write (a bad partition value or column)."""
    if spec.output["kind"] != "sink":
        return None
    from pond_core.io import SinkSpec, StorageOptions, SinkWriter

    writer = SinkWriter(SinkSpec(**spec.output["sink"]), spec.run_id, StorageOptions.from_dict(spec.storage))
    described = writer.describe_copy_error(exc)
    if described is not None:
        return type(described)(f"{spec.where}: {described}")
    return None


def _schema(con: duckdb.DuckDBPyConnection, relation: str) -> list[list[str]]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {quote_ident(relation)}").fetchall()
    return [[r[0], r[1]] for r in rows]


def _write_output(con: duckdb.DuckDBPyConnection, spec: TaskSpec, schema: list[list[str]]) -> list[dict[str, Any]]:
    out = spec.output
    select = f"SELECT {_storable_columns(schema)} FROM {quote_ident(spec.result)}"
    if out["kind"] == "files":
        statement = f"COPY ({select}) TO '{out['path']}' (FORMAT parquet, COMPRESSION {EXCHANGE_COMPRESSION}, RETURN_STATS true)"
    elif out["kind"] == "exchange":
        statement = _exchange_statement(spec, schema)
    else:
        statement = out["copy"].replace(SELECT_TOKEN, f"({select})")
    cursor = con.execute(statement)
    names = [d[0] for d in cursor.description]
    files = []
    for row in cursor.fetchall():
        rec = dict(zip(names, row))
        keys = rec.get("partition_keys") or {}
        entry = {"path": rec["filename"], "rows": int(rec["count"]), "bytes": int(rec["file_size_bytes"])}
        if out["kind"] == "exchange":
            entry["bucket"] = int(keys["__pond_bucket"])
        elif keys:
            entry["partition_keys"] = {k: v for k, v in keys.items()}
        files.append(entry)
    return sorted(files, key=lambda f: (f.get("bucket", 0), f["path"]))


def _exchange_statement(spec: TaskSpec, schema: list[list[str]]) -> str:
    out = spec.output
    cols = _storable_columns(schema)
    bucket = bucket_expression(out["method"], out.get("keys") or [], out.get("expr"), out["npartitions"])
    return (
        f"COPY (SELECT {cols}, {bucket} AS __pond_bucket FROM {quote_ident(spec.result)}) TO '{out['dir']}' "
        f"(FORMAT parquet, COMPRESSION {EXCHANGE_COMPRESSION}, PARTITION_BY (__pond_bucket), "
        f"FILENAME_PATTERN 'data_{{i}}', RETURN_STATS true)"
    )


# Parquet has no 128-bit integer: DuckDB would write HUGEINT (what sum(BIGINT) returns) as a
# lossy DOUBLE. DECIMAL(38,0) keeps every value and is what DuckDB itself gives Arrow.
_WIDE_INTEGERS = {"HUGEINT": "DECIMAL(38,0)", "UHUGEINT": "DECIMAL(38,0)"}


def _storable_columns(schema: list[list[str]]) -> str:
    cols = []
    for name, typ in schema:
        target = _WIDE_INTEGERS.get(typ.upper())
        cols.append(f"CAST({quote_ident(name)} AS {target}) AS {quote_ident(name)}" if target else quote_ident(name))
    return ", ".join(cols) or "*"


def exchange_columns(schema: list[list[str]], wanted: list[str] | None) -> list[list[str]]:
    """The columns an exchange writes: those its consumers reference (at least one)."""
    if wanted is None:
        return schema
    lowered = {w.lower() for w in wanted}
    return [c for c in schema if c[0].lower() in lowered] or schema[:1]


def bucket_expression(method: str, keys: list[str], expr: str | None, n: int) -> str:
    """The SQL giving each row its bucket in [0, n)."""
    if method == "hash":
        return f"(hash({', '.join(quote_ident(k) for k in keys)}) % {n})::BIGINT"
    if method == "random":
        return f"CAST(floor(random() * {n}) AS BIGINT)"
    value = f"({expr})"
    return (
        f"CASE WHEN {value} IS NULL THEN error('partition key is NULL for expression {_sql_literal_text(expr)}') "
        f"WHEN {value} >= 0 AND {value} < {n} THEN CAST({value} AS BIGINT) "
        f"ELSE error('partition key ' || CAST({value} AS VARCHAR) || ' is out of range 0-{n - 1}') END"
    )


def _sql_literal_text(text: str | None) -> str:
    return (text or "").replace("'", "''")


SELECT_TOKEN = "__POND_SELECT__"  # where a sink's COPY statement takes the task's rows

_SQL_ERRORS = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException, duckdb.SyntaxException)


def classify(exc: duckdb.Error, where: str, current: str, sql: str) -> PondError:
    """Map a DuckDB exception to the pond error kind that decides retry or fail."""
    message = str(exc).strip()
    text = f"{where}: {current}: {message}"
    if sql:
        text += f"\nSQL: {sql}"
    if isinstance(exc, duckdb.OutOfMemoryException):
        return PondOutOfMemoryError(text)
    if isinstance(exc, _SQL_ERRORS):
        return PondSqlError(text)
    if "Could not connect to server" in message or "Could not resolve host" in message:
        return PondStorageError(text)
    if isinstance(exc, duckdb.HTTPException) or "HTTP" in message[:40]:
        if any(code in message for code in (" 500", " 502", " 503", " 504", "timed out", "Timeout")):
            return PondTransientError(text)
        return PondStorageError(text)
    if "Python exception occurred while executing the UDF" in message or "out of range" in message or "partition key" in message:
        return PondDataError(text)
    if isinstance(exc, (duckdb.IOException, duckdb.InvalidInputException, duckdb.ConversionException)):
        return PondInputError(text)
    return PondDataError(text)
