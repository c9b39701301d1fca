"""The SQL compiler: one statement over named inputs into pond's logical plan (issue 22).

    compiled = compile_statement(body, tables, shadow, options, cores, group_files)
    compiled.plan        # a logical plan node, as a DataFrame holds it: reads, exchanges, SQL steps
    compiled.explain()   # the distributed plan: exchanges, broadcasts, fallbacks and why

Modelled on sqlglot's optimizer (rules as functions, one module each) and Ray Data's planner
(a registry from logical operator to its rule: `compiler.RULES`). Everything here is plan layer:
no Session, DataFrame or executor import (tests/test_architecture.py). pond_core.sqlplan is the
front end that builds the `InputTable`s from DataFrames and paths. See docs/sql.md.
"""

from pond_core.plan.sqlcompile.compiler import RULES, CompiledQuery, compile_statement
from pond_core.plan.sqlcompile.model import ExchangeKind, Fallback, Op, Partitioning, PartKind, PlanNode, PlanOptions
from pond_core.plan.sqlcompile.rel import NotDistributable
from pond_core.plan.sqlcompile.shadow import Shadow
from pond_core.plan.sqlcompile.tables import FileGrouping, InputLayout, InputTable

__all__ = [
    "RULES", "CompiledQuery", "ExchangeKind", "Fallback", "FileGrouping", "InputLayout", "InputTable", "NotDistributable", "Op",
    "PartKind", "Partitioning", "PlanNode", "PlanOptions", "Shadow", "compile_statement",
]
