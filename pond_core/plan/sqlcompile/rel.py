"""Relations the compiler builds: a pond logical plan node plus what the compiler knows of it.

A `Rel` is a node of pond's logical plan (the nodes DataFrames build) with its columns and their
DuckDB types, its partitioning, size estimates, the shadow view that mirrors it and the
description node that explains it. New relations are made only by `derive` (a per-partition
`Sql` node) and the exchange functions (`Repartition` nodes), so a compiled statement is an
ordinary logical plan: the same compile, fusion and execution as any DataFrame's.

Generated SQL names its inputs `__pond_in_<i>__` (plan/sql.py's binder), so it can be written
with sqlglot or by hand and bound two ways: to `{i}` placeholders for the plan node, and to
shadow views for type checking.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pond_core.plan.logical import Node, Repartition, RepartitionMethod, Sql
from pond_core.plan.sql import bind_input_names, input_name, names_as_inputs
from pond_core.plan.sqlcompile.model import (
    ExchangeKind,
    Fallback,
    Op,
    Partitioning,
    PartKind,
    PlanNode,
    PlanOptions,
)
from pond_core.plan.sqlcompile.shadow import STORED_AS, Shadow
from pond_core.plan.sqlcompile.tables import type_width
from pond_core.sql_quote import quote_ident

if TYPE_CHECKING:
    from pond_core.plan.sqlcompile.tables import FileGrouping, InputTable



class NotDistributable(Exception):
    """Raised while planning a part of a query that has no distributed plan; the nearest
    boundary (a CTE, a subquery, the whole query) then runs in one partition."""


sentinel = input_name  # generated SQL names input i as plan/sql.py's binder does
pond_sql = names_as_inputs


def shadow_sql(text: str, views: Sequence[str]) -> str:
    return bind_input_names(text, [quote_ident(v) for v in views])


@dataclasses.dataclass
class Context:
    """What every compiling function needs: the options, the shadow, the inputs, and pond's own
    split of a read's files (FileGrouping)."""

    group_files: FileGrouping
    options: PlanOptions
    n: int
    shadow: Shadow
    tables: dict[str, InputTable]
    fallbacks: list[Fallback] = dataclasses.field(default_factory=list)
    # the (name, DuckDB type) columns of every plan node made, by node object (ids are computed later)
    schemas: dict[int, tuple[tuple[str, str], ...]] = dataclasses.field(default_factory=dict)

    def typed(self, plan: Node, columns: Sequence[tuple[str, str]]) -> Node:
        self.schemas[id(plan)] = tuple(columns)
        return plan

    @property
    def threshold(self) -> float:
        return float(self.options.broadcast_threshold)


@dataclasses.dataclass(frozen=True, eq=False)
class Rel:
    plan: Node  # pond's logical plan computing this relation
    columns: tuple[str, ...]
    types: tuple[str, ...]
    part: Partitioning
    rows: float
    widths: tuple[float, ...]
    view: str
    node: PlanNode
    sel: float = 1.0  # fraction of its base rows left after filters
    ndv: tuple[float, ...] = ()  # distinct-count estimate per column (<= rows)

    @property
    def n(self) -> int:
        return 1 if self.part.is_single else self.part.n

    @property
    def bytes(self) -> float:
        return self.rows * sum(self.widths)

    def type_of(self, col: str) -> str:
        return self.types[self.columns.index(col)]

    def width_of(self, col: str) -> float:
        return self.widths[self.columns.index(col)] if col in self.columns else 8.0

    def distinct(self, col: str) -> float:
        if col in self.columns and self.ndv:
            return max(1.0, min(self.rows, self.ndv[self.columns.index(col)]))
        return max(1.0, self.rows)

    def distinct_of(self, cols: Sequence[str]) -> float:
        """Distinct combinations of cols: the product of their counts, at most the rows."""
        out = 1.0
        for c in cols:
            out *= self.distinct(c)
        return max(1.0, min(self.rows, out))

    def select_list(self, cols: Sequence[str] | None = None, qualifier: str | None = None) -> str:
        q = f"{quote_ident(qualifier)}." if qualifier else ""
        return ", ".join(f"{q}{quote_ident(c)}" for c in (cols if cols is not None else self.columns))


class StepInputs:
    """The inputs of one generated step, each named by a sentinel in its SQL."""

    def __init__(self) -> None:
        self.rels: list[Rel] = []

    def add(self, rel: Rel) -> str:
        for i, existing in enumerate(self.rels):
            if existing is rel:
                return sentinel(i)
        self.rels.append(rel)
        return sentinel(len(self.rels) - 1)


