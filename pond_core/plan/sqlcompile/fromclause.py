"""FROM and WHERE of one SELECT block: its FROM items as scans, the joins between them, and
the filters placed where they are cheapest.

Every column of a FROM item gets a relation name `<alias>__<column>`, unique in the block, so
generated join steps never need qualifiers. Filters that read one FROM item run in its scan
(before any exchange). Equalities between two items are join keys. Other filters run once their
items are joined; filters with subqueries are placed by `subqueries`: uncorrelated ones as early
as possible, correlated ones after the joins. A disjunction whose every branch repeats a
condition (TPC-H Q19's join key) yields that condition too, and one branch-wise filter per FROM
item it constrains in every branch (Q7's nations, Q19's parts), as DuckDB's optimizer does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from pond_core.plan.sqlcompile import exprs as X
from pond_core.plan.sqlcompile.joins import JoinKind, JoinSpec, join
from pond_core.plan.sqlcompile.model import Op
from pond_core.plan.sqlcompile.rel import Context, NotDistributable, Rel, derive, sentinel
from pond_core.plan.sqlcompile.scans import scan
from pond_core.plan.sqlcompile.scope import Env, Planned
from pond_core.plan.sqlcompile.subqueries import filter_step, prepare
from pond_core.plan.sqlcompile.tables import InputTable
from pond_core.sql_quote import quote_ident


@dataclasses.dataclass
class _Source:
    alias: str
    item: exp.Expression
    table: InputTable | None  # an input, or
    planned: Planned | None  # a CTE or derived table
    columns: list[str]


@dataclasses.dataclass
class _Pred:
    expr: exp.Expression
    aliases: frozenset[str]
    equi: tuple[tuple[str, str], tuple[str, str]] | None  # ((alias, col), (alias, col))
    subquery: bool


def sources_of(ctx: Context, sel: exp.Select, env: Env) -> dict[str, _Source]:
    out: dict[str, _Source] = {}
    needed: dict[str, set[str]] = {}
    for c in sel.find_all(exp.Column):
        if X.binding_select(c) is sel:
            needed.setdefault(c.table, set()).add(c.name)
    for item in X.source_items(sel):
        alias = item.alias_or_name
        if alias in out:
            raise NotDistributable(f"alias {alias} used twice")
        cols = sorted(needed.get(alias, set()))
        if isinstance(item, exp.Table) and isinstance(item.this, exp.Identifier) and not item.args.get("db") and not item.args.get("pivots"):
            name = item.name
            if name in env.ctes:
                out[alias] = _Source(alias, item, None, env.ctes[name], cols)
            elif name in ctx.tables:
                out[alias] = _Source(alias, item, ctx.tables[name], None, cols)
            else:
                raise NotDistributable(f"{name} is not an input of the query")
        elif isinstance(item, exp.Subquery) and not item.args.get("pivots"):
            planned = env.plan(item.this, env, f"derived table {alias}")
            out[alias] = _Source(alias, item, None, planned, cols)
        else:
            raise NotDistributable(f"FROM item {X.sql(item)[:60]}")
    return out


def colmap_for(sources: dict[str, _Source]) -> dict[tuple[str, str], str]:
    colmap: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for s in sources.values():
        for c in s.columns:
            name = f"{s.alias}__{c}"
            while name.lower() in used:
                name += "_"
            used.add(name.lower())
            colmap[(s.alias, c)] = name
    return colmap


# -- FROM and WHERE ---------------------------------------------------------------------------


def _kind(j: exp.Join) -> JoinKind:
    side = (j.side or "").upper()
    kind = (j.kind or "").upper()
    if kind == "SEMI":
        return JoinKind.SEMI
    if kind == "ANTI":
        return JoinKind.ANTI
    if side == "LEFT":
        return JoinKind.LEFT
    if side == "RIGHT":
        return JoinKind.RIGHT
    if side == "FULL":
        return JoinKind.FULL
    if kind == "CROSS":
        return JoinKind.CROSS
    if kind in ("", "INNER", "OUTER"):
        return JoinKind.INNER
    raise NotDistributable(f"{kind} join")


def _classify(e: exp.Expression, sel: exp.Select) -> _Pred:
    aliases = frozenset(X.aliases_used(e, sel))
    sub = X.has_subquery(e)
    equi = None
    inner = e
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if not sub and isinstance(inner, exp.EQ) and isinstance(inner.this, exp.Column) and isinstance(inner.expression, exp.Column):
        a, b = inner.this, inner.expression
        if X.binding_select(a) is sel and X.binding_select(b) is sel and a.table != b.table:
            equi = ((a.table, a.name), (b.table, b.name))
    return _Pred(e, aliases, equi, sub)


def _factor_or(e: exp.Expression, sel: exp.Select, pushable: set[str]) -> list[exp.Expression]:
    """e, plus what every branch of a disjunction implies (see the module docstring)."""
    inner = e
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if not isinstance(inner, exp.Or) or X.has_subquery(e):
        return [e]
    branches = [X.conjuncts(d) for d in X.disjuncts(inner)]
    texts = [{X.sql(c): c for c in b} for b in branches]
    common = set(texts[0])
    for t in texts[1:]:
        common &= set(t)
    out = [e] + [texts[0][t] for t in sorted(common)]
    for alias in sorted(pushable):
        parts = []
        for b in branches:
            local = [c for c in b if X.aliases_used(c, sel) == {alias} and X.sql(c) not in common]
            if not local:
                break
            parts.append(X.and_all([c.copy() for c in local]))
        else:
            if parts and len(parts) == len(branches):
                implied = parts[0]
                for p in parts[1:]:
                    implied = exp.or_(exp.paren(implied, copy=False), exp.paren(p, copy=False), copy=False)
                # An implied filter built from copies: re-home it in the tree so its columns
                # still find their FROM items.
                holder = exp.paren(implied, copy=False)
                _attach(sel, holder)
                out.append(holder)
    return out


def _attach(sel: exp.Select, node: exp.Expression) -> None:
    """Give a synthesized predicate `sel` as parent, so column bindings resolve."""
    node.parent = sel
    node.arg_key = "__pond_implied"


def plan_from(ctx: Context, sel: exp.Select, sources: dict[str, _Source], colmap: Any, env: Env, label: str) -> Rel:
    joins = sel.args.get("joins") or []
    kinds = [_kind(j) for j in joins]
    aliases = [X.item_alias(i) for i in X.source_items(sel)]
    first_outer = next((i for i, k in enumerate(kinds) if k not in (JoinKind.INNER, JoinKind.CROSS)), len(kinds))
    group = aliases[: first_outer + 1]
    later = list(zip(aliases[first_outer + 1 :], joins[first_outer:], kinds[first_outer:]))
    where = X.conjuncts(sel.args["where"].this) if sel.args.get("where") else []
    pushdown_ok = all(k in (JoinKind.LEFT, JoinKind.SEMI, JoinKind.ANTI, JoinKind.INNER, JoinKind.CROSS) for _, _, k in later)
    pool: list[exp.Expression] = []
    for j in joins[:first_outer]:
        if j.args.get("on") is not None:
            pool.extend(X.conjuncts(j.args["on"]))
    end: list[exp.Expression] = []
    if pushdown_ok:
        for c in where:
            if X.aliases_used(c, sel) <= set(group) or not X.aliases_used(c, sel):
                pool.append(c)
            else:
                end.append(c)
    else:
        end = list(where)
    expanded: list[exp.Expression] = []
    for c in pool:
        expanded.extend(_factor_or(c, sel, set(group)))
    preds = [_classify(c, sel) for c in expanded]
    # ON conditions of the joins after the first outer join: keys, filters of the joined item
    # alone (pushed into its scan) and the rest (kept in the ON).
    plans = []
    joined = set(group)
    for alias, j, kind in later:
        on = X.conjuncts(j.args.get("on")) if j.args.get("on") is not None else []
        if any(X.has_subquery(c) for c in on):
            raise NotDistributable("a subquery in a JOIN condition")
        pairs, push, rest = [], [], []
        for c in on:
            p = _classify(c, sel)
            if p.equi and {p.equi[0][0], p.equi[1][0]} & {alias} and ({p.equi[0][0], p.equi[1][0]} - {alias}) <= joined:
                (a, b) = p.equi if p.equi[1][0] == alias else (p.equi[1], p.equi[0])
                pairs.append((colmap[a], colmap[b]))
            elif p.aliases == {alias} and kind in (JoinKind.LEFT, JoinKind.SEMI, JoinKind.ANTI, JoinKind.INNER):
                push.append(c)
            else:
                rest.append(c)
        joined.add(alias)
        plans.append((alias, kind, pairs, push, rest))
    local = {a: [p for p in preds if p.aliases == {a} and not p.subquery] for a in group}
    # A column read only by filters that run in its scan is not carried out of the scan.
    pushed = {id(c) for ps in local.values() for p in ps for c in p.expr.find_all(exp.Column)}
    pushed |= {id(c) for plan in plans for e in plan[3] for c in e.find_all(exp.Column)}
    needed = {(c.table, c.name) for c in sel.find_all(exp.Column) if X.binding_select(c) is sel and id(c) not in pushed}
    demand = _Demand(sel, colmap, [e for plan in plans for e in plan[4]], end)
    demand.final |= {c for plan in plans for pair in plan[2] for c in pair}  # keys of later joins

    # Scans with their own filters.
    rels: dict[str, Rel] = {}
    applied: set[int] = set()
    for alias in group:
        applied |= {id(p) for p in local[alias]}
        rels[alias] = _source_rel(ctx, sources[alias], [p.expr for p in local[alias]], colmap, needed)
    for alias in group:
        rels[alias] = _apply_subquery_preds(ctx, rels[alias], preds, {alias}, applied, sel, colmap, env, label, final=len(group) == 1)
    rel = _join_group(ctx, sel, group, rels, preds, applied, colmap, env, label, demand)

    joined = set(group)
    for alias, kind, pairs, push, rest in plans:
        right = _source_rel(ctx, sources[alias], push, colmap, needed)
        joined.add(alias)
        keep = demand.keep(rel.columns + (() if kind in (JoinKind.SEMI, JoinKind.ANTI) else right.columns), joined, kind)
        on_sql = tuple(X.sql(X.rewrite(c, sel, colmap)) for c in rest)
        rel = join(ctx, rel, right, JoinSpec(kind, tuple(pairs), on_sql, (), keep, f"{_names(rel)} {kind.value.lower()} {alias}"))
    if end:
        plain = [c for c in end if not X.has_subquery(c)]
        if plain:
            text = f"SELECT {rel.select_list()} FROM {sentinel(0)} WHERE {' AND '.join('(' + X.sql(X.rewrite(c, sel, colmap)) + ')' for c in plain)}"
            rel = derive(ctx, text, [rel], part=rel.part, rows=rel.rows * 0.5, op=Op.FILTER, detail=f"{label}: WHERE after outer joins")
        extra = [_classify(c, sel) for c in end if X.has_subquery(c)]
        rel = _apply_subquery_preds(ctx, rel, extra, joined, set(), sel, colmap, env, label)
    return rel


class _Demand:
    """Which block columns are still needed after each join (only those are carried on)."""

    def __init__(self, sel: exp.Select, colmap: Any, later: Any, end: Any) -> None:
        self.colmap = colmap
        self.sel = sel
        self.final: set[str] = set()
        for key in ("expressions", "group", "having", "order", "qualify"):
            v = sel.args.get(key)
            nodes = v if isinstance(v, list) else [v] if v is not None else []
            for node in nodes:
                for c in X.columns_bound_to(node, sel):
                    self.final.add(colmap[(c.table, c.name)])
        for e in later:  # ON conditions kept in later joins
            for c in X.columns_bound_to(e, sel):
                self.final.add(colmap[(c.table, c.name)])
        for e in end:
            for c in X.columns_bound_to(e, sel):
                self.final.add(colmap[(c.table, c.name)])

    def keep(self, available: Sequence[str], joined: set[str], kind: JoinKind | None = None, pending: Sequence[_Pred] = ()) -> tuple[str, ...]:
        need = set(self.final)
        for p in pending:
            for c in X.columns_bound_to(p.expr, self.sel):
                need.add(self.colmap[(c.table, c.name)])
        out = tuple(dict.fromkeys(c for c in available if c in need))
        return out or tuple(available[:1])


def _source_rel(ctx: Context, src: _Source, filters: list[exp.Expression], colmap: Any, needed: set[tuple[str, str]]) -> Rel:
    """The FROM item's needed columns under their block names, its own filters applied."""
    columns = [c for c in src.columns if (src.alias, c) in needed]
    if src.table is not None:
        table = src.table
        names = {c.lower(): c for c, _ in table.schema}
        pairs = [(names.get(c.lower(), c), colmap[(src.alias, c)]) for c in columns]
        return scan(ctx, table, src.alias, pairs, filters)
    assert src.planned is not None
    rel = src.planned.rel
    outs = [(c, colmap.get((src.alias, c), f"{src.alias}__{c}")) for c in (columns or [rel.columns[0]])]
    missing = [c for c, _ in outs if c not in rel.columns]
    if missing:
        raise NotDistributable(f"columns {missing} of {src.alias} are not known")
    select = ", ".join(f"{quote_ident(src.alias)}.{quote_ident(c)} AS {quote_ident(o)}" for c, o in outs)
    text = f"SELECT {select} FROM {sentinel(0)} AS {quote_ident(src.alias)}"
    where = X.and_all([f.copy() for f in filters])
    if where is not None:
        text += f" WHERE {X.sql(where)}"
    return derive(ctx, text, [rel], part=rel.part.renamed(dict(outs)), rows=rel.rows * (0.5 if filters else 1.0), op=Op.PROJECT,
                  known={o: (rel.width_of(c), rel.distinct(c)) for c, o in outs},
                  detail=f"{src.alias}: {', '.join(c for c, _ in outs)}" + (f" WHERE {X.sql(where)}" if where is not None else ""))


