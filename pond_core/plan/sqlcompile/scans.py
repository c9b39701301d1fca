"""Scans: the columns a query reads from one input, with the filters that apply to it alone.

A scan is the first per-partition step over an input. Small inputs are read as one partition
(so joins broadcast them without a gather); large ones are split over the query's partitions by
files, or by row ranges when there are fewer files than partitions. An input that is already
hash-partitioned (a DataFrame ending in `repartition(n, hash_by=...)`) keeps its layout, so a
join or aggregation on those keys needs no exchange.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sqlglot import exp

from pond_core.plan.logical import Node, Read, Repartition, RepartitionMethod
from pond_core.plan.sqlcompile.estimate import combined
from pond_core.plan.sqlcompile.model import ExchangeKind, Op, Partitioning, PlanNode
from pond_core.plan.sqlcompile.rel import Context, Rel, derive, sentinel
from pond_core.plan.sqlcompile.tables import InputTable
from pond_core.sql_quote import quote_ident


def base_rel(ctx: Context, table: InputTable, columns: Sequence[str]) -> Rel:
    """The input itself as a relation, laid out for the query's partition count."""
    plan = table.plan
    raw_bytes = table.bytes_of(columns)
    layout = table.layout
    n = ctx.n
    if layout.npartitions > 1 and layout.npartitions == n:
        part = Partitioning.hashed(n, layout.hash_keys) if layout.hash_keys else Partitioning.split(n)
        reason = "the input DataFrame is already in the query's partitions" + (
            f", hashed by ({', '.join(layout.hash_keys)})" if layout.hash_keys else ""
        )
        kind = None
    elif n == 1 or (raw_bytes <= ctx.options.single_read_threshold and layout.npartitions == 1):
        if layout.npartitions > 1:
            plan = Repartition(inputs=(plan,), n=1, method=RepartitionMethod.FILES)
        part = Partitioning.single()
        reason = "one partition for the whole query" if n == 1 else f"small input ({_mb(raw_bytes)}): read whole, broadcast where joined"
        kind = None
    else:
        by_rows = table.is_read and 0 < table.nfiles < n
        cluster = next((c for c in columns if c.lower() in table.clusters), None) if table.nfiles >= n else None
        if cluster is not None:
            ordered = table.clusters[cluster.lower()]
            files = [f for f, _ in ordered]
            first = {f: lit for f, lit in ordered}
            groups = ctx.group_files(files, n)
            bounds = tuple(first[g[0]] for g in groups[1:])
            plan = Repartition(inputs=(ctx.typed(_reread(plan, files), table.schema),), n=n, method=RepartitionMethod.FILES)
            part = Partitioning.clustered(n, cluster, bounds)
            reason = f"{_mb(raw_bytes)} read in {n} partitions by files, which hold disjoint ranges of {cluster}"
        else:
            method = RepartitionMethod.ROWS if by_rows else RepartitionMethod.FILES
            plan = Repartition(inputs=(plan,), n=n, method=method)
            part = Partitioning.split(n)
            reason = f"{_mb(raw_bytes)} read in {n} partitions by {'row ranges' if by_rows else 'files'}"
        kind = ExchangeKind.SPLIT
    node = PlanNode(Op.SCAN, f"read {table.name}", part, (), reason, kind, table.rows, raw_bytes)
    widths = tuple(table.width(c) for c, _ in table.schema)
    ndv = tuple(table.distinct(c) for c, _ in table.schema)
    view = ctx.shadow.new_name("in")
    ctx.shadow.create_view(view, f"SELECT * FROM {quote_ident(table.name)}")
    ctx.typed(table.plan, table.schema)
    return Rel(plan, tuple(c for c, _ in table.schema), tuple(t for _, t in table.schema), part, table.rows, widths, view, node, 1.0, ndv)


def _reread(plan: Node, files: list[str]) -> Read:
    """The same Parquet read over an explicit file list (in the order given), options kept."""
    assert isinstance(plan, Read), f"{plan.label()} is not a read"
    return Read(inputs=(), source=dataclasses.replace(plan.source, paths=tuple(files), recursive=False))


def scan(
    ctx: Context,
    table: InputTable,
    alias: str,
    columns: Sequence[tuple[str, str]],
    filters: Sequence[exp.Expression],
) -> Rel:
    """SELECT alias.col AS out, ... FROM the input AS alias WHERE filters (qualified by alias)."""
    raw = [c for c, _ in columns] or [table.schema[0][0]]
    base = base_rel(ctx, table, raw)
    outs = list(columns) or [(table.schema[0][0], f"{alias}__{table.schema[0][0]}")]
    select = ", ".join(f"{quote_ident(alias)}.{quote_ident(c)} AS {quote_ident(o)}" for c, o in outs)
    text = f"SELECT {select} FROM {sentinel(0)} AS {quote_ident(alias)}"
    from pond_core.plan.sqlcompile.exprs import and_all, sql

    where = and_all([f.copy() for f in filters])
    if where is not None:
        text += f" WHERE {sql(where)}"
    sel = combined(list(filters))
    mapping = {c: o for c, o in outs}
    detail = f"{table.name} AS {alias}: {', '.join(c for c, _ in outs)}" + (f" WHERE {sql(where)}" if where is not None else "")
    return derive(
        ctx, text, [base], part=base.part.renamed(mapping), rows=table.rows * sel, op=Op.FILTER if filters else Op.PROJECT,
        detail=detail, sel=sel, known={o: (base.width_of(c), base.distinct(c)) for c, o in outs},
    )


def _mb(nbytes: float) -> str:
    return f"{nbytes / 2**20:.1f} MiB"
