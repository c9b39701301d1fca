"""Resolve a stage's inputs, when it starts, into the SQL each partition task reads.

The physical plan names sources and upstream stages; only now are globs expanded and upstream
manifests read, so a partition task receives exact file lists (and row ranges), never a glob.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from pond_core.errors import PondConfigError, PondInputError
from pond_core.io import hive_read_options
from pond_core.plan.logical import SourceSpec
from pond_core.plan.physical import Stage, StageInput
from pond_core.plan.sql import quote_ident, quote_str, sql_list


@dataclasses.dataclass
class Part:
    """The files (or row ranges of files) one partition reads from one input."""

    files: list[str]
    ranges: list[tuple[str, int, int]] | None = None  # (file, first row, last row), inclusive


@dataclasses.dataclass
class ResolvedInput:
    spec: StageInput
    parts: list[Part]  # one per partition of the consuming stage
    schema: list[list[str]] | None  # (name, DuckDB type), for empty partitions
    read: Callable[[Part], str]
    upstream_files: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # path, rows, bytes


def resolve(
    stage: Stage,
    upstream: dict[str, dict[str, Any]],
    list_source: Callable[[SourceSpec], list[str]],
    row_counts: Callable[[list[str]], dict[str, int]],
    parallelism: int,
) -> tuple[int, list[ResolvedInput]]:
    """The stage's partition count and, per input, what each partition reads."""
    files_by_input = [_input_files(i, upstream, list_source) for i in stage.inputs]
    n = stage.npartitions
    if n == 0:
        n = max(1, min(len(files_by_input[0]), parallelism))
    resolved = []
    for inp, files in zip(stage.inputs, files_by_input):
        manifest = upstream.get(inp.stage) if inp.stage else None
        parts = _split(inp, files, manifest, n, row_counts)
        read = _reader(inp, manifest, files)
        upstream_files = files if manifest else []
        resolved.append(ResolvedInput(inp, parts, manifest.get("schema") if manifest else None, read, upstream_files))
    return n, resolved


def _input_files(inp: StageInput, upstream: dict[str, dict[str, Any]], list_source: Callable) -> list[Any]:
    if inp.source is not None:
        return list_source(inp.source)
    manifest = upstream[inp.stage]
    return [f for p in manifest["partitions"] for f in p["files"]]


def _split(inp: StageInput, files: list[Any], manifest: dict | None, n: int, row_counts: Callable) -> list[Part]:
    paths = [f if isinstance(f, str) else f["path"] for f in files]
    if inp.split == "all":
        return [Part(paths)] * n
    if inp.split == "bucket":
        return [Part([f["path"] for f in files if f.get("bucket") == k]) for k in range(n)]
    if inp.split == "files":
        return [Part(group) for group in even_groups(paths, n)]
    if inp.split == "rows":
        if manifest is not None:
            counts = {f["path"]: f["rows"] for f in files}
        else:
            if inp.source.format != "parquet":
                raise PondConfigError("repartition(by_rows=True) reads row counts from Parquet metadata; read CSV/JSON input through a step first")
            counts = row_counts(paths)
        return [Part([r[0] for r in rs], rs) for rs in even_row_ranges([(p, counts[p]) for p in paths], n)]
    raise ValueError(f"unknown split {inp.split}")


def even_groups(items: list[str], n: int) -> list[list[str]]:
    """n contiguous groups whose sizes differ by at most one, order kept."""
    base, extra = divmod(len(items), n)
    groups, start = [], 0
    for k in range(n):
        size = base + (1 if k < extra else 0)
        groups.append(items[start : start + size])
        start += size
    return groups


def even_row_ranges(files: list[tuple[str, int]], n: int) -> list[list[tuple[str, int, int]]]:
    """Split the concatenated rows of `files` into n contiguous ranges of near-equal size."""
    total = sum(rows for _, rows in files)
    bounds = [total * k // n for k in range(n + 1)]
    parts: list[list[tuple[str, int, int]]] = []
    for k in range(n):
        lo, hi = bounds[k], bounds[k + 1]  # global rows [lo, hi)
        ranges, offset = [], 0
        for path, rows in files:
            first, last = max(lo, offset), min(hi, offset + rows)
            if first < last:
                ranges.append((path, first - offset, last - offset - 1))
            offset += rows
        parts.append(ranges)
    return parts


def _reader(inp: StageInput, manifest: dict | None, files: list[Any]) -> Callable[[Part], str]:
    if inp.source is not None:
        # Hive column types come from all of the input's files, so every task agrees on them.
        opts = hive_read_options(files, None, inp.source.hive_partitioning) if inp.source.format != "json" else ""
        return lambda part: source_sql(inp.source, part, opts)
    schema = manifest.get("schema") or []
    return lambda part: intermediate_sql(part, schema)


def source_sql(src: SourceSpec, part: Part, hive_opts: str = "") -> str:
    if not part.files:
        raise PondInputError(f"no files to read for {', '.join(src.paths)}")
    cols = "*" if not src.columns else ", ".join(quote_ident(c) for c in src.columns)
    opts = _parquet_opts(src, hive_opts)
    if part.ranges is not None:
        body = " UNION ALL ".join(
            f"SELECT * EXCLUDE (file_row_number) FROM read_parquet({quote_str(f)}, file_row_number=true{opts}) "
            f"WHERE file_row_number BETWEEN {a} AND {b}"
            for f, a, b in part.ranges
        ) or f"SELECT * FROM read_parquet({sql_list(part.files[:1])}{opts}) WHERE false"
        sql = f"SELECT {cols} FROM ({body})"
    else:
        sql = f"SELECT {cols} FROM {_scan(src, part.files, hive_opts)}"
    if src.limit is not None:
        sql += f" LIMIT {src.limit}"
    return sql


def _parquet_opts(src: SourceSpec, hive_opts: str) -> str:
    return (", union_by_name=true" if src.union_by_name else "") + hive_opts


def _scan(src: SourceSpec, files: list[str], hive_opts: str) -> str:
    if src.format == "parquet":
        return f"read_parquet({sql_list(files)}{_parquet_opts(src, hive_opts)})"
    columns = "{" + ", ".join(f"{quote_str(n)}: {quote_str(t)}" for n, t in src.schema or ()) + "}"
    if src.format == "csv":
        return (
            f"read_csv({sql_list(files)}, columns={columns}, delim={quote_str(src.delim)}, "
            f"header={'true' if src.header else 'false'}, auto_detect=false{hive_opts})"
        )
    if src.format == "json":
        return f"read_json({sql_list(files)}, columns={columns}, format='newline_delimited')"
    raise PondConfigError(f"unknown source format {src.format!r}")


def intermediate_sql(part: Part, schema: list[list[str]]) -> str:
    if part.ranges is not None:
        if not part.ranges:
            return empty_sql(schema)
        return " UNION ALL ".join(
            f"SELECT * EXCLUDE (file_row_number) FROM read_parquet({quote_str(f)}, file_row_number=true, hive_partitioning=false) "
            f"WHERE file_row_number BETWEEN {a} AND {b}"
            for f, a, b in part.ranges
        )
    if not part.files:
        return empty_sql(schema)
    return f"SELECT * FROM read_parquet({sql_list(part.files)}, hive_partitioning=false)"


def empty_sql(schema: list[list[str]]) -> str:
    if not schema:
        return "SELECT NULL AS empty WHERE false"
    cols = ", ".join(f"CAST(NULL AS {typ}) AS {quote_ident(name)}" for name, typ in schema)
    return f"SELECT {cols} WHERE false"
