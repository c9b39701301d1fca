"""Aggregation across partitions, in one or two phases, with results equal to DuckDB's.

Modes, first that applies:
- local: the input already holds every group in one partition (one partition, or hashed on a
  subset of the group keys): aggregate per partition, no exchange;
- two-phase: every aggregate decomposes into partial aggregates per partition and a final
  combination after the partials of a group meet (hash exchange on the group keys, or a gather
  when the partials are small or there are no group keys);
- distinct-then-aggregate: the aggregates are insensitive to duplicates of one argument x
  (count/sum/avg DISTINCT x, approx_count_distinct(x), min/max(x)): rows are first made distinct
  on (keys, x) per partition, then exchanged on the keys and aggregated as written. The HLL of
  approx_count_distinct over the deduplicated rows of a whole group is the one DuckDB builds;
- rows-then-aggregate: anything else (string_agg, quantiles, list, ordered aggregates, ...):
  the rows are exchanged on the group keys (or gathered) and aggregated as written.

Decompositions that need care:
- count: the final is a sum of counts, cast back to BIGINT (a sum of BIGINT is HUGEINT);
- avg: sum and count per partition; the final divides the exact total as DuckDB does (the
  unscaled integer sum over count x 10^scale for DECIMAL, as DOUBLE), so the result is DOUBLE and
  agrees with DuckDB's to the last bit or two;
- var/stddev: count, mean and M2 (var_pop x count) per partition, combined with Chan's formula
  (M2 = sum M2_i + n_i (mean_i - mean)^2), which keeps DuckDB's Welford precision;
- sum over integers: HUGEINT partials are stored as DECIMAL(38,0); users of the result see
  DuckDB's type through a cast.
"""

from __future__ import annotations

import dataclasses
import enum
import weakref
from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from pond_core.plan.sqlcompile.exprs import column_ref, sql
from pond_core.plan.sqlcompile.model import Op, Partitioning
from pond_core.plan.sqlcompile.rel import (
    Context,
    Rel,
    derive,
    gather,
    hash_exchange,
    partitions_for,
    sentinel,
    shadow_sql,
)
from pond_core.sql_quote import quote_ident


class AggKind(enum.Enum):
    COUNT = "count"
    SUM = "sum"
    MIN = "min"
    MAX = "max"
    AVG = "avg"
    VAR_SAMP = "var_samp"
    VAR_POP = "var_pop"
    STDDEV_SAMP = "stddev_samp"
    STDDEV_POP = "stddev_pop"
    BOOL_AND = "bool_and"
    BOOL_OR = "bool_or"
    BIT_AND = "bit_and"
    BIT_OR = "bit_or"
    BIT_XOR = "bit_xor"
    APPROX_DISTINCT = "approx_count_distinct"
    OTHER = "other"


class Mode(enum.Enum):
    LOCAL = "local"
    TWO_PHASE = "two-phase"
    DEDUP = "distinct-then-aggregate"
    ROWS = "rows-then-aggregate"


def _classes() -> list[tuple[type, AggKind]]:
    names = [
        ("Count", AggKind.COUNT), ("Sum", AggKind.SUM), ("Min", AggKind.MIN), ("Max", AggKind.MAX),
        ("Avg", AggKind.AVG), ("Variance", AggKind.VAR_SAMP), ("VariancePop", AggKind.VAR_POP),
        ("Stddev", AggKind.STDDEV_SAMP), ("StddevSamp", AggKind.STDDEV_SAMP), ("StddevPop", AggKind.STDDEV_POP),
        ("LogicalAnd", AggKind.BOOL_AND), ("LogicalOr", AggKind.BOOL_OR),
        ("BitwiseAndAgg", AggKind.BIT_AND), ("BitwiseOrAgg", AggKind.BIT_OR), ("BitwiseXorAgg", AggKind.BIT_XOR),
        ("ApproxDistinct", AggKind.APPROX_DISTINCT),
    ]
    return [(getattr(exp, n), k) for n, k in names if hasattr(exp, n)]