def _correlated(p: _Pred, sel: exp.Select) -> bool:
    return any(X.columns_bound_to(r, sel) for r in X.subquery_roots(p.expr))


def _apply_subquery_preds(
    ctx: Context, rel: Rel, preds: Any, have: set[str], applied: set[int], sel: exp.Select, colmap: Any, env: Env, label: str,
    final: bool = True,
) -> Rel:
    """Subquery filters whose FROM items are all joined. Uncorrelated ones (a broadcast result,
    usually selective) run as early as possible; correlated ones (which move or read a whole
    inner table) wait for the end of the joins, when the outer rows are fewest."""
    for p in preds:
        if not p.subquery or id(p) in applied or not p.aliases <= have:
            continue
        if not final and _correlated(p, sel):
            continue
        applied.add(id(p))
        prepared = prepare(ctx, [p.expr], sel, colmap, env, rel, allow_correlated=True, where=f"{label} WHERE")
        rel = filter_step(ctx, prepared, prepared.exprs[0], f"{label}: {X.sql(p.expr)[:120]}")
    return rel


def _join_group(
    ctx: Context, sel: exp.Select, group: Any, rels: Any, preds: Any, applied: set[int], colmap: Any, env: Env, label: str,
    demand: Any,
) -> Rel:
    """Inner joins of a FROM list: small relations that join without multiplying rows first
    (a filtered dimension chain becomes one small broadcast), then greedily from the largest."""
    units: list[tuple[frozenset[str], Rel]] = [(frozenset([a]), rels[a]) for a in group]

    def pairs_between(a: frozenset[str], b: frozenset[str]) -> list[tuple[str, str]]:
        out = []
        for p in preds:
            if p.equi is None or id(p) in applied:
                continue
            (x, y) = p.equi
            if x[0] in a and y[0] in b:
                out.append((colmap[x], colmap[y]))
            elif y[0] in a and x[0] in b:
                out.append((colmap[y], colmap[x]))
        return out

    def combine(left: tuple[frozenset[str], Rel], right: tuple[frozenset[str], Rel]) -> tuple[frozenset[str], Rel]:
        aliases = left[0] | right[0]
        pairs = pairs_between(left[0], right[0])
        used = [p for p in preds if p.equi is not None and id(p) not in applied and {p.equi[0][0], p.equi[1][0]} <= aliases]
        applied.update(id(p) for p in used)
        residual = [p for p in preds if id(p) not in applied and not p.subquery and p.equi is None and p.aliases <= aliases]
        applied.update(id(p) for p in residual)
        where = [X.sql(X.rewrite(p.expr, sel, colmap)) for p in residual]
        # equalities inside one side (a cycle closed by this join) are filters
        for p in used:
            a, b = colmap[p.equi[0]], colmap[p.equi[1]]
            if (a, b) not in pairs and (b, a) not in pairs:
                where.append(f"{quote_ident(a)} = {quote_ident(b)}")
        pending = [p for p in preds if id(p) not in applied]
        keep = demand.keep(left[1].columns + right[1].columns, set(aliases), JoinKind.INNER, pending)
        kind = JoinKind.INNER if pairs else JoinKind.CROSS
        rel = join(ctx, left[1], right[1], JoinSpec(kind, tuple(pairs), (), tuple(where), keep,
                                                     f"{'+'.join(sorted(left[0]))} with {'+'.join(sorted(right[0]))}"))
        rel = _apply_subquery_preds(ctx, rel, preds, set(aliases), applied, sel, colmap, env, label, final=False)
        return aliases, rel

    def small(rel: Rel) -> bool:
        return rel.part.is_single or rel.bytes <= ctx.threshold

    from pond_core.plan.sqlcompile.joins import estimate_rows

    while True:  # small, non-expanding joins first
        best = None
        for i, a in enumerate(units):
            for b in units[i + 1:]:
                if not (small(a[1]) and small(b[1])):
                    continue
                pairs = pairs_between(a[0], b[0])
                if not pairs:
                    continue
                rows = estimate_rows(a[1], b[1], pairs)
                if rows <= max(a[1].rows, b[1].rows) and (best is None or rows < best[0]):
                    best = (rows, a, b)
        if best is None or len(units) <= 2:
            break
        _, a, b = best
        big, little = (a, b) if a[1].bytes >= b[1].bytes else (b, a)
        units = [u for u in units if u is not a and u is not b] + [combine(big, little)]
    start = max(units, key=lambda u: (u[1].bytes, not u[1].part.is_single))
    current = start
    remaining = [u for u in units if u is not start]
    while remaining:
        connected = [u for u in remaining if pairs_between(current[0], u[0])]
        pool = connected or remaining
        cand = min(pool, key=lambda u: _preference(ctx, current[1], u[1], pairs_between(current[0], u[0])))
        remaining.remove(cand)
        current = combine(current, cand)
    rel = current[1]
    rest = [p for p in preds if id(p) not in applied and not p.subquery]
    if rest:
        text = f"SELECT {rel.select_list()} FROM {sentinel(0)} WHERE {' AND '.join('(' + X.sql(X.rewrite(p.expr, sel, colmap)) + ')' for p in rest)}"
        rel = derive(ctx, text, [rel], part=rel.part, rows=rel.rows * 0.5, op=Op.FILTER, detail=f"{label}: WHERE")
        applied.update(id(p) for p in rest)
    return _apply_subquery_preds(ctx, rel, preds, set(group), applied, sel, colmap, env, label)


