"""One task: one partition of one stage, run in its own DuckDB connection.

The driver resolves everything a task needs into a `TaskSpec` (plain data: the SQL that reads
each input, the steps, where the output goes, the resources), so a task is the same function in
this process or on a Ray worker. Rows move from storage to storage inside DuckDB; only the small
`TaskResult` comes back.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import duckdb

from pond_core.errors import PondError
from pond_core.execute.results import TaskResult
from pond_core.execute.task_db import TaskDatabase, thread_database
from pond_core.execute.task_errors import classify
from pond_core.execute.task_spec import BucketedTarget, ExchangeTarget, FilesTarget, SinkTarget, TaskSpec
from pond_core.io.sink import written_files
from pond_core.io.written import WrittenFile
from pond_core.plan.physical import BUCKET_COLUMN, PARTITION_VARIABLE, PythonStep, Schema, SqlStep, Step
from pond_core.plan.sql import bind
from pond_core.plan.statement import pivot_values_from_data
from pond_core.sql_quote import quote_ident, quote_str

# Intermediate files (stage outputs and exchanges) are Snappy Parquet, as sinks are by default,
# so a write that only moves an exchange's files can link them instead of rewriting them.
EXCHANGE_COMPRESSION = "snappy"
SELECT_TOKEN = "__POND_SELECT__"  # where a sink's COPY statement takes the task's rows

# Parquet has no 128-bit integer: DuckDB would write HUGEINT (what sum(BIGINT) returns) as a
# lossy DOUBLE. DECIMAL(38,0) keeps every value and is what DuckDB itself gives Arrow.
_WIDE_INTEGERS = {"HUGEINT": "DECIMAL(38,0)", "UHUGEINT": "DECIMAL(38,0)"}


def run_task(spec: TaskSpec, database: TaskDatabase | None = None) -> TaskResult:
    """Run one task and return its result; raise a PondError naming stage, partition and cause.

    `database`: the worker's reused DuckDB database (default: the calling thread's)."""
    started = time.time()
    # DuckDB creates the spill directory itself when it first spills, not its parents; that it
    # exists afterwards is how the worker's database knows this task spilled (see task_db.py).
    os.makedirs(os.path.dirname(spec.spill_dir), exist_ok=True)
    try:
        with (database or thread_database()).cursor(spec, _startup_config(spec)) as con:
            _configure_storage(con, spec)
            files, schema = _run(con, spec)
    finally:
        shutil.rmtree(spec.spill_dir, ignore_errors=True)  # per attempt; on a worker node nobody else cleans it
    return TaskResult(
        partition=spec.partition,
        attempt=spec.attempt,
        files=files,
        schema=tuple((name, _WIDE_INTEGERS.get(typ.upper(), typ)) for name, typ in schema),
        started_at=started,
        seconds=time.time() - started,
        threads=spec.threads,
        host=os.uname().nodename,
        pid=os.getpid(),
    )


def _run(con: duckdb.DuckDBPyConnection, spec: TaskSpec) -> tuple[tuple[WrittenFile, ...], Schema]:
    """Create the inputs' and steps' views, then write the result; errors name what failed."""
    current, sql_text = "reading the inputs", ""
    try:
        if _reads_partition_index(spec):
            con.execute(f"SET VARIABLE {PARTITION_VARIABLE} = {int(spec.partition)}")
        for relation in spec.relations:
            sql_text = relation.sql
            con.execute(f"CREATE VIEW {quote_ident(relation.name)} AS {relation.sql}")
        for step in spec.steps:
            current, sql_text = f"step {step.id}", step.query if isinstance(step, SqlStep) else ""
            _run_step(con, spec, step)
        current, sql_text = "writing the output", "\n".join(s.query for s in spec.steps if isinstance(s, SqlStep))
        schema = _schema(con, spec.result)
        if isinstance(spec.target, ExchangeTarget):
            schema = exchange_columns(schema, spec.target.exchange.columns)
        if isinstance(spec.target, BucketedTarget):
            schema = tuple(c for c in schema if c[0] != BUCKET_COLUMN)
        return _write_output(con, spec, schema), schema
    except duckdb.Error as exc:
        raise _sink_error(spec, exc) or classify(exc, spec.where, current, sql_text) from exc


def _reads_partition_index(spec: TaskSpec) -> bool:
    """Whether the task's SQL reads its partition index, getvariable('pond_partition')
    (smallpond's {__data_partition__}, pond_core/compat/sql_placeholders.py)."""
    return any(
        PARTITION_VARIABLE in text for step in spec.steps if isinstance(step, SqlStep) for text in (step.query, *step.setup)
    )


def _startup_config(spec: TaskSpec) -> dict[str, Any]:
    """Options DuckDB takes only when a database opens (S3 work: httpfs loading unverified)."""
    if any(p.startswith("s3://") for p in spec.paths):
        from pond_core.io import duckdb_connect_config

        return duckdb_connect_config(list(spec.paths))
    return {}


def _configure_storage(con: duckdb.DuckDBPyConnection, spec: TaskSpec) -> None:
    if not any(p.startswith("s3://") for p in spec.paths):
        return
    from pond_core.io import configure_duckdb

    configure_duckdb(con, spec.storage, list(spec.paths))


def _run_step(con: duckdb.DuckDBPyConnection, spec: TaskSpec, step: Step) -> None:
    if isinstance(step, PythonStep):
        _run_python_step(con, spec, step)
        return
    for u in step.udfs:
        from pond_core.udfs import UDF

        UDF(u.name, u.func.load(), u.params, u.return_type).register(con)
    for statement in step.setup:  # smallpond's earlier statements of a list (compat/setup_sql.py)
        con.execute(bind(statement, [quote_ident(n) for n in step.inputs]))

    query = bind(step.query, [quote_ident(n) for n in step.inputs])
    # A PIVOT taking its values from the data cannot be a view (DuckDB reads the values first):
    # it is computed into a temporary table, which spills like any DuckDB table.
    kind = "TEMP TABLE" if pivot_values_from_data(query) else "VIEW"
    con.execute(f"CREATE {kind} {quote_ident(step.id)} AS {query}")


def _run_python_step(con: duckdb.DuckDBPyConnection, spec: TaskSpec, step: PythonStep) -> None:
    from pond_core.execute import python_steps  # pyarrow: loaded only for Python steps

    # A cursor streams the input while later steps run on `con`, but it does not see what an
    # earlier Python step registered on `con`: after one, read on `con` and finish at once.
    chained = any(isinstance(s, PythonStep) for s in spec.steps[: spec.steps.index(step)])
    source = (con if chained else con.cursor()).execute(f"SELECT * FROM {quote_ident(step.inputs[0])}")
    reader = source.to_arrow_reader(python_steps.DEFAULT_BATCH_ROWS)
    out: Any = python_steps.apply(
        step.method, step.func.load(), reader, python_steps.arrow_schema(step.schema), step.batch_size, step.streaming,
        f"{spec.where} {step.label}",
    )
    if chained or _uses(spec, step.id) > 1:
        out = out.read_all()
    con.register(step.id, out)


def _uses(spec: TaskSpec, name: str) -> int:
    return sum(name in s.inputs for s in spec.steps) + (spec.result == name)


def _sink_error(spec: TaskSpec, exc: duckdb.Error) -> PondError | None:
    """The sink's own explanation of a failed write (a bad partition value or column)."""
    if not isinstance(spec.target, SinkTarget):
        return None
    from pond_core.io import SinkWriter

    writer = SinkWriter(spec.target.sink, spec.target.write_id, spec.storage)
    described = writer.describe_copy_error(exc)
    if described is not None:
        return type(described)(f"{spec.where}: {described}")
    return None


def _schema(con: duckdb.DuckDBPyConnection, relation: str) -> Schema:
    rows = con.execute(f"DESCRIBE SELECT * FROM {quote_ident(relation)}").fetchall()
    return tuple((str(r[0]), str(r[1])) for r in rows)


def _write_output(con: duckdb.DuckDBPyConnection, spec: TaskSpec, schema: Schema) -> tuple[WrittenFile, ...]:
    target = spec.target
    select = f"SELECT {_storable_columns(schema)} FROM {quote_ident(spec.result)}"
    if isinstance(target, FilesTarget):
        statement = (
            f"COPY ({select}) TO {quote_str(target.path)} "
            f"(FORMAT parquet, COMPRESSION {EXCHANGE_COMPRESSION}, RETURN_STATS true)"
        )
    elif isinstance(target, ExchangeTarget):
        bucket = bucket_expression(target.exchange.method, list(target.exchange.keys), target.exchange.expr, target.exchange.npartitions)
        statement = _bucketed_statement(spec.result, target.dir, bucket, schema)
    elif isinstance(target, BucketedTarget):
        statement = _bucketed_statement(spec.result, target.dir, quote_ident(BUCKET_COLUMN), schema)
    else:
        statement = target.copy_sql.replace(SELECT_TOKEN, f"({select})")
    return written_files(con.execute(statement))


def _bucketed_statement(relation: str, directory: str, bucket: str, schema: Schema) -> str:
    """Rows written one directory per partition (`__pond_bucket=K/`): an exchange, or a fused stage."""
    return (
        f"COPY (SELECT {_storable_columns(schema)}, {bucket} AS __pond_bucket FROM {quote_ident(relation)}) "
        f"TO {quote_str(directory)} (FORMAT parquet, COMPRESSION {EXCHANGE_COMPRESSION}, "
        f"PARTITION_BY (__pond_bucket), FILENAME_PATTERN 'data_{{i}}', RETURN_STATS true)"
    )


def _storable_columns(schema: Schema) -> str:
    cols = []
    for name, typ in schema:
        target = _WIDE_INTEGERS.get(typ.upper())
        cols.append(f"CAST({quote_ident(name)} AS {target}) AS {quote_ident(name)}" if target else quote_ident(name))
    return ", ".join(cols) or "*"


def exchange_columns(schema: Schema, wanted: tuple[str, ...] | None) -> Schema:
    """The columns an exchange writes: those its consumers reference (at least one)."""
    if wanted is None:
        return schema
    lowered = {w.lower() for w in wanted}
    return tuple(c for c in schema if c[0].lower() in lowered) or schema[:1]


def bucket_expression(method: str, keys: list[str], expr: str | None, n: int) -> str:
    """The SQL giving each row its bucket in [0, n)."""
    if method == "hash":
        return f"(hash({', '.join(quote_ident(k) for k in keys)}) % {n})::BIGINT"
    if method == "random":
        return f"CAST(floor(random() * {n}) AS BIGINT)"
    value = f"({expr})"
    return (
        f"CASE WHEN {value} IS NULL THEN error({quote_str('partition key is NULL for expression ' + (expr or ''))}) "
        f"WHEN {value} >= 0 AND {value} < {n} THEN CAST({value} AS BIGINT) "
        f"ELSE error('partition key ' || CAST({value} AS VARCHAR) || ' is out of range 0-{n - 1}') END"
    )
