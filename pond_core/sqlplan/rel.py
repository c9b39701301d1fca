"""Relations the planner builds: a lazy pond DataFrame plus what the planner knows about it.

A `Rel` is a DataFrame with its columns and their DuckDB types, its partitioning, size
estimates, the shadow view that mirrors it and the plan node that explains it. New relations are
made only by `derive` (per-partition SQL, i.e. `partial_sql`) and the exchange functions
(`repartition`), so every plan is made through pond's public API.

Generated SQL names its inputs with sentinel table names (`__pond_in_0__`) so it can be written
with sqlglot or by hand and bound two ways: to `{0}` placeholders for pond, and to shadow views
for type checking.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pond_core.plan.sql import quote_ident
from pond_core.sqlplan.model import (
    ExchangeKind,
    Fallback,
    Op,
    Partitioning,
    PartKind,
    PlanNode,
    PlanOptions,
)
from pond_core.sqlplan.shadow import STORED_AS, Shadow

if TYPE_CHECKING:
    from pond_core.dataframe import DataFrame
    from pond_core.session import Session
    from pond_core.sqlplan.inputs import InputTable

_SENTINEL = re.compile(r'"?__pond_in_(\d+)__"?')
TYPE_WIDTH = {"BOOLEAN": 1, "TINYINT": 1, "SMALLINT": 2, "INTEGER": 4, "DATE": 4, "FLOAT": 4, "BLOB": 32}


class NotDistributable(Exception):
    """Raised while planning a part of a query that has no distributed plan; the nearest
    boundary (a CTE, a subquery, the whole query) then runs in one partition."""


def sentinel(i: int) -> str:
    return f"__pond_in_{i}__"


def pond_sql(text: str) -> str:
    """SQL with sentinels as pond's `{i}` placeholders; literal braces escaped."""
    escaped = text.replace("{", "{{").replace("}", "}}")
    return _SENTINEL.sub(lambda m: "{" + m.group(1) + "}", escaped)


def shadow_sql(text: str, views: Sequence[str]) -> str:
    return _SENTINEL.sub(lambda m: quote_ident(views[int(m.group(1))]), text)


def type_width(typ: str) -> float:
    base = typ.split("(")[0].upper()
    if base in TYPE_WIDTH:
        return TYPE_WIDTH[base]
    if base == "VARCHAR":
        return 24
    if base == "DECIMAL":
        return 8
    return 8


@dataclasses.dataclass
class Context:
    """What every planning function needs: the session, the options, the shadow, the inputs."""

    session: Session
    options: PlanOptions
    n: int
    shadow: Shadow
    tables: dict[str, InputTable]
    fallbacks: list[Fallback] = dataclasses.field(default_factory=list)

    @property
    def threshold(self) -> float:
        return float(self.options.broadcast_threshold)


@dataclasses.dataclass(frozen=True, eq=False)
class Rel:
    df: DataFrame
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
    df = ctx.session.partial_sql(pond_sql(text), *[r.df for r in inputs])
    seen: dict[str, tuple[float, float]] = dict(known or {})
    for r in inputs:
        for c, w in zip(r.columns, r.widths):
            seen.setdefault(c, (w, r.distinct(c)))
    rows = max(rows, 0.0)
    widths = tuple(seen[c][0] if c in seen else type_width(t) for c, t in cols)
    ndv = tuple(min(rows, seen[c][1]) if c in seen else rows for c, _ in cols)
    node = PlanNode(op, detail, part, tuple(node_inputs if node_inputs is not None else (r.node for r in inputs)), reason, rows=rows, bytes=rows * sum(widths))
    base_sel = min((r.sel for r in inputs), default=1.0)
    return Rel(df, tuple(c for c, _ in cols), tuple(t for _, t in cols), part, rows, widths, view, node,
               sel if sel is not None else base_sel, ndv)


# -- exchanges ---------------------------------------------------------------------------------


def hash_exchange(ctx: Context, rel: Rel, keys: Sequence[str], n: int, reason: str) -> Rel:
    keys = tuple(keys)
    if n == 1:
        return gather(ctx, rel, reason)
    if rel.part.kind is PartKind.HASH and rel.part.hashed_on(keys) and rel.part.n == n:
        return rel
    df = rel.df.repartition(n, hash_by=list(keys))
    part = Partitioning.hashed(n, keys)
    node = PlanNode(Op.EXCHANGE, f"hash by ({', '.join(keys)}) into {n}", part, (rel.node,), reason, ExchangeKind.HASH, rel.rows, rel.bytes)
    return dataclasses.replace(rel, df=df, part=part, node=node)


def gather(ctx: Context, rel: Rel, reason: str, kind: ExchangeKind = ExchangeKind.GATHER) -> Rel:
    if rel.part.is_single:
        return rel
    df = rel.df.repartition(1)
    part = Partitioning.single()
    node = PlanNode(Op.EXCHANGE, "into 1 partition", part, (rel.node,), reason, kind, rel.rows, rel.bytes)
    return dataclasses.replace(rel, df=df, part=part, node=node)


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
    df = rel.df.repartition(n)
    part = Partitioning.split(n)
    node = PlanNode(Op.EXCHANGE, f"split into {n}", part, (rel.node,), reason, ExchangeKind.SPLIT, rel.rows, rel.bytes)
    return dataclasses.replace(rel, df=df, part=part, node=node)


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
