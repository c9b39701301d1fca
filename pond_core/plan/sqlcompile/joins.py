"""Joins across partitions: co-partitioned, broadcast or hash-exchanged, and a join order.

A join step runs per partition, so every pair of rows that can match must meet in one partition:
- co-partitioned: both sides already hashed on corresponding join keys (same count, same key
  types, as DuckDB's hash depends on the type) - no exchange;
- broadcast: one side whole in every partition. Legal only where the whole side's rows may be
  repeated in each partition without repeating output: the build side of an inner join, the
  right side of a LEFT/SEMI/ANTI join, the left side of a RIGHT join. Chosen when that side is
  estimated under the broadcast threshold;
- hash exchange: both sides hashed on the join keys (keys of different types are cast to the
  type DuckDB compares them in first). NULL keys never match, wherever they land.
A FULL join without equality keys runs in one partition.

Inner joins of a FROM list are ordered greedily: start from the largest relation; join small
(broadcastable) neighbours first, then neighbours that need no exchange, then the smallest.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Any

from pond_core.plan.sqlcompile.layout import colocate, copartitioned
from pond_core.plan.sqlcompile.model import Op, Partitioning
from pond_core.plan.sqlcompile.rel import Context, Rel, broadcast, derive, gather, sentinel
from pond_core.sql_quote import quote_ident


class JoinKind(enum.Enum):
    INNER = "INNER"
    LEFT = "LEFT"
    RIGHT = "RIGHT"
    FULL = "FULL"
    SEMI = "SEMI"
    ANTI = "ANTI"
    CROSS = "CROSS"


class Strategy(enum.Enum):
    LOCAL = "co-partitioned"
    BROADCAST_RIGHT = "broadcast right"
    BROADCAST_LEFT = "broadcast left"
    HASH = "hash both"
    SINGLE = "one partition"


@dataclasses.dataclass(frozen=True)
class JoinSpec:
    kind: JoinKind
    pairs: tuple[tuple[str, str], ...]  # (left column, right column) equalities
    on: tuple[str, ...] = ()  # further ON conditions (SQL over both sides' columns)
    where: tuple[str, ...] = ()  # filters applied after an inner join
    keep: tuple[str, ...] | None = None  # output columns; default all (left only for SEMI/ANTI)
    label: str = ""


def join(ctx: Context, left: Rel, right: Rel, spec: JoinSpec) -> Rel:
    strategy, why = _choose(ctx, left, right, spec)
    reason = why
    if strategy is Strategy.BROADCAST_RIGHT:
        right = broadcast(ctx, right, why)
    elif strategy is Strategy.BROADCAST_LEFT:
        left = broadcast(ctx, left, why)
    elif strategy is Strategy.SINGLE:
        left, right = gather(ctx, left, why), gather(ctx, right, why)
    elif strategy is Strategy.HASH:
        left, right, done = colocate(ctx, left, right, spec.pairs, f"{spec.label}: equal join keys must meet")
        reason = f"{why}; {done}"
    part = _output_partitioning(strategy, spec.kind, left, right)
    keep = spec.keep
    if keep is None:
        keep = left.columns if spec.kind in (JoinKind.SEMI, JoinKind.ANTI) else left.columns + tuple(c for c in right.columns if c not in left.columns)
    conds = [f"{quote_ident(a)} = {quote_ident(b)}" for a, b in spec.pairs] + list(spec.on)
    kind = spec.kind.value
    if spec.kind is JoinKind.CROSS or (not conds and spec.kind is JoinKind.INNER):
        body = f"{sentinel(0)} AS __pond_l CROSS JOIN {sentinel(1)} AS __pond_r"
    else:
        body = f"{sentinel(0)} AS __pond_l {kind} JOIN {sentinel(1)} AS __pond_r ON {' AND '.join(conds) or 'true'}"
    text = f"SELECT {', '.join(quote_ident(c) for c in keep)} FROM {body}"
    if spec.where:
        text += " WHERE " + " AND ".join(f"({w})" for w in spec.where)
    rows, sel = _estimate(left, right, spec)
    detail = f"{spec.kind.value} {spec.label}" + (f" ON {' AND '.join(conds)}" if conds else "")
    return derive(
        ctx, text, [left, right], part=part.renamed({c: c for c in keep}), rows=rows, op=Op.JOIN,
        detail=detail, reason=f"{strategy.value}: {reason}", sel=sel,
    )


def _choose(ctx: Context, left: Rel, right: Rel, spec: JoinSpec) -> tuple[Strategy, str]:
    pairs = spec.pairs
    if left.part.is_single and right.part.is_single:
        return Strategy.SINGLE, "both sides in one partition"
    co = copartitioned(left, right, pairs)
    if co is not None:
        return Strategy.LOCAL, f"both sides laid out on ({', '.join(co[0])}) = ({', '.join(co[1])})"
    thr = ctx.threshold
    kind = spec.kind
    small_right = right.part.is_single or right.bytes <= thr
    small_left = left.part.is_single or left.bytes <= thr
    can_right = kind in (JoinKind.INNER, JoinKind.LEFT, JoinKind.SEMI, JoinKind.ANTI, JoinKind.CROSS) and small_right
    can_left = kind in (JoinKind.INNER, JoinKind.RIGHT, JoinKind.CROSS) and small_left
    # Broadcasting into a one-partition side makes the join one partition: only worth it when
    # the broadcast side is small too.
    if can_right and left.part.is_single and not right.part.is_single and pairs and not small_left:
        can_right = False
    if can_left and right.part.is_single and not left.part.is_single and pairs and not small_right:
        can_left = False
    # A side already laid out on the join keys stays put; moving the other side once is
    # cheaper than copying it into every partition unless it is tiny.
    if pairs and can_right and not right.part.is_single and _anchored(left, right, pairs) and right.bytes * left.n > thr:
        can_right = False
    if pairs and can_left and not left.part.is_single and _anchored(right, left, [(b, a) for a, b in pairs]) and left.bytes * right.n > thr:
        can_left = False
    if can_right and can_left:
        if right.part.is_single and not left.part.is_single:
            can_left = False
        elif left.part.is_single and not right.part.is_single or left.bytes < right.bytes:
            can_right = False
        else:
            can_left = False
    if can_right:
        return Strategy.BROADCAST_RIGHT, f"{_side(right)} is small ({_mb(right.bytes)} <= {_mb(thr)})"
    if can_left:
        return Strategy.BROADCAST_LEFT, f"{_side(left)} is small ({_mb(left.bytes)} <= {_mb(thr)})"
    if pairs:
        return Strategy.HASH, f"both sides large ({_mb(left.bytes)}, {_mb(right.bytes)})"
    if kind is JoinKind.LEFT or kind is JoinKind.SEMI or kind is JoinKind.ANTI:
        return Strategy.BROADCAST_RIGHT, "no equality keys: the right side goes to every partition"
    if kind is JoinKind.RIGHT:
        return Strategy.BROADCAST_LEFT, "no equality keys: the left side goes to every partition"
    if kind is JoinKind.FULL:
        return Strategy.SINGLE, "a FULL join without equality keys runs in one partition"
    if left.bytes < right.bytes:
        return Strategy.BROADCAST_LEFT, "no equality keys: the smaller side goes to every partition"
    return Strategy.BROADCAST_RIGHT, "no equality keys: the smaller side goes to every partition"


def _anchored(side: Rel, other: Rel, pairs: Any) -> bool:
    from pond_core.plan.sqlcompile.layout import anchor

    return anchor(side, other, pairs, flip=False) is not None


def _output_partitioning(strategy: Strategy, kind: JoinKind, left: Rel, right: Rel) -> Partitioning:
    if strategy is Strategy.SINGLE or (left.part.is_single and right.part.is_single):
        return Partitioning.single()
    if strategy is Strategy.BROADCAST_RIGHT:
        return left.part
    if strategy is Strategy.BROADCAST_LEFT:
        return right.part
    if kind in (JoinKind.LEFT, JoinKind.SEMI, JoinKind.ANTI):
        return left.part
    if kind is JoinKind.RIGHT:
        return right.part
    if kind is JoinKind.FULL:
        return Partitioning.split(left.part.n)
    if left.part.same_scheme(right.part):
        return left.part.with_alternatives(right.part.keys)
    return left.part


def estimate_rows(left: Rel, right: Rel, pairs: Sequence[tuple[str, str]]) -> float:
    """Join output rows. Where a side looks unique on its keys (distinct-count bounds reach its
    row count) the join is a foreign-key join: the other side's rows times the fraction of the
    unique side's rows its filters kept. Otherwise |L| |R| / max(distinct keys of L, of R)."""
    if not pairs:
        return left.rows * right.rows
    dl = left.distinct_of([a for a, _ in pairs])
    dr = right.distinct_of([b for _, b in pairs])
    fk = []
    if dr >= 0.9 * right.rows:
        fk.append(left.rows * min(1.0, right.sel))
    if dl >= 0.9 * left.rows:
        fk.append(right.rows * min(1.0, left.sel))
    if fk:
        return max(fk)
    return left.rows * right.rows / max(dl, dr, 1.0)


def _estimate(left: Rel, right: Rel, spec: JoinSpec) -> tuple[float, float]:
    sel = left.sel * right.sel
    if spec.kind in (JoinKind.SEMI, JoinKind.ANTI):
        return left.rows * 0.5, left.sel * 0.5
    rows = estimate_rows(left, right, spec.pairs) * (0.5 if spec.on or spec.where else 1.0)
    if spec.kind is JoinKind.LEFT:
        rows = max(rows, left.rows)
    elif spec.kind is JoinKind.RIGHT:
        rows = max(rows, right.rows)
    elif spec.kind is JoinKind.FULL:
        rows = max(rows, left.rows + right.rows)
    return rows, sel


def _side(rel: Rel) -> str:
    return rel.node.detail.split(":")[0]


def _mb(nbytes: float) -> str:
    return f"{nbytes / 2**20:.1f} MiB"