_CLASSES = _classes()
_VARIANCE = (AggKind.VAR_SAMP, AggKind.VAR_POP, AggKind.STDDEV_SAMP, AggKind.STDDEV_POP)
_SAME_FN = {
    AggKind.MIN: "min", AggKind.MAX: "max", AggKind.BOOL_AND: "bool_and", AggKind.BOOL_OR: "bool_or",
    AggKind.BIT_AND: "bit_and", AggKind.BIT_OR: "bit_or", AggKind.BIT_XOR: "bit_xor",
}
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL")


@dataclasses.dataclass(frozen=True)
class AggCall:
    """One aggregate of the query, over the input relation's columns."""

    node: exp.Expression  # the call as written (rewritten to the input's columns)
    kind: AggKind
    arg: exp.Expression | None  # None for count(*)
    distinct: bool
    filter: exp.Expression | None
    plain: bool  # no ORDER BY inside, one argument, no extra arguments

    @property
    def text(self) -> str:
        return sql(self.node)


def describe_call(node: exp.Expression) -> AggCall:
    filt = None
    inner = node
    if isinstance(node, exp.Filter):
        where = node.expression
        filt = where.this if isinstance(where, exp.Where) else where
        inner = node.this
    kind = AggKind.OTHER
    for cls, k in _CLASSES:
        if type(inner) is cls:
            kind = k
            break
    arg = inner.this if isinstance(inner, exp.Func) else None
    distinct = False
    if isinstance(arg, exp.Distinct):
        distinct = True
        arg = arg.expressions[0] if len(arg.expressions) == 1 else None
        if arg is None:
            kind = AggKind.OTHER
    if isinstance(arg, exp.Star):
        arg = None
    plain = not any(isinstance(v, (exp.Order, exp.Ordered)) for v in inner.args.values() if isinstance(v, exp.Expression))
    extra = [k for k, v in inner.args.items() if k != "this" and v not in (None, False, [])]
    if extra and kind is not AggKind.COUNT:
        plain = False
    if kind is AggKind.COUNT and extra and set(extra) - {"big_int"}:
        plain = False
    if isinstance(arg, exp.Order):
        plain = False
    if kind is not AggKind.COUNT and arg is None:
        plain = False
    return AggCall(node, kind, arg, distinct, filt, plain)


@dataclasses.dataclass(frozen=True)
class Aggregated:
    rel: Rel
    group_cols: tuple[str, ...]  # per group expression, its column in rel
    results: dict[str, tuple[str, str | None]]  # call text -> (column, cast to DuckDB's type or None)
    mode: Mode