def _preference(ctx: Context, current: Rel, cand: Rel, pairs: Any) -> tuple[Any, ...]:
    """Greedy join order: the join with the fewest estimated output rows first, within a factor
    of four (so a join that multiplies rows waits for the filters that shrink it), then the one
    that moves the fewest bytes (co-partitioned, broadcast, or only one side exchanged)."""
    import math

    from pond_core.plan.sqlcompile.joins import estimate_rows
    from pond_core.plan.sqlcompile.layout import anchor, copartitioned

    rows = estimate_rows(current, cand, pairs)
    if cand.part.is_single or cand.bytes <= ctx.threshold:
        moved = cand.bytes * current.n
    elif pairs and copartitioned(current, cand, pairs) is not None:
        moved = 0.0
    elif pairs and anchor(current, cand, pairs, flip=False) is not None:
        moved = cand.bytes
    elif pairs and anchor(cand, current, [(b, a) for a, b in pairs], flip=False) is not None:
        moved = current.bytes
    else:
        moved = current.bytes + cand.bytes
    return (round(math.log2(max(rows, 1.0)) / 2), moved, cand.bytes)


def _names(rel: Rel) -> str:
    return rel.node.detail.split(":")[0][:40]


# -- after FROM: aggregation, projection, distinct, order ---------------------------------------
