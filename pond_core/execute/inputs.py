"""Resolve a stage's inputs, when it starts, into the SQL each partition task reads.

The physical plan names sources and upstream stages; only now are globs expanded and upstream
manifests read, so a partition task receives exact file lists (and row ranges), never a glob.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from pond_core.errors import PondConfigError, PondInputError
from pond_core.execute.results import StageManifest
from pond_core.io import hive_read_options
from pond_core.io.table_read import TableFiles, table_sql
from pond_core.io.written import WrittenFile
from pond_core.plan.logical import SourceFormat, SourceSpec
from pond_core.plan.physical import Schema, SourceInput, Split, Stage, StageInput, UpstreamInput
from pond_core.sql_quote import path_list, quote_ident, quote_path, quote_str


@dataclasses.dataclass(frozen=True)
class Part:
    """The files (or row ranges of files) one partition reads from one input."""

    files: tuple[str, ...]
    ranges: tuple[tuple[str, int, int], ...] | None = None  # (file, first row, last row), inclusive


@dataclasses.dataclass(frozen=True)
class ResolvedInput:
    spec: StageInput
    parts: tuple[Part, ...]  # one per partition of the consuming stage
    read: Callable[[Part], str]  # the SQL that reads a part
    schema: Schema = ()  # an upstream input's columns, for its empty partitions
    upstream_files: tuple[WrittenFile, ...] = ()  # an upstream input's committed files


@dataclasses.dataclass(frozen=True)
class ResolvedStage:
    """A stage's partition count and, per input, what each partition reads."""

    npartitions: int
    inputs: tuple[ResolvedInput, ...]


ListSource = Callable[[SourceSpec], "list[str] | TableFiles"]
RowCounts = Callable[[list[str]], dict[str, int]]


def resolve(
    stage: Stage,
    upstream: dict[str, StageManifest],
    list_source: ListSource,
    row_counts: RowCounts,
    parallelism: int,
) -> ResolvedStage:
    """Expand the stage's sources and upstream manifests into what each partition reads."""
    sources = {i.name: list_source(i.source) for i in stage.inputs if isinstance(i, SourceInput)}
    listed = {name: list(s.files) if isinstance(s, TableFiles) else s for name, s in sources.items()}
    n = stage.npartitions
    if n == 0:
        n = max(1, min(len(_paths(stage.inputs[0], listed, upstream)), parallelism))
    resolved = []
    for inp in stage.inputs:
        source = sources.get(inp.name)
        if isinstance(inp, SourceInput) and isinstance(source, TableFiles):
            resolved.append(_resolve_table(inp, source, n))
        elif isinstance(inp, SourceInput):
            resolved.append(_resolve_source(inp, listed[inp.name], n, row_counts))
        else:
            resolved.append(_resolve_upstream(inp, upstream[inp.stage], n))
    return ResolvedStage(n, tuple(resolved))


def _paths(inp: StageInput, listed: dict[str, list[str]], upstream: dict[str, StageManifest]) -> list[str]:
    if isinstance(inp, SourceInput):
        return listed[inp.name]
    return [f.path for f in upstream[inp.stage].files]


def _resolve_source(inp: SourceInput, files: list[str], n: int, row_counts: RowCounts) -> ResolvedInput:
    if inp.split is Split.ROWS:
        if inp.source.format is not SourceFormat.PARQUET:
            raise PondConfigError("repartition(by_rows=True) reads row counts from Parquet metadata; read CSV/JSON input through a step first")
        counts = row_counts(files)
        parts = _row_parts([(p, counts[p]) for p in files], n)
    else:
        parts = _split(inp.split, files, n, [])
    # Hive column types come from all of the input's files, so every task agrees on them.
    label = ", ".join(inp.source.paths)
    opts = hive_read_options(files, None, inp.source.hive_partitioning, label) if inp.source.format is not SourceFormat.JSON else ""
    source = inp.source
    return ResolvedInput(inp, parts, lambda part: source_sql(source, part, opts) if part.files else empty_source_sql(source, files, opts))


def _resolve_table(inp: SourceInput, table: TableFiles, n: int) -> ResolvedInput:
    """A table snapshot's files, split by file (row splits need row counts: not for tables)."""
    if inp.split is Split.ROWS:
        raise PondConfigError("repartition(by_rows=True) is not supported on table sources; repartition by files or hash")
    parts = _split(inp.split, list(table.files), n, [])
    columns = inp.source.columns
    limit = inp.source.limit
    return ResolvedInput(
        inp, parts, lambda part: table_sql(table, part.files, columns) + (f" LIMIT {limit}" if limit is not None else "")
    )


