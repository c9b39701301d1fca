"""Comparing a pond SQL result with DuckDB's: exact for integers, decimals, strings and dates,
1e-9 relative for doubles, in order where the query orders (rows tied on every ORDER BY key may
come in any order), and with DuckDB's Python value types."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Sequence
from typing import Any

import sqlglot
from sqlglot import exp

REL_TOL = 1e-9


def order_columns(query: str, names: Sequence[str]) -> list[int] | None:
    """Indexes of the output columns the query's outermost ORDER BY sorts on; None if unordered."""
    tree = sqlglot.parse_one(query, read="duckdb")
    order = tree.args.get("order")
    if order is None:
        return None
    lowered = [n.lower() for n in names]
    out = []
    for o in order.expressions:
        e = o.this
        if isinstance(e, exp.Literal) and e.this.isdigit():
            out.append(int(e.this) - 1)
        elif isinstance(e, exp.Column) and e.name.lower() in lowered:
            out.append(lowered.index(e.name.lower()))
        else:
            return []  # ordered by an expression: compare as sets within the whole result
    return out


def same_value(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, float) and isinstance(b, float)):
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=0.0) or a == b
    if isinstance(b, int) and not isinstance(b, bool) and isinstance(a, decimal.Decimal):
        return a == b and a == a.to_integral_value()  # HUGEINT: pond stores DECIMAL(38,0)
    if type(a) is not type(b) and not (isinstance(a, dt.datetime) and isinstance(b, dt.datetime)):
        return False
    return a == b


def same_row(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))


def _key(row: Sequence[Any]) -> tuple:
    return tuple((v is None, repr(round(v, 6)) if isinstance(v, float) else repr(v)) for v in row)


def assert_same_result(got: list[tuple], want: list[tuple], order: list[int] | None, label: str = "") -> None:
    assert len(got) == len(want), f"{label}: {len(got)} rows, DuckDB has {len(want)}"
    if order is None or order == []:
        got_s, want_s = sorted(got, key=_key), sorted(want, key=_key)
        for i, (g, w) in enumerate(zip(got_s, want_s)):
            assert same_row(g, w), f"{label}: row {i} (sorted) {g!r} != DuckDB {w!r}"
        return
    # In order, except within runs of rows DuckDB has tied on every ORDER BY key.
    i = 0
    while i < len(want):
        j = i + 1
        while j < len(want) and all(same_value(want[j][k], want[i][k]) for k in order):
            j += 1
        g_run, w_run = got[i:j], want[i:j]
        for g in g_run:
            assert all(same_value(g[k], want[i][k]) for k in order), f"{label}: row {i} out of order: {g!r}, DuckDB {want[i]!r}"
        for a, b in zip(sorted(g_run, key=_key), sorted(w_run, key=_key)):
            assert same_row(a, b), f"{label}: rows {i}..{j - 1}: {a!r} != DuckDB {b!r}"
        i = j
