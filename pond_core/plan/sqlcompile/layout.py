"""Bringing two relations to one layout on their keys, moving as little as possible.

Two relations are co-partitioned on keys (a, b) when equal key values land in the same
partition index on both sides:
- both hashed with the same count on corresponding keys of the same types (DuckDB's hash
  depends on the type: hash(-1::INT) != hash(-1::BIGINT));
- both clustered on corresponding keys with the same key ranges. An input whose files hold
  disjoint ranges of a column (TPC-H's tables by their keys, or data written sorted) is read as
  contiguous file groups, one per partition, and is clustered on that column with no exchange.

`colocate` keeps a side that already has a layout on its keys and moves only the other side
into it (a hash exchange, or a key-range exchange into the clustered side's ranges); otherwise
both sides are hashed, keys of different types cast to the type DuckDB compares them in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pond_core.plan.logical import Repartition, RepartitionMethod
from pond_core.plan.sqlcompile.model import ExchangeKind, Op, Partitioning, PartKind, PlanNode
from pond_core.plan.sqlcompile.rel import Context, Rel, hash_exchange, project
from pond_core.sql_quote import quote_ident


def copartitioned(left: Rel, right: Rel, pairs: Sequence[tuple[str, str]]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """Key tuples (left, right) both sides are laid out on, matched through the pairs."""
    if not left.part.same_scheme(right.part):
        return None
    for lkeys in left.part.keys:
        options = [[b for a, b in pairs if a == k] for k in lkeys]
        if not all(options):
            continue
        for rkeys in right.part.keys:
            if len(rkeys) == len(lkeys) and all(r in opts for r, opts in zip(rkeys, options)):
                if left.part.kind is PartKind.CLUSTERED or all(left.type_of(a) == right.type_of(b) for a, b in zip(lkeys, rkeys)):
                    return tuple(lkeys), tuple(rkeys)
    return None


def anchor(side: Rel, other: Rel, pairs: Sequence[tuple[str, str]], flip: bool) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """Keys `side` is laid out on (a subset of its join keys) and the matching keys of `other`."""
    if not side.part.keyed:
        return None
    for keys in side.part.keys:
        mapped = []
        for k in keys:
            match = [b for a, b in pairs if a == k] if not flip else [a for a, b in pairs if b == k]
            if not match:
                break
            mapped.append(match[0])
        else:
            if side.part.kind is PartKind.CLUSTERED and len(keys) == 1 and _range_comparable(side.type_of(keys[0]), other.type_of(mapped[0])):
                return tuple(keys), tuple(mapped)
            if side.part.kind is PartKind.HASH and all(side.type_of(k) == other.type_of(m) for k, m in zip(keys, mapped)):
                return tuple(keys), tuple(mapped)
    return None


_NUMBERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "DECIMAL", "FLOAT", "DOUBLE")
_TIMES = ("DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS")


def _range_comparable(clustered_type: str, other_type: str) -> bool:
    """The other side's key compares with the clustered side's bounds by value (numbers with
    integer bounds, dates and timestamps with date bounds), as the join compares them."""
    a, b = clustered_type.split("(")[0].upper(), other_type.split("(")[0].upper()
    return (a in _NUMBERS and b in _NUMBERS) or (a in _TIMES and b in _TIMES)


def colocate(
    ctx: Context, left: Rel, right: Rel, pairs: Sequence[tuple[str, str]], reason: str
) -> tuple[Rel, Rel, str]:
    """Both sides laid out so rows with equal keys meet; returns them and what was done."""
    if copartitioned(left, right, pairs) is not None:
        return left, right, "already co-partitioned"
    options = []
    a = anchor(left, right, pairs, flip=False)
    if a is not None:
        options.append((right.bytes, "right", a))
    b = anchor(right, left, pairs, flip=True)
    if b is not None:
        options.append((left.bytes, "left", b))
    if options:
        _, move, (fixed_keys, other_keys) = min(options, key=lambda o: o[0])
        fixed, other = (left, right) if move == "right" else (right, left)
        moved = into_layout(ctx, other, other_keys, fixed, reason)
        what = f"{move} side moved into the other's layout on ({', '.join(fixed_keys)})"
        return (left, moved, what) if move == "right" else (moved, right, what)
    lk = tuple(x for x, _ in pairs)
    rk = tuple(y for _, y in pairs)
    left, right, lk, rk = align_types(ctx, left, right, lk, rk)
    return hash_exchange(ctx, left, lk, ctx.n, reason), hash_exchange(ctx, right, rk, ctx.n, reason), "both sides hashed"


def into_layout(ctx: Context, rel: Rel, keys: tuple[str, ...], target: Rel, reason: str) -> Rel:
    """`rel` moved so its `keys` land where the target's keys of equal value are."""
    if target.part.kind is PartKind.HASH:
        return hash_exchange(ctx, rel, keys, target.part.n, reason)
    return key_range_exchange(ctx, rel, keys[0], target.part.bounds, target.part.n, reason)


def key_range_exchange(ctx: Context, rel: Rel, key: str, bounds: tuple[str, ...], n: int, reason: str) -> Rel:
    """repartition(n, by=the index of the range that holds the key); NULL keys go to 0."""
    part = Partitioning(PartKind.CLUSTERED, n, ((key,),), bounds)
    if rel.part.kind is PartKind.CLUSTERED and rel.part.bounds == bounds and rel.part.hashed_on((key,)):
        return rel
    col = quote_ident(key)
    cases = " ".join(f"WHEN {col} < {b} THEN {k}" for k, b in enumerate(bounds))
    expr = f"CASE WHEN {col} IS NULL THEN 0 {cases} ELSE {n - 1} END"
    plan = Repartition(inputs=(rel.plan,), n=n, method=RepartitionMethod.VALUE, expr=expr)
    node = PlanNode(Op.EXCHANGE, f"by the key ranges of ({key}) into {n}", part, (rel.node,), reason, ExchangeKind.KEY_RANGES, rel.rows, rel.bytes)
    return dataclasses.replace(rel, plan=plan, part=part, node=node)


def align_types(
    ctx: Context, left: Rel, right: Rel, lk: tuple[str, ...], rk: tuple[str, ...]
) -> tuple[Rel, Rel, tuple[str, ...], tuple[str, ...]]:
    """Hash keys of different types cast to the type DuckDB compares them in."""
    lcast, rcast = [], []
    new_l, new_r = list(lk), list(rk)
    for i, (a, b) in enumerate(zip(lk, rk)):
        ta, tb = left.type_of(a), right.type_of(b)
        if ta != tb:
            common = ctx.shadow.common_type(ta, tb)
            if ta != common:
                name = f"__pond_hk_{a}"
                lcast.append((f"CAST({quote_ident(a)} AS {common})", name))
                new_l[i] = name
            if tb != common:
                name = f"__pond_hk_{b}"
                rcast.append((f"CAST({quote_ident(b)} AS {common})", name))
                new_r[i] = name
    if lcast:
        left = project(ctx, left, [(quote_ident(c), c) for c in left.columns] + lcast, "cast join keys to one type")
    if rcast:
        right = project(ctx, right, [(quote_ident(c), c) for c in right.columns] + rcast, "cast join keys to one type")
    return left, right, tuple(new_l), tuple(new_r)