def aggregate(ctx: Context, child: Rel, groups: Sequence[exp.Expression], calls: Sequence[AggCall], label: str) -> Aggregated:
    # Group keys as columns of the input (computed ones projected first).
    extra: list[tuple[str, str]] = []
    gcols: list[str] = []
    for g in groups:
        if isinstance(g, exp.Column) and not g.table and g.name in child.columns:
            gcols.append(g.name)
        else:
            name = f"__pond_g{len(extra)}"
            extra.append((sql(g), name))
            gcols.append(name)
    if extra:
        exprs = [(quote_ident(c), c) for c in child.columns] + extra
        from pond_core.plan.sqlcompile.rel import project

        child = project(ctx, child, exprs, "group keys as columns")
    gcols_t = tuple(dict.fromkeys(gcols))
    group_by = f" GROUP BY {', '.join(quote_ident(c) for c in gcols_t)}" if gcols_t else ""
    keys_sql = "".join(f"{quote_ident(c)}, " for c in gcols_t)
    orig_types = _types(ctx, child, calls, keys_sql, group_by)
    _learn_arg_types(ctx, child, calls)
    groups_est = 1.0 if not gcols_t else child.distinct_of(gcols_t)

    def finish(rel: Rel, mode: Mode) -> Aggregated:
        results = {}
        for j, call in enumerate(calls):
            col = f"__pond_a{j}"
            have = rel.type_of(col)
            want = orig_types[j]
            cast = None if have == want or (want.upper() in ("HUGEINT", "UHUGEINT") and have == "DECIMAL(38,0)") else want
            results[call.text] = (col, cast)
        return Aggregated(rel, tuple(gcols), results, mode)

    one_phase = ", ".join(f"{c.text} AS {quote_ident(f'__pond_a{j}')}" for j, c in enumerate(calls))
    select_one = f"SELECT {keys_sql}{one_phase}".rstrip(", ")

    if child.part.groups_on(set(gcols_t)) or (not gcols_t and child.part.is_single):
        why = "one partition" if child.part.is_single else f"input already hashed on group keys {', '.join(gcols_t)}"
        rel = derive(ctx, f"{select_one} FROM {sentinel(0)}{group_by}", [child], part=child.part.renamed({c: c for c in gcols_t}),
                     rows=groups_est, op=Op.AGGREGATE, detail=f"{label}: {_names(calls)}", reason=f"{Mode.LOCAL.value}: {why}")
        return finish(rel, Mode.LOCAL)

    if all(_decomposable(c, child) for c in calls):
        return finish(*_two_phase(ctx, child, gcols_t, calls, groups_est, label, keys_sql, group_by))

    dedup_arg = _dedup_argument(calls)
    if dedup_arg is not None:
        x = "__pond_x"
        part_sql = f"SELECT {keys_sql}{sql(dedup_arg)} AS {x} FROM {sentinel(0)} GROUP BY {', '.join([quote_ident(c) for c in gcols_t] + [sql(dedup_arg)])}"
        partial = derive(ctx, part_sql, [child], part=child.part.renamed({c: c for c in gcols_t}), rows=min(child.rows, groups_est * 10),
                         op=Op.PARTIAL_AGGREGATE, detail=f"{label}: distinct ({', '.join(gcols_t + (sql(dedup_arg),))}) per partition",
                         reason="duplicates of the argument do not change these aggregates")
        moved = _to_groups(ctx, partial, gcols_t, label)
        finals = ", ".join(f"{sql(_replace_arg(c, dedup_arg, x))} AS {quote_ident(f'__pond_a{j}')}" for j, c in enumerate(calls))
        text = f"SELECT {keys_sql}{finals} FROM {sentinel(0)}{group_by}"
        rel = derive(ctx, text, [moved], part=moved.part, rows=groups_est, op=Op.FINAL_AGGREGATE, detail=f"{label}: {_names(calls)}",
                     reason=f"{Mode.DEDUP.value}: all rows of a group meet after the exchange")
        return finish(rel, Mode.DEDUP)

    moved = _to_groups(ctx, child, gcols_t, label, raw=True)
    whole = sorted({sql(c.node).split("(")[0].lower() for c in calls if not _decomposable(c, child)})
    rel = derive(ctx, f"{select_one} FROM {sentinel(0)}{group_by}", [moved], part=moved.part, rows=groups_est, op=Op.AGGREGATE,
                 detail=f"{label}: {_names(calls)}", reason=f"{Mode.ROWS.value}: no partial form for {', '.join(whole)}")
    return finish(rel, Mode.ROWS)


def _types(ctx: Context, child: Rel, calls: Sequence[AggCall], keys_sql: str, group_by: str) -> list[str]:
    if not calls:
        return []
    body = ", ".join(f"{c.text} AS {quote_ident(f'__pond_a{j}')}" for j, c in enumerate(calls))
    cols = ctx.shadow.describe(shadow_sql(f"SELECT {body} FROM {sentinel(0)}{group_by}", [child.view]))
    return [t for _, t in cols]