def derive(
    ctx: Context,
    text: str,
    inputs: Sequence[Rel],
    *,
    part: Partitioning,
    rows: float,
    op: Op,
    detail: str,
    reason: str = "",
    sel: float | None = None,
    node_inputs: Sequence[PlanNode] | None = None,
    known: dict[str, tuple[float, float]] | None = None,
) -> Rel:
    """A per-partition SQL step over `inputs` (all of one partition count, or one partition)."""
    if not inputs:
        raise NotDistributable("a step without inputs")
    counts = {r.n for r in inputs if r.n > 1}
    if len(counts) > 1:
        raise AssertionError(f"planner bug: step inputs have partition counts {sorted(counts)}: {text}")
    view = ctx.shadow.new_name()
    cols = ctx.shadow.create_view(view, shadow_sql(text, [r.view for r in inputs]))
    if any(t.upper() in STORED_AS for _, t in cols):
        casts = ", ".join(
            f"CAST({quote_ident(c)} AS {STORED_AS[t.upper()]}) AS {quote_ident(c)}" if t.upper() in STORED_AS else quote_ident(c)
            for c, t in cols
        )
        text = f"SELECT {casts} FROM ({text}) AS __pond_h"
        cols = ctx.shadow.create_view(view, shadow_sql(text, [r.view for r in inputs]))
    plan = ctx.typed(Sql(inputs=tuple(r.plan for r in inputs), query=pond_sql(text)), cols)
    seen: dict[str, tuple[float, float]] = dict(known or {})
    for r in inputs:
        for c, w in zip(r.columns, r.widths):
            seen.setdefault(c, (w, r.distinct(c)))
    rows = max(rows, 0.0)
    widths = tuple(seen[c][0] if c in seen else type_width(t) for c, t in cols)
    ndv = tuple(min(rows, seen[c][1]) if c in seen else rows for c, _ in cols)
    node = PlanNode(op, detail, part, tuple(node_inputs if node_inputs is not None else (r.node for r in inputs)), reason, rows=rows, bytes=rows * sum(widths))
    base_sel = min((r.sel for r in inputs), default=1.0)
    return Rel(plan, tuple(c for c, _ in cols), tuple(t for _, t in cols), part, rows, widths, view, node,
               sel if sel is not None else base_sel, ndv)


# -- exchanges ---------------------------------------------------------------------------------


def hash_exchange(ctx: Context, rel: Rel, keys: Sequence[str], n: int, reason: str) -> Rel:
    keys = tuple(keys)
    if n == 1:
        return gather(ctx, rel, reason)
    if rel.part.kind is PartKind.HASH and rel.part.hashed_on(keys) and rel.part.n == n:
        return rel
    plan = Repartition(inputs=(rel.plan,), n=n, method=RepartitionMethod.HASH, keys=keys)
    part = Partitioning.hashed(n, keys)
    node = PlanNode(Op.EXCHANGE, f"hash by ({', '.join(keys)}) into {n}", part, (rel.node,), reason, ExchangeKind.HASH, rel.rows, rel.bytes)
    return dataclasses.replace(rel, plan=plan, part=part, node=node)


def gather(ctx: Context, rel: Rel, reason: str, kind: ExchangeKind = ExchangeKind.GATHER) -> Rel:
    if rel.part.is_single:
        return rel
    plan = Repartition(inputs=(rel.plan,), n=1, method=RepartitionMethod.FILES)
    part = Partitioning.single()
    node = PlanNode(Op.EXCHANGE, "into 1 partition", part, (rel.node,), reason, kind, rel.rows, rel.bytes)
    return dataclasses.replace(rel, plan=plan, part=part, node=node)


def broadcast(ctx: Context, rel: Rel, reason: str) -> Rel:
    """The relation whole in one partition, which pond hands to every partition of its user."""
    if rel.part.is_single:
        node = PlanNode(Op.EXCHANGE, "whole relation to every partition", rel.part, (rel.node,), reason, ExchangeKind.BROADCAST, rel.rows, rel.bytes)
        return dataclasses.replace(rel, node=node)
    return gather(ctx, rel, reason, ExchangeKind.BROADCAST)


def spread(ctx: Context, rel: Rel, n: int, reason: str) -> Rel:
    """A one-partition relation as n partitions without copying rows (its files split evenly)."""
    if n == 1 or not rel.part.is_single:
        return rel
    plan = Repartition(inputs=(rel.plan,), n=n, method=RepartitionMethod.FILES)
    part = Partitioning.split(n)
    node = PlanNode(Op.EXCHANGE, f"split into {n}", part, (rel.node,), reason, ExchangeKind.SPLIT, rel.rows, rel.bytes)
    return dataclasses.replace(rel, plan=plan, part=part, node=node)


def project(ctx: Context, rel: Rel, exprs: Sequence[tuple[str, str]], detail: str, reason: str = "") -> Rel:
    """SELECT expr AS name, ... per partition; the layout follows the columns passed through."""
    sql = f"SELECT {', '.join(f'{e} AS {quote_ident(n)}' for e, n in exprs)} FROM {sentinel(0)}"
    mapping: dict[str, str] = {}
    for e, n in exprs:
        for c in rel.columns:
            if e == quote_ident(c):
                mapping.setdefault(c, n)
    return derive(ctx, sql, [rel], part=rel.part.renamed(mapping), rows=rel.rows, op=Op.PROJECT, detail=detail, reason=reason)


def partitions_for(ctx: Context, nbytes: float) -> int:
    """n for a relation this large, or 1 when it fits one partition comfortably."""
    if ctx.n == 1:
        return 1
    return ctx.n if nbytes > ctx.options.partition_bytes else 1


def choose_npartitions(options: PlanOptions, total_bytes: float, cores: int, hashed_inputs: Sequence[int]) -> int:
    if options.npartitions:
        return int(options.npartitions)
    if hashed_inputs:
        return max(hashed_inputs)
    cap = options.max_partitions or max(1, cores)
    return max(1, min(cap, math.ceil(total_bytes / options.partition_bytes)))


__all__ = [
    "Context", "NotDistributable", "PartKind", "Rel", "StepInputs", "broadcast", "derive", "gather",
    "hash_exchange", "pond_sql", "project", "sentinel", "shadow_sql", "spread",
]