def _resolve_upstream(inp: UpstreamInput, manifest: StageManifest, n: int) -> ResolvedInput:
    files = manifest.files
    paths = [f.path for f in files]
    if inp.split is Split.ROWS:
        parts = _row_parts([(f.path, f.rows) for f in files], n)
    else:
        parts = _split(inp.split, paths, n, files)
    schema = manifest.schema
    return ResolvedInput(inp, parts, lambda part: intermediate_sql(part, schema), schema, tuple(files))


def _split(split: Split, paths: list[str], n: int, files: Sequence[WrittenFile]) -> tuple[Part, ...]:
    if split is Split.ALL:
        return (Part(tuple(paths)),) * n
    if split is Split.BUCKET:
        return tuple(Part(tuple(f.path for f in files if f.bucket == k)) for k in range(n))
    if split is Split.FILES:
        return tuple(Part(tuple(group)) for group in even_groups(paths, n))
    raise ValueError(f"unknown split {split}")


def _row_parts(counts: list[tuple[str, int]], n: int) -> tuple[Part, ...]:
    return tuple(Part(tuple(r[0] for r in rs), tuple(rs)) for rs in even_row_ranges(counts, n))


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


def empty_source_sql(src: SourceSpec, files: list[str], hive_opts: str = "") -> str:
    """No rows, with the source's columns: a partition that got no files (more partitions than
    files, as smallpond allows). The columns come from the source's first file."""
    if not files:
        raise PondInputError(f"no files to read for {', '.join(src.paths)}")
    return f"SELECT * FROM ({source_sql(src, Part((files[0],)), hive_opts)}) LIMIT 0"


def source_sql(src: SourceSpec, part: Part, hive_opts: str = "") -> str:
    if not part.files:
        raise PondInputError(f"no files to read for {', '.join(src.paths)}")
    cols = "*" if not src.columns else ", ".join(quote_ident(c) for c in src.columns)
    opts = _parquet_opts(src, hive_opts)
    if part.ranges is not None:
        body = " UNION ALL ".join(
            f"SELECT * EXCLUDE (file_row_number) FROM read_parquet({quote_path(f)}, file_row_number=true{opts}) "
            f"WHERE file_row_number BETWEEN {a} AND {b}"
            for f, a, b in part.ranges
        ) or f"SELECT * FROM read_parquet({path_list(part.files[:1])}{opts}) WHERE false"
        sql = f"SELECT {cols} FROM ({body})"
    else:
        sql = f"SELECT {cols} FROM {_scan(src, list(part.files), hive_opts)}"
    if src.limit is not None:
        sql += f" LIMIT {src.limit}"
    return sql


def _parquet_opts(src: SourceSpec, hive_opts: str) -> str:
    return (", union_by_name=true" if src.union_by_name else "") + hive_opts


def _scan(src: SourceSpec, files: list[str], hive_opts: str) -> str:
    if src.format is SourceFormat.PARQUET:
        return f"read_parquet({path_list(files)}{_parquet_opts(src, hive_opts)})"
    columns = "{" + ", ".join(f"{quote_str(n)}: {quote_str(t)}" for n, t in src.schema or ()) + "}"
    if src.format is SourceFormat.CSV:
        return (
            f"read_csv({path_list(files)}, columns={columns}, delim={quote_str(src.delim)}, "
            f"header={'true' if src.header else 'false'}, auto_detect=false{hive_opts})"
        )
    if src.format is SourceFormat.JSON:
        return f"read_json({path_list(files)}, columns={columns}, format='newline_delimited')"
    raise PondConfigError(f"unknown source format {src.format!r}")


def intermediate_sql(part: Part, schema: Schema) -> str:
    if part.ranges is not None:
        if not part.ranges:
            return empty_sql(schema)
        return " UNION ALL ".join(
            f"SELECT * EXCLUDE (file_row_number) FROM read_parquet({quote_path(f)}, file_row_number=true, hive_partitioning=false) "
            f"WHERE file_row_number BETWEEN {a} AND {b}"
            for f, a, b in part.ranges
        )
    if not part.files:
        return empty_sql(schema)
    return f"SELECT * FROM read_parquet({path_list(part.files)}, hive_partitioning=false)"


def empty_sql(schema: Schema) -> str:
    if not schema:
        return "SELECT NULL AS empty WHERE false"
    cols = ", ".join(f"CAST(NULL AS {typ}) AS {quote_ident(name)}" for name, typ in schema)
    return f"SELECT {cols} WHERE false"
