"""Distributed SQL over whole datasets (issue 16): pond plans the exchanges.

    from pond_core.sqlplan import plan_sql, session_sql

    dq = plan_sql(sp, "SELECT o_orderpriority, count(*) FROM orders JOIN lineitem ON ...",
                  {"orders": "/data/orders/*.parquet", "lineitem": lineitem_df})
    dq.frame.take_all()     # equals DuckDB's result over the whole inputs
    print(dq.explain())     # stages, exchanges, broadcasts, fallbacks and why

`session_sql(sp, query, **inputs)` is what `Session.sql` returns. See docs/sql.md.
"""

from pond_core.plan.sqlcompile.model import (
    ExchangeKind,
    Fallback,
    Op,
    Partitioning,
    PartKind,
    PlanNode,
    PlanOptions,
)
from pond_core.sqlplan.planner import DistributedQuery, plan_sql, session_sql

__all__ = [
    "DistributedQuery", "ExchangeKind", "Fallback", "Op", "PartKind", "Partitioning", "PlanNode", "PlanOptions",
    "plan_sql", "session_sql",
]
