"""Are the inputs of a per-partition query partitioned alike?

`partial_sql` runs partition i of every input together (smallpond's meaning), which joins
correctly only when equal join keys land in the same partition of each input. pond knows how
each input was partitioned: hashed on a different number of keys they can never be aligned
(refused); one hashed and one split another way, or hashed on differently named keys that the
query does not visibly equate, they may be wrong (a warning names both). Inputs hashed on
`l_orderkey` and `o_orderkey` and joined `ON l_orderkey = o_orderkey` (TPC-H's shape) are
right, and silent: the query's join and WHERE conditions are read (sqlglot) for an equality
of the two hash keys, key by key.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from pond_core.errors import PondConfigError

log = logging.getLogger("pond")


def partitioning(node: object) -> tuple[str, tuple[str, ...]] | None:
    """(method, keys) of the nearest repartition, through nodes that keep partitions; None when
    the input is not repartitioned (files as read). Nodes are told apart by their `kind`, so
    this module needs no import of plan.logical (which calls it)."""
    current: Any = node
    while True:
        kind = getattr(current, "kind", None)
        if kind == "repartition":
            return current.method.value, tuple(current.keys)
        if kind in ("sql", "python") and len(current.inputs) == 1:
            current = current.inputs[0]
            continue
        return None


def check_copartitioned(inputs: Sequence[object], query: str) -> None:
    split = [(i, p) for i, node in enumerate(inputs) if getattr(node, "npartitions", 1) > 1 and (p := partitioning(node))]
    hashed = [(i, keys) for i, (method, keys) in split if method == "hash"]
    if len(split) < 2 or not hashed:
        return
    first, keys = hashed[0]
    for i, (method, other) in split:
        if method == "hash" and len(other) != len(keys):
            raise PondConfigError(
                f"partial_sql input {{{first}}} is hashed on {list(keys)} but input {{{i}}} on {list(other)}: rows with "
                f"equal keys land in different partitions, so a per-partition join is wrong; repartition both on "
                f"matching keys: {query}"
            )
        if method == "hash" and (list(other) == list(keys) or equates(query, (first, keys), (i, other))):
            continue
        how = f"hashed on {list(other)}" if method == "hash" else f"split by {method}"
        log.warning(
            "partial_sql input {%d} is hashed on %s but input {%d} is %s: a per-partition join is right only "
            "if it matches exactly those keys: %s", first, list(keys), i, how, " ".join(query.split()),
        )


_PLACEHOLDER = re.compile(r"(?<!\{)\{(\d+)\}(?!\})")
Keyed = tuple[int, Sequence[str]]  # an input's index and the columns it is hashed on
Side = tuple[int | None, str]  # a column of an equality: the input it belongs to, its name


def equates(query: str, left: Keyed, right: Keyed) -> bool:
    """True when `query` joins input `left` to input `right` on an equality of their hash keys,
    position by position, in an AND of a JOIN's ON or the WHERE clause. A column counts for an
    input when qualified by that input (its alias, or a CTE that is `SELECT * FROM {i}`), or
    unqualified with that input's key name. False when unsure (the warning stays)."""
    import sqlglot
    from sqlglot import exp

    try:
        sql = _PLACEHOLDER.sub(r"__pond_in\1", query).replace("{{", "{").replace("}}", "}")  # as str.format binds it
        tree = sqlglot.parse_one(sql, read="duckdb")
    except Exception:
        return False
    names = _input_names(tree, exp)
    sides = [(_side(eq.this, names), _side(eq.expression, names)) for eq in _equalities(tree, exp)]

    def is_key(side: Side, index: int, key: str) -> bool:
        qualifier, name = side
        return name == key and qualifier in (None, index)

    def joined(a: str, b: str) -> bool:
        return any(
            (is_key(x, left[0], a) and is_key(y, right[0], b)) or (is_key(y, left[0], a) and is_key(x, right[0], b))
            for x, y in sides
        )

    return all(joined(a, b) for a, b in zip(left[1], right[1]))


def _input_names(tree: Any, exp: Any) -> dict[str, int]:
    """What each input is called in the query: its placeholder's table, aliases, plain CTEs."""
    names: dict[str, int] = {}
    for cte in tree.find_all(exp.CTE):
        tables = list(cte.this.find_all(exp.Table))
        if len(tables) == 1 and (m := re.fullmatch(r"__pond_in(\d+)", tables[0].name)):
            names[cte.alias] = int(m.group(1))
    for table in tree.find_all(exp.Table):
        index = names.get(table.name)
        if (m := re.fullmatch(r"__pond_in(\d+)", table.name)) is not None:
            index = int(m.group(1))
        if index is not None:
            names[table.name] = index
            if table.alias:
                names[table.alias] = index
    return names


def _equalities(tree: Any, exp: Any) -> list[Any]:
    """The `a = b` conjuncts of every JOIN ... ON and of the top WHERE."""
    conditions = [j.args.get("on") for j in tree.find_all(exp.Join)] + [tree.args.get("where")]
    out = []
    for condition in conditions:
        todo = [condition.this if isinstance(condition, exp.Where) else condition]
        while todo:
            node = todo.pop()
            if isinstance(node, exp.And):
                todo += [node.this, node.expression]
            elif isinstance(node, exp.Paren):
                todo.append(node.this)
            elif isinstance(node, exp.EQ) and isinstance(node.this, exp.Column) and isinstance(node.expression, exp.Column):
                out.append(node)
    return out


def _side(column: Any, names: dict[str, int]) -> Side:
    """(the input a column is qualified by, -1 for another table, None when unqualified; its name)."""
    return (names.get(column.table, -1) if column.table else None, column.name)
