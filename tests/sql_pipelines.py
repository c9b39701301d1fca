"""Pipelines whose result is a whole-dataset SQL statement (used by tests/test_sql_plan.py)."""

from __future__ import annotations

from typing import Any

from pond_core.sqlplan import session_sql


def revenue_by_priority(sp: Any, data: str, npartitions: int = 3) -> Any:
    from pond_core.sqlplan import plan_sql

    query = (
        "SELECT o_orderpriority, sum(l_extendedprice * (1 - l_discount)) AS revenue, count(*) AS n "
        "FROM orders JOIN lineitem ON l_orderkey = o_orderkey GROUP BY o_orderpriority ORDER BY o_orderpriority"
    )
    return plan_sql(sp, query, {"orders": f"{data}/orders/*.parquet", "lineitem": f"{data}/lineitem/*.parquet"}, npartitions=npartitions).frame


def small_totals(sp: Any, data: str) -> Any:
    return session_sql(sp, "SELECT n_regionkey, count(*) AS n FROM nation GROUP BY ALL ORDER BY 1", nation=f"{data}/nation/*.parquet")
