"""The tables a query names: DataFrames, paths, globs, s3:// URLs or dataset directories.

Each input becomes the compiler's `InputTable` (plan/sqlcompile/tables.py): the logical plan of
the whole input, its schema, and the sizes the compiler needs to choose broadcasts and partition
counts. Sizes come from Parquet
metadata (row counts and uncompressed column-chunk bytes), never from reading data.

Catalog dataset names are an integration point: `resolve_inputs` takes a `lookup` that maps a
name to paths (on main, the session's catalog), tried for a string with no path separator that
is not an existing path.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pond_core.errors import PondConfigError
from pond_core.plan.logical import Repartition, RepartitionMethod
from pond_core.plan.sqlcompile.tables import DEFAULT_ROW_WIDTH, InputLayout, InputTable
from pond_core.sql_quote import path_list, quote_str
from pond_core.sqlplan import adapter

if TYPE_CHECKING:
    from pond_core.dataframe import DataFrame
    from pond_core.io import StorageOptions
    from pond_core.plan.sqlcompile.shadow import Shadow
    from pond_core.session import Session

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

InputValue = Any  # DataFrame | str | os.PathLike | Sequence[str]
Lookup = Callable[[str], Sequence[str] | None]


@dataclasses.dataclass(frozen=True)
class InputHashing:
    """The user's own partitioning (named_sql's `hash_by`): every input holding all `keys` is
    hash-partitioned on them into `npartitions` before the query; a join or aggregate on those
    keys then needs no exchange. Inputs without the keys are planned as usual."""

    keys: tuple[str, ...]
    npartitions: int


def resolve_inputs(
    session: Session,
    inputs: Mapping[str, InputValue],
    shadow: Shadow,
    lookup: Lookup | None = None,
    only: set[str] | None = None,
    hashing: InputHashing | None = None,
) -> dict[str, InputTable]:
    """The inputs as tables (only those in `only`, when the query's table names are known)."""
    from pond_core.dataframe import DataFrame

    out: dict[str, InputTable] = {}
    for name, value in inputs.items():
        if not _NAME.match(name):
            raise PondConfigError(f"sql inputs are named like SQL tables (letters, digits, _); bad name {name!r}")
        if isinstance(value, DataFrame):
            frame = value
        elif isinstance(value, (str, os.PathLike)) or (
            isinstance(value, Sequence) and value and all(isinstance(v, (str, os.PathLike)) for v in value)
        ):
            paths = [os.fspath(value)] if isinstance(value, (str, os.PathLike)) else [os.fspath(v) for v in value]
            paths = _catalog_paths(paths, lookup)
            frame = session.read_parquet(paths, recursive=True)
        else:
            raise PondConfigError(
                f"sql input {name!r} is a {type(value).__name__}; give a DataFrame, a path, a glob, an s3:// URL or a list of them"
            )
        if only is not None and name.lower() not in only:
            continue  # checked, but never read: the statement does not name it
        key = name.lower()  # SQL names are case-insensitive, as in DuckDB
        if key in out:
            raise PondConfigError(f"sql inputs {name!r} and {out[key].name!r} differ only in case")
        out[key] = _hashed(_describe(key, frame, shadow), hashing)
        shadow.create_table(key, out[key].schema)
    return out


def _hashed(table: InputTable, hashing: InputHashing | None) -> InputTable:
    if hashing is None:
        return table
    columns = {c.lower(): c for c, _ in table.schema}
    if not all(k.lower() in columns for k in hashing.keys):
        return table
    keys = tuple(columns[k.lower()] for k in hashing.keys)
    plan = Repartition(inputs=(table.plan,), n=hashing.npartitions, method=RepartitionMethod.HASH, keys=keys)
    layout = InputLayout(hashing.npartitions, keys)
    return dataclasses.replace(table, plan=plan, layout=layout, is_read=False, clusters={})


def _catalog_paths(paths: list[str], lookup: Lookup | None) -> list[str]:
    if lookup is None or len(paths) != 1:
        return paths
    only = paths[0]
    if "/" in only or "://" in only or os.path.exists(only):
        return paths
    found = lookup(only)
    return list(found) if found else paths


def _describe(name: str, frame: DataFrame, shadow: Shadow) -> InputTable:
    plan, storage = adapter.plan_of(frame), adapter.storage_of(frame)
    layout = adapter.frame_layout(plan)
    info = adapter.read_info(plan, storage)
    if info is not None:
        from pond_core.io import configure_duckdb

        configure_duckdb(shadow.con, storage, list(info.files))  # httpfs before the first read of s3://
        schema = tuple(shadow.describe(adapter.read_sql(plan, info) + " LIMIT 0"))
        rows, col_bytes, ndv, clusters = _parquet_sizes(storage, list(info.files), shadow)
        return InputTable(name, plan, schema, rows, col_bytes, layout, len(info.files), True, ndv, clusters)

    def describe(sql: str, view: str) -> list[tuple[str, str]] | None:
        try:
            return shadow.create_view(view, sql)
        except Exception:
            return None

    cols = adapter.frame_schema_sql(plan, storage, describe)
    if cols is None:
        # A Python step without a declared schema: only running the input tells its columns.
        cols = [(f.name, _arrow_to_duckdb(f.type)) for f in frame.limit(0).to_arrow().schema]
    rows = 0.0
    sizes: dict[str, float] = {}
    for paths in adapter.source_files(plan):
        try:
            r = _parquet_sizes(storage, _resolve(storage, paths), shadow)[0]
            rows += r
        except Exception:  # not Parquet, or not listable now: size unknown
            continue
    rows = rows or 1_000_000.0
    for c, _ in cols:
        sizes[c.lower()] = rows * DEFAULT_ROW_WIDTH / max(1, len(cols))
    return InputTable(name, plan, tuple(cols), rows, sizes, layout, 0, False)


def _resolve(storage: StorageOptions, paths: Sequence[str]) -> list[str]:
    from pond_core.io import resolve_paths

    return resolve_paths(list(paths), True, storage)


_SIZES: dict[tuple, tuple] = {}


def _parquet_sizes(storage: StorageOptions, files: list[str], shadow: Shadow) -> tuple:
    """Rows, uncompressed bytes and a distinct-count bound per top-level column, from the files'
    footers (cached for unchanged local files)."""
    from pond_core.io import configure_duckdb

    key = None
    if not any("://" in f for f in files):
        try:
            key = tuple((f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files)
        except OSError:
            key = None
        if key is not None and key in _SIZES:
            return _SIZES[key]
    con = shadow.con
    configure_duckdb(con, storage, files)
    meta = con.execute(
        "SELECT file_name, row_group_id, any_value(row_group_num_rows), list(path_in_schema), "
        "list(total_uncompressed_size), list(type), list(stats_min_value), list(stats_max_value), "
        "list(data_page_offset - dictionary_page_offset), list(stats_null_count) "
        f"FROM parquet_metadata({path_list(files)}) GROUP BY 1, 2"
    ).fetchall()
    rows = 0.0
    col_bytes: dict[str, float] = {}
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    ranged: dict[str, bool] = {}
    dict_ndv: dict[str, float] = {}
    per_file: dict[tuple[str, str], list] = {}  # (column, file) -> [lo, hi, lo literal, nulls]
    for fname, _, nrows, paths, sizes, types, mins, maxs, dicts, nulls in meta:
        rows += float(nrows or 0)
        for path, size, typ, mn, mx, dict_bytes, nnull in zip(paths, sizes, types, mins, maxs, dicts, nulls):
            top = str(path).split(", ")[0].split(".")[0].lower()
            col_bytes[top] = col_bytes.get(top, 0.0) + float(size or 0)
            if typ == "BYTE_ARRAY":
                # A dictionary page holds each distinct value once: its size over the value
                # length bounds the chunk's distinct count; a near-unique chunk is key-like.
                if dict_bytes is not None and dict_bytes > 0 and mn is not None and mx is not None:
                    chunk = 2.0 * dict_bytes / (4.0 + (len(mn) + len(mx)) / 2.0)
                    got = dict_ndv.get(top, 0.0)
                    dict_ndv[top] = float("inf") if chunk > 0.5 * float(nrows or 1) or got == float("inf") else max(got, chunk)
                else:
                    dict_ndv[top] = float("inf")
                continue
            a, b = _ordinal(typ, mn), _ordinal(typ, mx)
            if a is None or b is None or not ranged.get(top, True):
                ranged[top] = False
                continue
            ranged[top] = True
            lo[top] = min(lo.get(top, a), a)
            hi[top] = max(hi.get(top, b), b)
            entry = per_file.setdefault((top, fname), [a, b, _literal(mn), 0])
            if a < entry[0]:
                entry[0], entry[2] = a, _literal(mn)
            entry[1] = max(entry[1], b)
            entry[3] += int(nnull) if nnull is not None else 1
    ndv = {c: hi[c] - lo[c] + 1 for c in lo if ranged.get(c)}
    ndv.update({c: v for c, v in dict_ndv.items() if v != float("inf")})
    clusters: dict[str, tuple[tuple[str, str], ...]] = {}
    if len(files) > 1:
        for col in [c for c in lo if ranged.get(c)]:
            found = [(per_file.get((col, f)), f) for f in files]
            if any(e is None or e[3] for e, _ in found):
                continue  # a file without statistics, or NULL keys
            entries = [(e, f) for e, f in found if e is not None]
            entries.sort(key=lambda x: x[0][0])
            if all(entries[i][0][1] < entries[i + 1][0][0] for i in range(len(entries) - 1)):
                clusters[col] = tuple((f, e[2]) for e, f in entries)
    out = (rows, col_bytes, ndv, clusters)
    if key is not None:
        if len(_SIZES) > 256:
            _SIZES.clear()
        _SIZES[key] = out
    return out


def _literal(value: str) -> str:
    """A statistic as SQL: an integer, or a DATE literal."""
    try:
        return str(int(value))
    except ValueError:
        return "DATE " + quote_str(value)


def _ordinal(typ: str | None, value: str | None) -> float | None:
    """An integer or date statistic as a number (None for anything else)."""
    if value is None or typ not in ("INT32", "INT64"):
        return None
    try:
        return float(int(value))
    except ValueError:
        pass
    try:
        import datetime as dt

        return float(dt.date.fromisoformat(value).toordinal())
    except ValueError:
        return None


def _arrow_to_duckdb(arrow_type: Any) -> str:
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    try:
        con.register("t", pa.schema([pa.field("x", arrow_type)]).empty_table())
        return con.execute("DESCRIBE t").fetchall()[0][1]
    finally:
        con.close()
