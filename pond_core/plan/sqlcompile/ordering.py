"""ORDER BY, LIMIT and DISTINCT across partitions.

- ORDER BY ... LIMIT k: the first k (+ offset) rows of each partition, gathered, then the final
  ORDER BY ... LIMIT k OFFSET o (top-N in two phases). Tied rows may be cut differently than in
  one process: ORDER BY does not order them, in DuckDB either.
- LIMIT without ORDER BY: at most k (+ offset) rows per partition, then one partition keeps k.
- ORDER BY without LIMIT: small results are gathered and sorted in one partition. Large ones
  take a range exchange built from pond's own steps: each partition samples its sort keys
  (DuckDB's `create_sort_key`, a BLOB whose byte order is the ORDER BY's order, NULLS and DESC
  included), one partition picks n-1 boundaries, and every row's partition is the number of
  boundaries below its key; then each partition sorts. Partitions come back in order, so the
  result reads sorted; rows with equal keys always land together.
- DISTINCT: distinct per partition, then an exchange on all columns (or a gather when small),
  then distinct again; no exchange when the input is already hashed on a subset of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pond_core.plan.logical import Repartition, RepartitionMethod
from pond_core.plan.sqlcompile.model import ExchangeKind, Op, Partitioning, PartKind, PlanNode
from pond_core.plan.sqlcompile.rel import (
    Context,
    Rel,
    derive,
    gather,
    hash_exchange,
    partitions_for,
    sentinel,
)
from pond_core.sql_quote import quote_ident

SAMPLE_ROWS = 1000


@dataclasses.dataclass(frozen=True)
class SortKey:
    column: str
    desc: bool
    nulls_first: bool

    def sql(self) -> str:
        return f"{quote_ident(self.column)} {'DESC' if self.desc else 'ASC'} NULLS {'FIRST' if self.nulls_first else 'LAST'}"

    def modifier(self) -> str:
        return f"'{'DESC' if self.desc else 'ASC'} NULLS {'FIRST' if self.nulls_first else 'LAST'}'"


def order_limit(
    ctx: Context, rel: Rel, keys: Sequence[SortKey], limit: int | None, offset: int, label: str, keep: Sequence[str] | None = None
) -> Rel:
    cols = ", ".join(quote_ident(c) for c in (keep if keep is not None else rel.columns))
    order = f" ORDER BY {', '.join(k.sql() for k in keys)}" if keys else ""
    tail = (f" LIMIT {limit}" if limit is not None else "") + (f" OFFSET {offset}" if offset else "")
    what = ("ORDER BY" if keys else "") + (" LIMIT" if limit is not None else "") + (" OFFSET" if offset else "")
    if rel.part.is_single:
        return derive(ctx, f"SELECT {cols} FROM {sentinel(0)}{order}{tail}", [rel], part=rel.part, rows=_rows(rel, limit),
                      op=Op.SORT if keys else Op.LIMIT, detail=f"{label}:{order}{tail}", reason="one partition")
    if limit is not None:
        first = limit + offset
        all_cols = ", ".join(quote_ident(c) for c in rel.columns)
        top = derive(ctx, f"SELECT {all_cols} FROM {sentinel(0)}{order} LIMIT {first}", [rel], part=rel.part, rows=min(rel.rows, first * rel.n),
                     op=Op.TOP_N if keys else Op.LIMIT, detail=f"{label}: first {first} rows per partition{order}",
                     reason="no partition can contribute more than the limit")
        one = gather(ctx, top, f"{label}: the final{what} needs every partition's candidates")
        return derive(ctx, f"SELECT {cols} FROM {sentinel(0)}{order}{tail}", [one], part=one.part, rows=_rows(rel, limit),
                      op=Op.SORT if keys else Op.LIMIT, detail=f"{label}:{order}{tail}", reason="final top-n")
    if offset or partitions_for(ctx, rel.bytes) == 1 or not keys:
        why = "OFFSET counts rows of the whole result" if offset else f"small result (est. {rel.bytes / 2**20:.1f} MiB)"
        one = gather(ctx, rel, f"{label}: {why}: sorted in one partition")
        return derive(ctx, f"SELECT {cols} FROM {sentinel(0)}{order}{tail}", [one], part=one.part, rows=rel.rows,
                      op=Op.SORT, detail=f"{label}:{order}{tail}", reason=why)
    return range_sort(ctx, rel, keys, label, keep)


def range_sort(ctx: Context, rel: Rel, keys: Sequence[SortKey], label: str, keep: Sequence[str] | None = None) -> Rel:
    n = ctx.n
    all_cols = ", ".join(quote_ident(c) for c in rel.columns)
    sort_key = f"create_sort_key({', '.join(f'{quote_ident(k.column)}, {k.modifier()}' for k in keys)})"
    keyed = derive(ctx, f"SELECT {all_cols}, {sort_key} AS __pond_sk FROM {sentinel(0)}", [rel], part=rel.part, rows=rel.rows,
                   op=Op.PROJECT, detail=f"{label}: sort keys as bytes", reason="range exchange")
    sample = derive(ctx, f"SELECT __pond_sk FROM {sentinel(0)} USING SAMPLE reservoir({SAMPLE_ROWS} ROWS) REPEATABLE (7)", [keyed],
                    part=keyed.part, rows=SAMPLE_ROWS * n, op=Op.SAMPLE, detail=f"{label}: {SAMPLE_ROWS} sort keys per partition",
                    reason="boundaries for the range exchange")
    samples = gather(ctx, sample, f"{label}: one partition picks the boundaries")
    fractions = ", ".join(f"{k / n!r}" for k in range(1, n))
    bounds = derive(ctx, f"SELECT quantile_disc(__pond_sk, [{fractions}]) AS __pond_b FROM {sentinel(0)}",
                    [samples], part=Partitioning.single(), rows=1, op=Op.SAMPLE, detail=f"{label}: {n - 1} boundaries",
                    reason="quantiles of the sample")
    bucketed = derive(
        ctx,
        f"SELECT {', '.join('k.' + quote_ident(c) for c in rel.columns)}, "
        f"coalesce(CAST(len(list_filter(b.__pond_b, lambda v: v < k.__pond_sk)) AS BIGINT), 0) AS __pond_bucket "
        f"FROM {sentinel(0)} AS k, {sentinel(1)} AS b",
        [keyed, bounds], part=keyed.part, rows=rel.rows, op=Op.PROJECT, detail=f"{label}: partition of each row", reason="range exchange",
    )
    plan = Repartition(inputs=(bucketed.plan,), n=n, method=RepartitionMethod.VALUE, expr="__pond_bucket")
    part = Partitioning(PartKind.RANGE, n)
    node = PlanNode(Op.EXCHANGE, f"range by ({', '.join(k.column for k in keys)}) into {n}", part, (bucketed.node,),
                    f"{label}: global ORDER BY of a large result", ExchangeKind.RANGE, rel.rows, rel.bytes)
    moved = dataclasses.replace(bucketed, plan=plan, part=part, node=node)
    cols = ", ".join(quote_ident(c) for c in (keep if keep is not None else rel.columns))
    order = ", ".join(k.sql() for k in keys)
    return derive(ctx, f"SELECT {cols} FROM {sentinel(0)} ORDER BY {order}", [moved], part=part, rows=rel.rows, op=Op.SORT,
                  detail=f"{label}: ORDER BY {order}", reason="each range sorted; partitions are in order")


def distinct(ctx: Context, rel: Rel, label: str) -> Rel:
    cols = ", ".join(quote_ident(c) for c in rel.columns)
    if rel.part.groups_on(set(rel.columns)):
        return derive(ctx, f"SELECT DISTINCT {cols} FROM {sentinel(0)}", [rel], part=rel.part, rows=rel.rows * 0.5, op=Op.DISTINCT,
                      detail=label, reason="equal rows already share a partition")
    partial = derive(ctx, f"SELECT DISTINCT {cols} FROM {sentinel(0)}", [rel], part=rel.part, rows=rel.rows * 0.5, op=Op.DISTINCT,
                     detail=f"{label}: per partition", reason="first phase")
    n = partitions_for(ctx, partial.bytes)
    if n == 1:
        moved = gather(ctx, partial, f"{label}: small (est. {partial.bytes / 2**20:.1f} MiB): finish in one partition")
    else:
        moved = hash_exchange(ctx, partial, rel.columns, n, f"{label}: equal rows must meet")
    return derive(ctx, f"SELECT DISTINCT {cols} FROM {sentinel(0)}", [moved], part=moved.part, rows=rel.rows * 0.5, op=Op.DISTINCT,
                  detail=f"{label}: final", reason="second phase")


def _rows(rel: Rel, limit: int | None) -> float:
    return min(rel.rows, float(limit)) if limit is not None else rel.rows
