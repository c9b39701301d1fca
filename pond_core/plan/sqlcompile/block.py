"""One SELECT block: FROM and WHERE (see `fromclause`), then aggregation, the projection (with
windows and subqueries), DISTINCT, ORDER BY and LIMIT, each placed across partitions by its
own module. A block's output relation has the SELECT's output names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlglot import exp

from pond_core.plan.sqlcompile import exprs as X
from pond_core.plan.sqlcompile.aggregate import AggCall, aggregate, describe_call
from pond_core.plan.sqlcompile.fromclause import colmap_for, plan_from, sources_of
from pond_core.plan.sqlcompile.model import Op
from pond_core.plan.sqlcompile.ordering import SortKey, distinct, order_limit
from pond_core.plan.sqlcompile.rel import Context, NotDistributable, Rel, derive, sentinel
from pond_core.plan.sqlcompile.scope import Env, Planned
from pond_core.plan.sqlcompile.subqueries import OUTER, prepare
from pond_core.plan.sqlcompile.windows import window_input
from pond_core.sql_quote import quote_ident


def plan_select(ctx: Context, sel: exp.Select, env: Env, label: str) -> Planned:
    _check_supported(sel)
    sources = sources_of(ctx, sel, env)
    colmap = colmap_for(sources)
    rel = plan_from(ctx, sel, sources, colmap, env, label)
    return _plan_rest(ctx, sel, rel, colmap, env, label)


# -- checks and sources -----------------------------------------------------------------------


def _check_supported(sel: exp.Select) -> None:
    for key, what in (("laterals", "LATERAL"), ("sample", "SAMPLE"), ("windows", "a named WINDOW clause"), ("connect", "CONNECT BY")):
        if sel.args.get(key):
            raise NotDistributable(f"{what} in a SELECT")
    group = sel.args.get("group")
    if group is not None and (
        any(group.args.get(k) for k in ("rollup", "cube", "grouping_sets"))
        or any(isinstance(g, (exp.Rollup, exp.Cube, exp.GroupingSets)) for g in group.expressions)
        or any(isinstance(f, exp.Anonymous) and str(f.name).upper() in ("ROLLUP", "CUBE", "GROUPING_SETS") for f in group.expressions)
    ):
        raise NotDistributable("GROUPING SETS / ROLLUP / CUBE")
    d = sel.args.get("distinct")
    if d is not None and d.args.get("on"):
        raise NotDistributable("DISTINCT ON")
    if not X.source_items(sel):
        raise NotDistributable("a SELECT without FROM")
    for j in sel.args.get("joins") or []:
        if (j.kind or "").upper() in ("ASOF", "POSITIONAL", "LATERAL") or j.args.get("method"):
            raise NotDistributable(f"{(j.kind or j.args.get('method'))} join")


def _is_aggregate(ctx: Context, node: exp.Expression) -> bool:
    if isinstance(node, exp.AggFunc):
        return True
    if isinstance(node, exp.Anonymous):
        return ctx.shadow.is_aggregate(str(node.name))
    return False


def _aggregate_calls(ctx: Context, roots: Sequence[exp.Expression]) -> list[exp.Expression]:
    out: dict[str, exp.Expression] = {}
    for root in roots:
        stack = [root]
        while stack:
            node = stack.pop()
            if isinstance(node, (exp.Select, exp.Union, exp.Intersect, exp.Except)) and node is not root:
                continue
            is_window_fn = isinstance(node.parent, exp.Window) and node.arg_key == "this"
            if _is_aggregate(ctx, node) and not is_window_fn:
                call = node.parent if isinstance(node.parent, exp.Filter) and node.arg_key == "this" else node
                out.setdefault(X.sql(call), call)
                continue
            stack.extend(node.iter_expressions())
    return list(out.values())


def _plan_rest(ctx: Context, sel: exp.Select, rel: Rel, colmap: Any, env: Env, label: str) -> Planned:
    items = list(sel.expressions)
    names = unique_names([i.alias_or_name for i in items])
    group = sel.args.get("group")
    having = sel.args["having"].this if sel.args.get("having") else None
    qualify = sel.args["qualify"].this if sel.args.get("qualify") else None
    order = sel.args["order"].expressions if sel.args.get("order") else []
    group_exprs = list(group.expressions) if group is not None else []
    if group is not None and group.args.get("all"):
        group_exprs = [i.unalias() for i in items if not _aggregate_calls(ctx, [i]) and not list(i.find_all(exp.Window))]
    roots = [i.unalias() for i in items] + [x for x in (having, qualify) if x is not None] + [o.this for o in order]
    calls = _aggregate_calls(ctx, roots)
    replace = None
    post_colmap = colmap
    if group is not None or calls:
        if any(X.has_subquery(g) for g in group_exprs):
            raise NotDistributable("a subquery in GROUP BY")
        if any(X.has_subquery(c) for c in calls):
            raise NotDistributable("a subquery inside an aggregate")
        groups_rw = [X.rewrite(g, sel, colmap) for g in group_exprs]
        agg_calls: list[AggCall] = [describe_call(X.rewrite(c, sel, colmap)) for c in calls]
        done = aggregate(ctx, rel, groups_rw, agg_calls, label)
        rel = done.rel
        group_text = {X.sql(g): col for g, col in zip(group_exprs, done.group_cols)}
        agg_text = {X.sql(c): done.results[a.text] for c, a in zip(calls, agg_calls)}

        def replace(node: exp.Expression) -> exp.Expression | None:
            text = X.sql(node) if isinstance(node, (exp.Expression,)) else None
            if text in agg_text:
                col, cast = agg_text[text]
                ref = X.column_ref(col, OUTER)
                return exp.Cast(this=ref, to=exp.DataType.build(cast, dialect=X.DIALECT)) if cast else ref
            if text in group_text and not isinstance(node, exp.Literal):
                return X.column_ref(group_text[text], OUTER)
            return None

        post_colmap = {}

    # ORDER BY: output names, positions, or expressions computed as hidden columns.
    keys: list[tuple[str, bool, bool]] = []
    hidden: list[exp.Expression] = []
    for o in order:
        e = o.this
        desc = bool(o.args.get("desc"))
        nulls_first = bool(o.args.get("nulls_first"))
        if isinstance(e, exp.Column) and not e.table and e.name in [i.alias_or_name for i in items]:
            keys.append((names[[i.alias_or_name for i in items].index(e.name)], desc, nulls_first))
        elif isinstance(e, exp.Literal) and not e.is_string and e.this.isdigit() and 1 <= int(e.this) <= len(items):
            keys.append((names[int(e.this) - 1], desc, nulls_first))
        else:
            hidden.append(e)
            keys.append((f"__pond_o{len(hidden) - 1}", desc, nulls_first))
    is_distinct = sel.args.get("distinct") is not None
    if hidden and is_distinct:
        raise NotDistributable("ORDER BY an expression outside a DISTINCT select list")

    # Windows: lay the input out for them first.
    windows = [w for i in items for w in X.walk_local(i) if isinstance(w, exp.Window)]
    if qualify is not None:
        windows += [w for w in X.walk_local(qualify) if isinstance(w, exp.Window)]
    if windows:
        part_keys = [[X.rewrite(k, sel, post_colmap, replace=_drop_outer(replace)) for k in (w.args.get("partition_by") or [])] for w in windows]
        rel = window_input(ctx, rel, part_keys, label)

    exprs_in = [i.unalias() for i in items] + hidden
    extra = [x for x in (having, qualify) if x is not None]
    # Correlated subqueries in the SELECT list read the block's rows like a WHERE does; after an
    # aggregation they would read group keys, which is left to one partition.
    prepared = prepare(ctx, exprs_in + extra, sel, post_colmap, env, rel, allow_correlated=replace is None,
                       where=f"{label} SELECT", replace=replace)
    rel = prepared.rel
    out_exprs = prepared.exprs[: len(exprs_in)]
    for e in out_exprs:  # qualify names a scalar subquery on the node itself
        if isinstance(e, exp.Subquery) and e.args.get("alias") is not None:
            e.set("alias", None)
    having_rw = prepared.exprs[len(exprs_in)] if having is not None else None
    qualify_rw = prepared.exprs[-1] if qualify is not None else None
    out_names = names + [k[0] for k in keys if k[0].startswith("__pond_o")]
    select_list = ", ".join(f"{X.sql(e)} AS {quote_ident(n)}" for e, n in zip(out_exprs, out_names))
    text = f"SELECT {select_list} FROM {sentinel(0)} AS {OUTER}"
    if having_rw is not None:
        text += f" WHERE {X.sql(having_rw)}"
    if qualify_rw is not None:
        text += f" QUALIFY {X.sql(qualify_rw)}"
    mapping: dict[str, str] = {}
    for e, n in zip(out_exprs, out_names):
        if isinstance(e, exp.Column) and e.table == OUTER and e.name in rel.columns:
            mapping.setdefault(e.name, n)
    rows = rel.rows * (0.5 if having is not None or qualify is not None else 1.0)
    known = {}
    for e, n in zip(out_exprs, out_names):
        # An expression has at most as many distinct values as its columns' combinations.
        cols = [c.name for c in e.find_all(exp.Column) if c.table == OUTER and c.name in rel.columns]
        if cols and not any(isinstance(w, exp.Window) for w in e.find_all(exp.Window)):
            known[n] = (rel.width_of(cols[0]) if len(cols) == 1 else 8.0, rel.distinct_of(cols))
    rel = derive(ctx, text, prepared.inputs.rels, part=rel.part.renamed(mapping), rows=rows, op=Op.PROJECT, known=known,
                 detail=f"{label}: SELECT {', '.join(out_names[: len(names)])}"[:200],
                 reason="; ".join(dict.fromkeys(prepared.notes)) or "per partition",
                 node_inputs=[rel.node] + prepared.nodes)
    if is_distinct:
        rel = distinct(ctx, rel, f"{label}: DISTINCT")
    limit, offset = limit_offset(sel)
    if keys or limit is not None or offset:
        sort_keys = [SortKey(c, d, nf) for c, d, nf in keys]
        rel = order_limit(ctx, rel, sort_keys, limit, offset, label, keep=names)
    elif hidden:
        rel = derive(ctx, f"SELECT {', '.join(quote_ident(n) for n in names)} FROM {sentinel(0)}", [rel], part=rel.part, rows=rel.rows,
                     op=Op.PROJECT, detail=label)
    return Planned(rel, tuple(names))


def _drop_outer(replace: Callable[[exp.Expression], Any] | None) -> Callable[[exp.Expression], Any] | None:
    if replace is None:
        return None

    def inner(node: exp.Expression) -> exp.Expression | None:
        got = replace(node)
        if isinstance(got, exp.Column):
            return X.column_ref(got.name)
        return got

    return inner


def limit_offset(e: exp.Expression) -> tuple[int | None, int]:
    limit = None
    offset = 0
    lim = e.args.get("limit")
    if lim is not None:
        value = lim.args.get("expression") or lim.this
        if not (isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit()):
            raise NotDistributable("a LIMIT that is not an integer literal")
        limit = int(value.this)
        if lim.args.get("offset") is not None:
            raise NotDistributable("LIMIT with an inline offset")
    off = e.args.get("offset")
    if off is not None:
        value = off.args.get("expression") or off.this
        if not (isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit()):
            raise NotDistributable("an OFFSET that is not an integer literal")
        offset = int(value.this)
    return limit, offset


def unique_names(names: list[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for n in names:
        m = n
        k = 1
        while m.lower() in seen:
            m = f"{n}_{k}"
            k += 1
        seen.add(m.lower())
        out.append(m)
    return out
