"""Logical rewrites that keep meaning and save work.

- A repartition that changes nothing is dropped (to one partition from one partition; a hash
  repartition of data already hash-partitioned the same way).
- A limit is pushed into a scan it reads directly, so DuckDB stops reading early; nested limits
  collapse. A limit stays global: it never moves below a partitioned step.

Consecutive per-partition steps are fused later, when the compiler puts them in one stage that
runs as one DuckDB query over chained views.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from pond_core.plan.logical import Limit, Node, Read, Repartition


def optimize(root: Node) -> Node:
    for rule in (drop_noop_repartition, push_limit):
        root = rewrite(root, rule)
    return root


def rewrite(root: Node, rule: Callable[[Node], Node]) -> Node:
    """Apply `rule` bottom-up; shared sub-plans are rewritten once and stay shared."""
    done: dict[str, Node] = {}

    def visit(node: Node) -> Node:
        if node.id in done:
            return done[node.id]
        children = tuple(visit(c) for c in node.inputs)
        rebuilt = node if children == node.inputs else dataclasses.replace(node, inputs=children)
        result = rule(rebuilt)
        done[node.id] = result
        return result

    return visit(root)


def drop_noop_repartition(node: Node) -> Node:
    if not isinstance(node, Repartition):
        return node
    child = node.inputs[0]
    if node.n == 1 and child.npartitions == 1 and node.method != "random":
        return child
    if (
        isinstance(child, Repartition)
        and node.method == "hash"
        and child.method == "hash"
        and child.n == node.n
        and child.keys == node.keys
    ):
        return child
    return node


def push_limit(node: Node) -> Node:
    if not isinstance(node, Limit):
        return node
    child = node.inputs[0]
    if isinstance(child, Limit):
        return push_limit(Limit(inputs=child.inputs, n=min(node.n, child.n)))
    if isinstance(child, Read):
        current = child.source.limit
        if current is None or current > node.n:
            source = dataclasses.replace(child.source, limit=node.n)
            return dataclasses.replace(node, inputs=(Read(inputs=(), source=source),))
    return node
