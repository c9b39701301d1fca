"""Window functions across partitions: the rows of a window partition must share a pond partition.

All window functions of a SELECT are computed in one step. If they share PARTITION BY columns,
the input is hashed on those common columns (or left as it is when already hashed on a subset);
a window without PARTITION BY (or windows with nothing in common) needs every row in one
partition.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from pond_core.plan.sqlcompile.rel import Context, Rel, gather, hash_exchange


def window_input(ctx: Context, rel: Rel, partition_keys: Sequence[Sequence[exp.Expression]], label: str) -> Rel:
    """`rel` laid out so every window partition of every window lies in one partition."""
    common: set[str] | None = None
    for keys in partition_keys:
        cols = {k.name for k in keys if isinstance(k, exp.Column) and k.name in rel.columns}
        if len(cols) != len(keys) or not cols:
            cols = set()
        common = cols if common is None else common & cols
    common = common or set()
    if rel.part.groups_on(common):
        return rel
    if not common:
        return gather(ctx, rel, f"{label}: a window over all rows (no common PARTITION BY column) needs one partition")
    keys_t = tuple(c for c in rel.columns if c in common)
    return hash_exchange(ctx, rel, keys_t, ctx.n, f"{label}: rows of a window partition must meet")
