"""Subqueries in expressions (scalar, IN, EXISTS, ANY/ALL), evaluated per partition exactly.

The subquery's text is kept and DuckDB evaluates (and decorrelates) it inside each partition;
the planner only makes sure each partition sees every row the subquery can read for its rows:
- uncorrelated: the subquery is planned as a query of its own (distributed where it can be),
  and its small result is broadcast; `x IN (SELECT ...)`, `NOT IN` (with its NULL rules),
  `EXISTS` and scalar comparisons then mean what they mean in DuckDB;
- correlated with an equality `inner.k = outer.c` among the subquery's top-level conjuncts
  (TPC-H Q2, Q4, Q17, Q20, Q21, Q22): the outer rows are hashed on c and the subquery's table
  holding k is hashed on k, the subquery's other tables are broadcast. Every inner row that can
  satisfy the correlation for an outer row is then in that row's partition, so the per-partition
  result is the whole-data result - including aggregates, NOT EXISTS and NULL keys (which match
  nothing anywhere);
- correlated otherwise: all the subquery's tables are broadcast when small, else the outer rows
  are gathered too and the predicate runs in one partition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import sqlglot
from sqlglot import exp

from pond_core.plan.sqlcompile import exprs as X
from pond_core.plan.sqlcompile.layout import anchor, colocate, copartitioned
from pond_core.plan.sqlcompile.model import Op, PlanNode
from pond_core.plan.sqlcompile.rel import (
    Context,
    NotDistributable,
    Rel,
    StepInputs,
    broadcast,
    gather,
    sentinel,
)
from pond_core.plan.sqlcompile.scans import scan
from pond_core.plan.sqlcompile.scope import Env
from pond_core.sql_quote import quote_ident

OUTER = "__pond_outer"


@dataclasses.dataclass
class Prepared:
    rel: Rel  # the outer relation, exchanged when a correlation needed it
    inputs: StepInputs  # sentinel 0 is `rel`
    exprs: list[exp.Expression]  # rewritten: outer columns as __pond_outer."col", subqueries bound
    nodes: list[PlanNode]  # the subqueries' plans, for explain
    notes: list[str]


@dataclasses.dataclass
class _Inner:
    table: exp.Table
    alias: str
    name: str
    columns: list[str]


@dataclasses.dataclass
class _Analysis:
    root: exp.Expression
    correlated: bool
    inner: list[_Inner]
    keys: list[tuple[str, _Inner, str]]  # (outer column in rel, inner table, inner column)
    filters: dict[str, list[exp.Expression]]  # inner alias -> its own conjuncts


def prepare(
    ctx: Context,
    items: Sequence[exp.Expression],
    select: exp.Select,
    colmap: dict[tuple[str, str], str],
    env: Env,
    rel: Rel,
    *,
    allow_correlated: bool,
    where: str,
    replace: Callable[[exp.Expression], exp.Expression | None] | None = None,
) -> Prepared:
    roots = [r for e in items for r in X.subquery_roots(e)]
    analyses = [_analyse(ctx, r, select, colmap, env) for r in roots]
    if not allow_correlated and any(a.correlated for a in analyses):
        raise NotDistributable(f"a correlated subquery in {where}")
    notes: list[str] = []
    nodes: list[PlanNode] = []
    # One correlation key per step: the one the outer rows are already laid out on, else the
    # first whose inner table is too large to broadcast.
    candidates = [
        k for a in analyses if a.correlated for k in a.keys
        if _inner_type(ctx, env, k[1], k[2]) is not None
        and not rel.part.is_single
        and _inner_bytes(ctx, env, k[1]) > ctx.threshold
    ]
    key_col = next((k[0] for k in candidates if rel.part.hashed_on((k[0],))), None)
    if key_col is None and candidates:
        key_col = candidates[0][0]
    planned_rels: list[tuple[_Analysis, dict[int, Rel]]] = []
    for a in analyses:
        if not a.correlated:
            planned = env.plan(a.root, env, f"subquery in {where}")
            planned_rels.append((a, {id(a.root): broadcast(ctx, planned.rel, f"{where}: the uncorrelated subquery's result goes to every partition")}))
            continue
        keyed = next((k for k in a.keys if k[0] == key_col), None) if key_col is not None else None
        if keyed is None and ctx.n > 1 and not rel.part.is_single:
            inner_bytes = sum(_inner_bytes(ctx, env, i) for i in a.inner)
            if inner_bytes > ctx.threshold * 4:
                rel = gather(ctx, rel, f"{where}: correlated subquery without an equality key over large tables runs in one partition")
                notes.append("correlated subquery without an equality correlation over large tables: one partition")
        rels: dict[int, Rel] = {}
        for inner in a.inner:
            if keyed is not None and inner is keyed[1]:
                r = _inner_rel(ctx, env, inner, a.filters.get(inner.alias, []))
                pair = [(keyed[0], keyed[2])]
                # Worth it only when the inner table would move: not when it already shares the
                # outer rows' layout, nor when the outer rows move into the inner's layout.
                if rel.bytes <= ctx.threshold and inner.name not in env.ctes and copartitioned(rel, r, pair) is None \
                        and anchor(r, rel, [(keyed[2], keyed[0])], flip=False) is None:
                    r = _semi_filter(ctx, r, keyed[2], rel, keyed[0], where)
                    notes.append(f"{inner.alias} reduced to the outer rows' keys first")
                rel, r, done = colocate(ctx, rel, r, [(keyed[0], keyed[2])], f"{where}: correlated subquery keyed on {keyed[0]} = {inner.alias}.{keyed[2]}")
                notes.append(f"correlated subquery keyed on {keyed[0]} = {inner.alias}.{keyed[2]} ({done})")
            else:
                r = broadcast(ctx, _inner_rel(ctx, env, inner, []), f"{where}: the correlated subquery reads all of {inner.name}")
                notes.append(f"correlated subquery: {inner.name} broadcast")
            rels[id(inner.table)] = r
        planned_rels.append((a, rels))
    inputs = StepInputs()
    inputs.add(rel)
    replacements: dict[int, exp.Expression] = {}
    for a, rels in planned_rels:
        if not a.correlated:
            small = rels[id(a.root)]
            nodes.append(small.node)
            name = inputs.add(small)
            if isinstance(a.root.parent, exp.Exists):
                text = f"SELECT 1 FROM {name}"
            else:
                text = f"SELECT {', '.join(quote_ident(c) for c in small.columns)} FROM {name}"
            replacements[id(a.root)] = sqlglot.parse_one(text, read=X.DIALECT)
            continue
        sentinels = {}
        for key, r in rels.items():
            nodes.append(r.node)
            sentinels[key] = inputs.add(r)
        replacements[id(a.root)] = _bind_correlated(a.root, select, colmap, sentinels)

    def swap(node: exp.Expression) -> exp.Expression | None:
        got = replacements.get(id(node))
        if got is not None:
            return got.copy()
        return replace(node) if replace is not None else None

    rewritten = [X.rewrite(e, select, colmap, qualifier=OUTER, replace=swap) for e in items]
    return Prepared(rel, inputs, rewritten, nodes, notes)


def _analyse(ctx: Context, root: exp.Expression, select: exp.Select, colmap: Any, env: Env) -> _Analysis:
    outer_cols = [c for c in root.find_all(exp.Column) if X.binding_select(c) is select]
    if not outer_cols:
        return _Analysis(root, False, [], [], {})
    if not isinstance(root, exp.Select):
        raise NotDistributable("a correlated set operation in a subquery")
    local_ctes = {c.alias for c in root.find_all(exp.CTE)}
    inner: list[_Inner] = []
    for t in root.find_all(exp.Table):
        if not isinstance(t.parent, (exp.From, exp.Join)):
            continue
        name = t.name
        if name in local_ctes:
            continue
        if name not in env.ctes and name not in ctx.tables:
            raise NotDistributable(f"subquery reads {name}, which is not an input")
        owner = t.parent.parent
        alias = t.alias_or_name
        cols = sorted({c.name for c in root.find_all(exp.Column) if c.table == alias and X.binding_select(c) is owner})
        inner.append(_Inner(t, alias, name, cols))
    keys: list[tuple[str, _Inner, str]] = []
    filters: dict[str, list[exp.Expression]] = {}
    joins = root.args.get("joins") or []
    plain_from = all(not j.side and (j.kind or "").upper() in ("", "INNER", "CROSS") for j in joins)
    direct = {i.alias: i for i in inner if i.table.parent.parent is root}
    for conj in X.conjuncts(root.args["where"].this) if root.args.get("where") else []:
        if plain_from and isinstance(conj, exp.EQ) and isinstance(conj.this, exp.Column) and isinstance(conj.expression, exp.Column):
            a, b = conj.this, conj.expression
            for o, i in ((a, b), (b, a)):
                if X.binding_select(o) is select and X.binding_select(i) is root and i.table in direct:
                    col = colmap.get((o.table, o.name))
                    if col is not None:
                        keys.append((col, direct[i.table], i.name))
        used = list(conj.find_all(exp.Column))
        if used and not X.has_subquery(conj) and all(X.binding_select(c) is root for c in used):
            aliases = {c.table for c in used}
            if len(aliases) == 1:
                filters.setdefault(aliases.pop(), []).append(conj)
    return _Analysis(root, True, inner, keys, filters)


def _inner_type(ctx: Context, env: Env, inner: _Inner, column: str) -> str | None:
    if inner.name in env.ctes:
        rel = env.ctes[inner.name].rel
        return rel.type_of(column) if column in rel.columns else None
    for c, t in ctx.tables[inner.name].schema:
        if c.lower() == column.lower():
            return t
    return None


def _semi_filter(ctx: Context, inner: Rel, inner_key: str, outer: Rel, outer_key: str, where: str) -> Rel:
    """The inner table's rows whose key some outer row has: no other row can satisfy the
    correlation, so the subquery's value for every outer row is unchanged."""
    from pond_core.plan.sqlcompile.rel import derive, project

    keys = broadcast(ctx, project(ctx, outer, [(quote_ident(outer_key), outer_key)], f"{where}: outer keys"),
                     f"{where}: the outer rows are few: their keys filter the subquery's table")
    text = (f"SELECT {inner.select_list()} FROM {sentinel(0)} WHERE {quote_ident(inner_key)} IN "
            f"(SELECT {quote_ident(outer_key)} FROM {sentinel(1)})")
    return derive(ctx, text, [inner, keys], part=inner.part, rows=min(inner.rows, outer.rows * 10), op=Op.FILTER,
                  detail=f"{where}: semi-join reduction on {inner_key}", reason="only keys of outer rows can correlate")


