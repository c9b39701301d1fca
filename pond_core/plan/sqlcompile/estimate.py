"""Rough selectivities of predicates, for size estimates only.

Estimates decide broadcasts, gathers and partition counts, never results: a wrong guess costs
time, not correctness. The factors are the textbook defaults (System R and its heirs).
"""

from __future__ import annotations

from sqlglot import exp


def selectivity(e: exp.Expression) -> float:
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.And):
        return selectivity(e.left) * selectivity(e.right)
    if isinstance(e, exp.Or):
        a, b = selectivity(e.left), selectivity(e.right)
        return min(1.0, a + b - a * b)
    if isinstance(e, exp.Not):
        return max(0.05, 1.0 - selectivity(e.this))
    if isinstance(e, exp.EQ):
        return 0.1
    if isinstance(e, exp.NEQ):
        return 0.9
    if isinstance(e, exp.In):
        if e.args.get("query") is not None:
            return 0.5
        return min(0.5, 0.1 * max(1, len(e.expressions)))
    if isinstance(e, (exp.Like, exp.ILike)):
        return 0.25
    if isinstance(e, exp.Between):
        return 0.25
    if isinstance(e, (exp.GT, exp.GTE, exp.LT, exp.LTE)):
        return 0.4
    if isinstance(e, exp.Is):
        return 0.1
    if isinstance(e, exp.Exists):
        return 0.5
    return 0.5


def combined(preds: list[exp.Expression]) -> float:
    out = 1.0
    for p in preds:
        out *= selectivity(p)
    return max(out, 1e-4)
