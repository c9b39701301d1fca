"""`plan_sql`: one SQL statement over whole inputs as pond stages, with DuckDB's result.

The front end of the SQL compiler (pond_core.plan.sqlcompile) for Session.sql, named_sql (the
orchestrators' SQL tasks) and `pond sql`: it checks that the text is exactly one query (DuckDB's
parser and sqlglot agree, before anything is read or bound), turns the inputs (DataFrames,
paths, globs, s3:// URLs) into the compiler's `InputTable`s, seals the planning DuckDB (no file,
network or extension access: see shadow.py), compiles, and hands the compiled logical plan back
as a DataFrame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp

from pond_core.plan.sqlcompile import exprs as X
from pond_core.plan.sqlcompile.compiler import CompiledQuery, compile_statement
from pond_core.plan.sqlcompile.model import Fallback, PlanNode, PlanOptions
from pond_core.plan.sqlcompile.shadow import Shadow
from pond_core.plan.statement import check_one_query
from pond_core.sqlplan import adapter
from pond_core.sqlplan.inputs import InputHashing, Lookup, resolve_inputs

if TYPE_CHECKING:
    from pond_core.dataframe import DataFrame
    from pond_core.session import Session


@dataclasses.dataclass(frozen=True)
class DistributedQuery:
    """A planned statement: its lazy DataFrame and the typed description of how it runs."""

    compiled: CompiledQuery
    frame: DataFrame

    @property
    def query(self) -> str:
        return self.compiled.query

    @property
    def root(self) -> PlanNode:
        return self.compiled.root

    @property
    def npartitions(self) -> int:
        return self.compiled.npartitions

    @property
    def fallbacks(self) -> tuple[Fallback, ...]:
        return self.compiled.fallbacks

    @property
    def output(self) -> tuple[tuple[str, str], ...]:
        """(name, DuckDB type) of the result."""
        return self.compiled.output

    @property
    def distributed(self) -> bool:
        """False when the whole statement runs in one partition."""
        return self.compiled.distributed

    def explain(self) -> str:
        """The distributed plan (no pond stages; DataFrame.explain adds those)."""
        return self.compiled.explain()


def plan_sql(
    session: Session,
    query: str,
    inputs: Mapping[str, Any],
    *,
    npartitions: int | None = None,
    broadcast_threshold: int | None = None,
    options: PlanOptions | None = None,
    lookup: Lookup | None = None,
    strict: bool | None = None,
    hashing: InputHashing | None = None,
) -> DistributedQuery:
    """Plan `query` over `inputs` (name -> DataFrame, path, glob, s3:// URL or a list of them).

    `strict=True`: raise PondSqlError instead of running any part of the statement in one
    partition. `hashing`: the caller's own hash partitioning of the inputs that hold its keys."""
    opts = options or PlanOptions()
    if npartitions is not None:
        opts = dataclasses.replace(opts, npartitions=npartitions)
    if broadcast_threshold is not None:
        opts = dataclasses.replace(opts, broadcast_threshold=broadcast_threshold)
    if strict is None:
        strict = session.config.sql_strict or None  # the setting; None keeps the options' own
    if strict is not None:
        opts = dataclasses.replace(opts, strict=strict)
    body = check_one_query(query, "sql")  # nothing is read, bound or run before this
    shadow = Shadow()
    try:
        tables = resolve_inputs(session, inputs, shadow, lookup, _table_names(body), hashing)
        shadow.seal()
        compiled = compile_statement(body, tables, shadow, opts, adapter.cluster_cores(session), adapter.file_groups)
    finally:
        shadow.close()
    frame = adapter.sql_frame(session, compiled.plan, compiled.explain)
    return DistributedQuery(compiled, frame)


def session_sql(session: Session, query: str, /, **inputs: Any) -> DataFrame:
    """What `Session.sql(query, **inputs)` returns: the result as a lazy DataFrame."""
    return plan_sql(session, query, inputs).frame


def _table_names(body: str) -> set[str] | None:
    """The table names a statement reads (to look only at those inputs); None if unknown."""
    try:
        return {t.name.lower() for tree in sqlglot.parse(body, read=X.DIALECT) if tree is not None for t in tree.find_all(exp.Table)}
    except Exception:
        return None