def _inner_bytes(ctx: Context, env: Env, inner: _Inner) -> float:
    if inner.name in env.ctes:
        return env.ctes[inner.name].rel.bytes
    return ctx.tables[inner.name].bytes_of(inner.columns or [ctx.tables[inner.name].schema[0][0]])


def _inner_rel(ctx: Context, env: Env, inner: _Inner, filters: list[exp.Expression]) -> Rel:
    if inner.name in env.ctes:
        return env.ctes[inner.name].rel
    table = ctx.tables[inner.name]
    names = {c.lower(): c for c, _ in table.schema}
    cols = [(names.get(c.lower(), c), names.get(c.lower(), c)) for c in inner.columns]
    return scan(ctx, table, inner.alias, cols, filters)


def _bind_correlated(root: exp.Expression, select: exp.Select, colmap: Any, sentinels: dict[int, str]) -> exp.Expression:
    """A copy of the subquery: outer columns read __pond_outer, tables read the step's inputs."""
    copy = root.copy()
    pairs = list(zip(root.walk(), copy.walk()))
    for orig, new in pairs:
        if isinstance(orig, exp.Column) and X.binding_select(orig) is select:
            new.replace(X.column_ref(colmap[(orig.table, orig.name)], OUTER))
        elif isinstance(orig, exp.Table) and id(orig) in sentinels:
            alias = orig.alias_or_name
            new.replace(exp.Table(this=exp.Identifier(this=sentinels[id(orig)], quoted=False), alias=exp.TableAlias(this=exp.Identifier(this=alias, quoted=True))))
    return copy


def filter_step(ctx: Context, prepared: Prepared, predicate: exp.Expression, label: str) -> Rel:
    """SELECT the outer columns FROM the outer rows WHERE the prepared predicate."""
    from pond_core.plan.sqlcompile.rel import derive

    rel = prepared.rel
    text = f"SELECT {rel.select_list(qualifier=OUTER)} FROM {sentinel(0)} AS {OUTER} WHERE {X.sql(predicate)}"
    return derive(
        ctx, text, prepared.inputs.rels, part=rel.part, rows=rel.rows * 0.5, op=Op.FILTER, detail=label,
        reason="; ".join(dict.fromkeys(prepared.notes)) or "per partition",
        node_inputs=[rel.node] + prepared.nodes, sel=rel.sel * 0.5,
    )
