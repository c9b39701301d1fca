"""Are the inputs of a per-partition query partitioned alike?

`partial_sql` runs partition i of every input together (smallpond's meaning), which joins
correctly only when equal join keys land in the same partition of each input. pond knows how
each input was partitioned: hashed on a different number of keys they can never be aligned
(refused); hashed on differently named keys, or one hashed and one split another way, they
may be wrong (a warning names both, since `orders.customer_id = customers.id` is legitimate).
"""

from __future__ import annotations

import logging
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
        if method != "hash" or list(other) != list(keys):
            how = f"hashed on {list(other)}" if method == "hash" else f"split by {method}"
            log.warning(
                "partial_sql input {%d} is hashed on %s but input {%d} is %s: a per-partition join is right only "
                "if it matches exactly those keys: %s", first, list(keys), i, how, " ".join(query.split()),
            )