def _names(calls: Sequence[AggCall]) -> str:
    return ", ".join(c.text for c in calls) or "(group keys only)"


def _arg_type(call: AggCall, child: Rel) -> str | None:
    return child_types(child).get(sql(call.arg)) if call.arg is not None else None


_ARG_TYPES: weakref.WeakKeyDictionary[Rel, dict[str, str]] = weakref.WeakKeyDictionary()


def child_types(child: Rel) -> dict[str, str]:
    return _ARG_TYPES.setdefault(child, {})


def _learn_arg_types(ctx: Context, child: Rel, calls: Sequence[AggCall]) -> None:
    """The DuckDB type of each aggregate's argument (decompositions depend on it)."""
    args = [c.arg for c in calls if c.arg is not None and c.plain and not isinstance(c.arg, (exp.Order, exp.Ordered))]
    if not args:
        return
    body = ", ".join(f"{sql(a)} AS {quote_ident(f'__pond_t{i}')}" for i, a in enumerate(args))
    cols = ctx.shadow.describe(shadow_sql(f"SELECT {body} FROM {sentinel(0)}", [child.view]))
    for a, (_, t) in zip(args, cols):
        child_types(child)[sql(a)] = t


def _decomposable(call: AggCall, child: Rel) -> bool:
    if not call.plain:
        return False
    if call.kind in (AggKind.MIN, AggKind.MAX):
        return True  # DISTINCT changes nothing for min/max
    if call.distinct:
        return False
    if call.kind in (AggKind.COUNT, AggKind.SUM) or call.kind in _SAME_FN:
        return True
    if call.kind is AggKind.AVG or call.kind in _VARIANCE:
        typ = _arg_type(call, child)  # learned for plain arguments only
        return typ is not None and typ.split("(")[0].upper() in _NUMERIC
    return False


def _dedup_argument(calls: Sequence[AggCall]) -> exp.Expression | None:
    arg_text = None
    arg = None
    for c in calls:
        if not c.plain or c.filter is not None or c.arg is None:
            return None
        if c.kind in (AggKind.MIN, AggKind.MAX, AggKind.APPROX_DISTINCT) or (c.distinct and c.kind in (AggKind.COUNT, AggKind.SUM, AggKind.AVG)):
            if arg_text is None:
                arg_text, arg = sql(c.arg), c.arg
            elif sql(c.arg) != arg_text:
                return None
        else:
            return None
    return arg


def _replace_arg(call: AggCall, arg: exp.Expression, name: str) -> exp.Expression:
    text = sql(arg)
    return call.node.transform(lambda n: column_ref(name) if sql(n) == text else n)


def _to_groups(ctx: Context, rel: Rel, gcols: tuple[str, ...], label: str, raw: bool = False) -> Rel:
    what = "rows" if raw else "partial results"
    if not gcols:
        return gather(ctx, rel, f"{label}: no group keys: {what} meet in one partition")
    n = partitions_for(ctx, rel.bytes)
    if n == 1:
        return gather(ctx, rel, f"{label}: {what} are small (est. {rel.bytes / 2**20:.1f} MiB): finish in one partition")
    return hash_exchange(ctx, rel, gcols, n, f"{label}: {what} of a group must meet")


