"""Python steps over Arrow record batches: map, filter, flat_map and map_batches.

Rows reach a row function as dicts, but conversion happens a batch at a time, and results are
streamed on as record batches, so a partition larger than memory still flows through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa

from pond_core.errors import PondDataError, PondError

DEFAULT_BATCH_ROWS = 65536


def arrow_schema(schema: tuple[tuple[str, str], ...] | None) -> pa.Schema | None:
    """A schema given as (name, DuckDB type) pairs, as Arrow."""
    if schema is None:
        return None
    import duckdb

    con = duckdb.connect()
    try:
        cols = ", ".join(f"CAST(NULL AS {typ}) AS \"{name}\"" for name, typ in schema)
        return con.execute(f"SELECT {cols} LIMIT 0").to_arrow_table().schema
    finally:
        con.close()


def apply(
    method: str,
    func: Callable[..., Any],
    reader: pa.RecordBatchReader,
    schema: pa.Schema | None,
    batch_size: int,
    streaming: bool,
    where: str,
) -> pa.RecordBatchReader:
    """The output of one Python step as a stream of record batches."""
    if method == "map_batches":
        tables = _map_batches(func, reader, batch_size, streaming, where)
    else:
        row_fn = {"map": _map_rows, "filter": _filter_rows, "flat_map": _flat_map_rows}[method]
        tables = (row_fn(func, batch, schema, where) for batch in reader)
    return _as_reader(tables, schema, reader.schema if method == "filter" else None, where)


def _call(func: Callable[..., Any], arg: Any, where: str) -> Any:
    try:
        return func(arg)
    except PondError:
        raise  # the function chose the kind itself, e.g. PondTransientError for a flaky service
    except Exception as exc:
        raise PondDataError(f"{where}: the Python function raised {type(exc).__name__}: {exc}") from exc


def _map_rows(func: Callable, batch: pa.RecordBatch, schema: pa.Schema | None, where: str) -> pa.Table:
    rows = [_call(func, row, where) for row in batch.to_pylist()]
    return _rows_to_table(rows, schema, where)


def _flat_map_rows(func: Callable, batch: pa.RecordBatch, schema: pa.Schema | None, where: str) -> pa.Table:
    rows: list[dict] = []
    for row in batch.to_pylist():
        produced = _call(func, row, where)
        if not isinstance(produced, Iterable) or isinstance(produced, (dict, str, bytes)):
            raise PondDataError(f"{where}: flat_map's function must return a list of row dicts, got {type(produced).__name__}")
        rows.extend(produced)
    return _rows_to_table(rows, schema, where)


def _filter_rows(func: Callable, batch: pa.RecordBatch, schema: pa.Schema | None, where: str) -> pa.Table:
    mask = pa.array([_keep(_call(func, row, where), where) for row in batch.to_pylist()], type=pa.bool_())
    return pa.Table.from_batches([batch.filter(mask)])


def _keep(value: Any, where: str) -> bool:
    """A filter's answer must be a boolean: "no" or a count would otherwise be silently truthy."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy.bool_ too
        return bool(value)
    raise PondDataError(f"{where}: filter's function must return True or False, got {type(value).__name__} {value!r:.60}")


def _rows_to_table(rows: list[Any], schema: pa.Schema | None, where: str) -> pa.Table:
    for row in rows[:1]:
        if not isinstance(row, dict):
            raise PondDataError(f"{where}: the function must return a row dict, got {type(row).__name__}")
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        column = _bad_column(rows, schema)
        what = f"column {column!r} of the rows returned by the function" if column else "rows returned by the function"
        raise PondDataError(f"{where}: {what} do not fit {'the schema' if schema else 'one type'}: {exc}") from exc


def _bad_column(rows: list[dict], schema: pa.Schema | None) -> str | None:
    """The first column whose values Arrow cannot convert (to its schema type, if given)."""
    names = list(schema.names) if schema is not None else list(dict.fromkeys(k for r in rows for k in r))
    for name in names:
        try:
            pa.array([r.get(name) for r in rows], type=schema.field(name).type if schema is not None else None)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return name
    return None


def _rechunk(reader: pa.RecordBatchReader, batch_size: int) -> Iterator[pa.Table]:
    """Tables of exactly batch_size rows (the last one smaller), across input batch bounds."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in reader:
        pending.append(batch)
        count += batch.num_rows
        while count >= batch_size:
            table = pa.Table.from_batches(pending, schema=reader.schema)
            yield table.slice(0, batch_size).combine_chunks()
            rest = table.slice(batch_size)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending, schema=reader.schema).combine_chunks()


def _map_batches(func: Callable, reader: pa.RecordBatchReader, batch_size: int, streaming: bool, where: str) -> Iterator[pa.Table]:
    chunks = _rechunk(reader, batch_size)
    produced = _call(func, chunks, where) if streaming else (_call(func, t, where) for t in chunks)
    for out in produced:
        yield _as_table(out, where)


def _as_table(out: Any, where: str) -> pa.Table:
    if isinstance(out, pa.Table):
        return out
    if isinstance(out, pa.RecordBatch):
        return pa.Table.from_batches([out])
    try:
        import pandas as pd

        if isinstance(out, pd.DataFrame):
            return pa.Table.from_pandas(out, preserve_index=False)
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    raise PondDataError(f"{where}: map_batches' function must return Arrow tables, got {type(out).__name__}")


def _as_reader(tables: Iterator[pa.Table], schema: pa.Schema | None, fallback: pa.Schema | None, where: str) -> pa.RecordBatchReader:
    """Peek at the first table to learn the schema when none was given, then stream the rest."""
    tables = iter(tables)
    first = None
    for table in tables:
        if table.num_rows or first is None:
            first = table
        if table.num_rows:
            break
    out_schema = schema or (first.schema if first is not None and (first.num_rows or fallback is None) else fallback)
    if out_schema is None:
        out_schema = first.schema if first is not None else pa.schema([])

    def batches() -> Iterator[pa.RecordBatch]:
        for table in ([first] if first is not None else []):
            yield from _conform(table, out_schema, where).to_batches()
        for table in tables:
            yield from _conform(table, out_schema, where).to_batches()

    return pa.RecordBatchReader.from_batches(out_schema, batches())


def _conform(table: pa.Table, schema: pa.Schema, where: str) -> pa.Table:
    if table.schema.equals(schema):
        return table
    if table.num_rows == 0:
        return schema.empty_table()
    try:
        return table.select(schema.names).cast(schema)
    except (KeyError, pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        raise PondDataError(
            f"{where}: a batch has schema {table.schema} but earlier batches had {schema}; pass schema= to fix the types ({exc})"
        ) from exc
