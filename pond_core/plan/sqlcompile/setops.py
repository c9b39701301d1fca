"""UNION, INTERSECT and EXCEPT across partitions.

Both sides are first cast to the column types DuckDB gives the set operation (so equal values
hash alike) and named like its left side.
- UNION ALL: per partition, once both sides have the same partition count (a one-partition
  side is split by files, which moves no rows);
- UNION: UNION ALL, then the two-phase DISTINCT;
- INTERSECT / EXCEPT [ALL]: both sides hashed on all columns, so equal rows (NULLs included,
  which set operations treat as equal and hash alike) meet; then per partition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlglot import exp

from pond_core.plan.sqlcompile import exprs as X
from pond_core.plan.sqlcompile.model import Op, Partitioning
from pond_core.plan.sqlcompile.ordering import SortKey, distinct, order_limit
from pond_core.plan.sqlcompile.rel import (
    Context,
    NotDistributable,
    Rel,
    derive,
    gather,
    hash_exchange,
    partitions_for,
    project,
    sentinel,
    shadow_sql,
    spread,
)
from pond_core.plan.sqlcompile.scope import Env, Planned
from pond_core.sql_quote import quote_ident


def plan_setop(ctx: Context, e: exp.Expression, env: Env, label: str, plan_branch: Callable[..., Planned]) -> Planned:
    if e.args.get("by_name"):
        raise NotDistributable("UNION BY NAME")
    left = plan_branch(e.this, env, f"{label} (left)")
    right = plan_branch(e.expression, env, f"{label} (right)")
    if len(left.rel.columns) != len(right.rel.columns):
        raise NotDistributable("set operation sides with different column counts")
    names = left.names
    op = {exp.Union: "UNION", exp.Intersect: "INTERSECT", exp.Except: "EXCEPT"}[type(e)]
    is_distinct = bool(e.args.get("distinct"))
    word = f"{op}{'' if is_distinct else ' ALL'}"
    # The types DuckDB gives a set operation are those of UNION ALL over the same sides.
    union = f"SELECT * FROM {sentinel(0)} UNION ALL SELECT * FROM {sentinel(1)}"
    types = [t for _, t in ctx.shadow.describe(shadow_sql(union, [left.rel.view, right.rel.view]))]
    lrel = _conform(ctx, left.rel, names, types, label)
    rrel = _conform(ctx, right.rel, names, types, label)
    cols = ", ".join(quote_ident(c) for c in names)
    if op == "UNION":
        if lrel.part.is_single and rrel.part.is_single:
            part = Partitioning.single()
        else:
            lrel = spread(ctx, lrel, ctx.n, f"{label}: UNION ALL runs per partition")
            rrel = spread(ctx, rrel, ctx.n, f"{label}: UNION ALL runs per partition")
            part = Partitioning.split(ctx.n)
        text = f"SELECT {cols} FROM {sentinel(0)} UNION ALL SELECT {cols} FROM {sentinel(1)}"
        rel = derive(ctx, text, [lrel, rrel], part=part, rows=lrel.rows + rrel.rows, op=Op.SET_OP, detail=f"{label}: UNION ALL",
                     reason="per partition: no row needs another")
        if is_distinct:
            rel = distinct(ctx, rel, f"{label}: UNION")
    else:
        if not (lrel.part.is_single and rrel.part.is_single):
            n = partitions_for(ctx, lrel.bytes + rrel.bytes)
            if n == 1:
                lrel = gather(ctx, lrel, f"{label}: small {op}: one partition")
                rrel = gather(ctx, rrel, f"{label}: small {op}: one partition")
            else:
                lrel = hash_exchange(ctx, lrel, names, n, f"{label}: equal rows of both sides must meet")
                rrel = hash_exchange(ctx, rrel, names, n, f"{label}: equal rows of both sides must meet")
        text = f"SELECT {cols} FROM {sentinel(0)} {word} SELECT {cols} FROM {sentinel(1)}"
        rel = derive(ctx, text, [lrel, rrel], part=lrel.part, rows=lrel.rows, op=Op.SET_OP, detail=f"{label}: {word}",
                     reason="equal rows share a partition")
    keys = []
    for o in (e.args["order"].expressions if e.args.get("order") else []):
        t = o.this
        if isinstance(t, exp.Column) and not t.table and t.name in names:
            col = t.name
        elif isinstance(t, exp.Literal) and not t.is_string and t.this.isdigit() and 1 <= int(t.this) <= len(names):
            col = names[int(t.this) - 1]
        else:
            raise NotDistributable("ORDER BY of a set operation that is not an output column")
        keys.append(SortKey(col, bool(o.args.get("desc")), bool(o.args.get("nulls_first"))))
    from pond_core.plan.sqlcompile.block import limit_offset

    limit, offset = limit_offset(e)
    if keys or limit is not None or offset:
        rel = order_limit(ctx, rel, keys, limit, offset, label)
    return Planned(rel, tuple(names))


def _conform(ctx: Context, rel: Rel, names: Sequence[str], types: Sequence[str], label: str) -> Rel:
    if tuple(rel.columns) == tuple(names) and tuple(rel.types) == tuple(types):
        return rel
    exprs = []
    for c, have, name, want in zip(rel.columns, rel.types, names, types):
        e = quote_ident(c) if have == want else f"CAST({quote_ident(c)} AS {want})"
        exprs.append((e, name))
    return project(ctx, rel, exprs, f"{label}: columns as the set operation types them")


__all__ = ["X", "plan_setop"]