def _two_phase(
    ctx: Context, child: Rel, gcols: Sequence[str], calls: Any, groups_est: Any, label: str, keys_sql: Any, group_by: Any
) -> tuple[Rel, Mode]:
    partials: list[str] = []
    finals: list[str] = []
    helpers: list[str] = []
    over = f" OVER (PARTITION BY {', '.join(quote_ident(c) for c in gcols)})" if gcols else " OVER ()"
    for j, c in enumerate(calls):
        p = f"__pond_p{j}"
        f = f" FILTER (WHERE {sql(c.filter)})" if c.filter is not None else ""
        arg = sql(c.arg) if c.arg is not None else "*"
        if c.kind is AggKind.COUNT:
            partials.append(f"count({arg}){f} AS {p}")
            finals.append(f"CAST(coalesce(sum({p}), 0) AS BIGINT)")
        elif c.kind is AggKind.SUM:
            partials.append(f"sum({arg}){f} AS {p}")
            finals.append(f"sum({p})")
        elif c.kind in _SAME_FN:
            fn = _SAME_FN[c.kind]
            partials.append(f"{fn}({arg}){f} AS {p}")
            finals.append(f"{fn}({p})")
        elif c.kind is AggKind.AVG:
            typ = _arg_type(c, child) or "DOUBLE"
            partials.append(f"sum({arg}){f} AS {p}s")
            partials.append(f"count({arg}){f} AS {p}c")
            base = typ.split("(")[0].upper()
            if base == "DECIMAL":
                scale = int(typ.split(",")[1].rstrip(")").strip()) if "," in typ else 0
                factor = 10**scale
                finals.append(f"CAST(CAST(sum({p}s) * {factor} AS HUGEINT) AS DOUBLE) / CAST(sum({p}c) * {factor} AS DOUBLE)")
            elif base in ("FLOAT", "DOUBLE"):
                finals.append(f"CAST(sum({p}s) AS DOUBLE) / CAST(sum({p}c) AS DOUBLE)")
            else:
                finals.append(f"CAST(sum({p}s) AS DOUBLE) / CAST(sum({p}c) AS DOUBLE)")
        elif c.kind in _VARIANCE:
            partials.append(f"count({arg}){f} AS {p}n")
            partials.append(f"CAST(avg({arg}){f} AS DOUBLE) AS {p}m")
            partials.append(f"var_pop({arg}){f} * count({arg}){f} AS {p}q")
            helpers.append(f"sum({p}n * {p}m){over} / sum({p}n){over} AS {p}g")
            n_ = f"sum({p}n)"
            m2 = f"sum({p}q + {p}n * ({p}m - {p}g) * ({p}m - {p}g))"
            if c.kind in (AggKind.VAR_SAMP, AggKind.STDDEV_SAMP):
                v = f"CASE WHEN {n_} > 1 THEN {m2} / ({n_} - 1) END"
            else:
                v = f"CASE WHEN {n_} > 0 THEN {m2} / {n_} END"
            finals.append(f"sqrt({v})" if c.kind in (AggKind.STDDEV_SAMP, AggKind.STDDEV_POP) else v)
        else:  # pragma: no cover - guarded by _decomposable
            raise AssertionError(c.kind)
    part_text = f"SELECT {keys_sql}{', '.join(partials)}".rstrip(", ") + f" FROM {sentinel(0)}{group_by}"
    partial = derive(ctx, part_text, [child], part=child.part.renamed({c: c for c in gcols}), rows=min(child.rows, groups_est * max(1, child.n)),
                     op=Op.PARTIAL_AGGREGATE, detail=f"{label}: {', '.join(partials) or 'group keys'}",
                     reason="every aggregate has a partial form")
    moved = _to_groups(ctx, partial, tuple(gcols), label)
    source = sentinel(0)
    if helpers:
        cols = ", ".join(quote_ident(c) for c in partial.columns)
        source = f"(SELECT {cols}, {', '.join(helpers)} FROM {sentinel(0)}) AS __pond_p"
    body = ", ".join(f"{e} AS {quote_ident(f'__pond_a{j}')}" for j, e in enumerate(finals))
    text = f"SELECT {keys_sql}{body}".rstrip(", ") + f" FROM {source}{group_by}"
    part = moved.part if gcols else Partitioning.single()
    rel = derive(ctx, text, [moved], part=part, rows=groups_est, op=Op.FINAL_AGGREGATE, detail=f"{label}: {_names(calls)}",
                 reason=f"{Mode.TWO_PHASE.value}: combine the partials of each group")
    return rel, Mode.TWO_PHASE
