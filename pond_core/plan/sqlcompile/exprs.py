"""sqlglot expression helpers: conjuncts, scopes, column bindings and rewrites.

After sqlglot's `qualify`, every column names the alias of the FROM item it reads. An alias can
be reused by a subquery (TPC-H Q2's subquery has its own `partsupp`), so a column's FROM item is
found by walking up to the nearest SELECT that defines its alias.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sqlglot import exp

from pond_core.sql_quote import quote_ident

DIALECT = "duckdb"


def sql(e: exp.Expression) -> str:
    return e.sql(dialect=DIALECT)


def conjuncts(e: exp.Expression | None) -> list[exp.Expression]:
    if e is None:
        return []
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.And):
        return conjuncts(e.left) + conjuncts(e.right)
    return [e]


def disjuncts(e: exp.Expression) -> list[exp.Expression]:
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.Or):
        return disjuncts(e.left) + disjuncts(e.right)
    return [e]


def and_all(items: list[exp.Expression]) -> exp.Expression | None:
    if not items:
        return None
    out = items[0]
    for item in items[1:]:
        out = exp.and_(out, item, copy=False)
    return out


def source_items(select: exp.Select) -> list[exp.Expression]:
    """The FROM item and every JOIN item of a SELECT."""
    items = []
    frm = select.args.get("from_")
    if frm is not None:
        items.append(frm.this)
    items.extend(j.this for j in select.args.get("joins") or [])
    return items


def item_alias(item: exp.Expression) -> str:
    return item.alias_or_name


def source_aliases(select: exp.Select) -> set[str]:
    return {item_alias(i) for i in source_items(select)}


def binding_select(col: exp.Column) -> exp.Select | None:
    """The SELECT whose FROM item this column reads."""
    table = col.table
    if not table:
        return None
    node = col.parent
    while node is not None:
        if isinstance(node, exp.Select) and table in source_aliases(node):
            return node
        node = node.parent
    return None


def is_subquery_root(node: exp.Expression) -> bool:
    """A query nested in an expression (scalar, IN, EXISTS, ANY/ALL), not a FROM item."""
    if not isinstance(node, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
        return False
    parent = node.parent
    if isinstance(parent, exp.Subquery):
        grand = parent.parent
        return not isinstance(grand, (exp.From, exp.Join))
    return isinstance(parent, (exp.Exists, exp.In, exp.Any, exp.All))


def walk_local(e: exp.Expression) -> Iterator[exp.Expression]:
    """Nodes of e, not descending into nested queries."""
    stack = [e]
    while stack:
        node = stack.pop()
        yield node
        for child in node.iter_expressions():
            if isinstance(child, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
                continue
            stack.append(child)


def subquery_roots(e: exp.Expression) -> list[exp.Expression]:
    """The outermost queries nested in expression e."""
    out = []
    stack = [e]
    while stack:
        node = stack.pop()
        for child in node.iter_expressions():
            if isinstance(child, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
                out.append(child)
            else:
                stack.append(child)
    return out


def has_subquery(e: exp.Expression) -> bool:
    return bool(subquery_roots(e))


def columns_bound_to(e: exp.Expression, select: exp.Select) -> list[exp.Column]:
    """Columns anywhere under e (nested queries included) that read a FROM item of `select`."""
    return [c for c in e.find_all(exp.Column) if binding_select(c) is select]


def aliases_used(e: exp.Expression, select: exp.Select) -> set[str]:
    return {c.table for c in columns_bound_to(e, select)}


def column_ref(name: str, qualifier: str | None = None) -> exp.Column:
    return exp.Column(
        this=exp.Identifier(this=name, quoted=True),
        table=exp.Identifier(this=qualifier, quoted=True) if qualifier else None,
    )


def rewrite(
    e: exp.Expression,
    select: exp.Select,
    colmap: dict[tuple[str, str], str],
    qualifier: str | None = None,
    replace: Callable[[exp.Expression], exp.Expression | None] | None = None,
) -> exp.Expression:
    """A copy of e with this SELECT's columns renamed to relation columns (colmap maps
    (alias, column) to the name in the relation). `replace` may swap whole sub-expressions
    first (aggregates, group keys). Nested queries keep their own columns; columns of this
    SELECT inside them (correlation) are renamed too."""
    bound = {id(c): colmap.get((c.table, c.name)) for c in columns_bound_to(e, select)}
    copy = _copy_with_map(e)

    def visit(node: exp.Expression) -> exp.Expression:
        orig = copy.mapping.get(id(node))
        if replace is not None and orig is not None:
            got = replace(orig)
            if got is not None:
                return got
        if isinstance(node, exp.Column) and orig is not None and id(orig) in bound:
            name = bound[id(orig)]
            if name is None:
                from pond_core.plan.sqlcompile.rel import NotDistributable

                raise NotDistributable(f"column {orig.sql(dialect=DIALECT)} is neither grouped nor aggregated here")
            return column_ref(name, qualifier)
        return node

    return copy.root.transform(visit, copy=False)


class _Copied:
    def __init__(self, root: exp.Expression, mapping: dict[int, exp.Expression]) -> None:
        self.root = root
        self.mapping = mapping


def _copy_with_map(e: exp.Expression) -> _Copied:
    """A deep copy, with a map from each copied node (by id) to its original."""
    copy = e.copy()
    mapping: dict[int, exp.Expression] = {}
    for new, old in zip(copy.walk(), e.walk()):
        mapping[id(new)] = old
    return _Copied(copy, mapping)


def q(name: str) -> str:
    return quote_ident(name)
