"""The SQL compiler: one statement over named inputs into pond's logical plan.

The statement is parsed and qualified by sqlglot (every column bound to its FROM item, `*`
expanded), bound by DuckDB over empty copies of the inputs in the sealed shadow (a user's SQL
error surfaces here, with DuckDB's message), then compiled block by block into the logical plan
nodes DataFrames build (reads, `Repartition` exchanges, per-partition `Sql` steps): one rule per
kind of query expression (`RULES`), each in its own module (block.py for a SELECT, setops.py for
UNION/INTERSECT/EXCEPT, ...). Every CTE, derived table and uncorrelated subquery is a boundary:
what cannot be distributed inside it (`NotDistributable`) runs in one partition - DuckDB running
that part's own SQL - and the rest of the query stays distributed. Each such fallback is named
with its reason in explain(), logged, and heads the step's SQL as a comment (so the stage
description and the catalog's lineage record carry it); with `PlanOptions(strict=True)` it is an
error instead. Any other exception while compiling is a compiler bug and is raised, never
hidden behind a one-partition run.

The last step casts the result to the types DuckDB gives the statement and names its columns as
DuckDB does.

This package is the plan layer: it imports no Session, DataFrame or executor module
(tests/test_architecture.py). pond_core.sqlplan turns DataFrames and paths into `InputTable`s
and the compiled plan back into a DataFrame.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify

from pond_core.errors import PondSqlError
from pond_core.plan.logical import Node, Repartition, Sql, walk
from pond_core.plan.naming import MAX_NAME, slug
from pond_core.plan.sql import bind_named_inputs
from pond_core.plan.sqlcompile import exprs as X
from pond_core.plan.sqlcompile.block import plan_select
from pond_core.plan.sqlcompile.explain import render
from pond_core.plan.sqlcompile.model import Fallback, Op, Partitioning, PlanNode, PlanOptions
from pond_core.plan.sqlcompile.rel import (
    Context,
    NotDistributable,
    Rel,
    choose_npartitions,
    derive,
    gather,
    project,
    sentinel,
)
from pond_core.plan.sqlcompile.scans import base_rel
from pond_core.plan.sqlcompile.scope import Env, Planned
from pond_core.plan.sqlcompile.setops import plan_setop
from pond_core.plan.sqlcompile.shadow import STORED_AS, Shadow, ShadowError
from pond_core.plan.sqlcompile.tables import FileGrouping, InputTable
from pond_core.plan.statement import pivot_values_from_data
from pond_core.sql_errors import on_user_sql
from pond_core.sql_quote import quote_ident

log = logging.getLogger("pond.sql")


@dataclasses.dataclass(frozen=True)
class CompiledQuery:
    """A statement compiled into pond's logical plan, with the typed description of how it runs."""

    query: str
    plan: Node  # the result: pond's logical plan, as a DataFrame would hold it
    root: PlanNode
    npartitions: int
    fallbacks: tuple[Fallback, ...]
    output: tuple[tuple[str, str], ...]  # (name, DuckDB type) of the result; () for a PIVOT over the data
    # node id -> its (name, DuckDB type) columns, for every node of `plan` (an exchange has its
    # input's); a PIVOT over the data has () until it runs
    schemas: Mapping[str, tuple[tuple[str, str], ...]] = dataclasses.field(default_factory=dict)

    def schema_of(self, node: Node) -> tuple[tuple[str, str], ...]:
        return self.schemas[node.id]

    @property
    def distributed(self) -> bool:
        """False when the whole statement runs in one partition."""
        return not any(f.where == "whole query" for f in self.fallbacks)

    def explain(self) -> str:
        """The distributed plan (no pond stages; DataFrame.explain adds those)."""
        header = "result: " + (", ".join(f"{n} {t}" for n, t in self.output) or "columns that come from the data (PIVOT)")
        return render(self.root, self.npartitions, self.fallbacks, header)


def compile_statement(
    body: str,
    tables: Mapping[str, InputTable],
    shadow: Shadow,
    options: PlanOptions,
    cores: int,
    group_files: FileGrouping,
) -> CompiledQuery:
    """Compile `body` (one query, checked by plan/statement.py) over `tables`, whose empty copies
    the sealed `shadow` holds under their names."""
    from_data = pivot_values_from_data(body)
    output = () if from_data else _describe(shadow, body)
    hashed = [t.layout.npartitions for t in tables.values() if t.layout.hash_keys]
    n = choose_npartitions(options, sum(t.total_bytes for t in tables.values()), cores, hashed)
    ctx = Context(group_files, options, n, shadow, dict(tables))
    rel, root = _plan(ctx, body, output, from_data)
    _report_fallbacks(ctx, body)
    return CompiledQuery(body, rel.plan, root, n, tuple(ctx.fallbacks), output, _node_schemas(ctx, rel.plan))


def _node_schemas(ctx: Context, plan: Node) -> dict[str, tuple[tuple[str, str], ...]]:
    """Every node's columns: those the shadow bound when the node was made; an exchange has its
    input's. A node made outside the compiler (an input DataFrame's own steps) is left out."""
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for node in walk(plan):
        if id(node) in ctx.schemas:
            out[node.id] = ctx.schemas[id(node)]
        elif isinstance(node, Repartition) and node.inputs[0].id in out:
            out[node.id] = out[node.inputs[0].id]
    return out


def _describe(shadow: Shadow, body: str) -> tuple[tuple[str, str], ...]:
    """The statement's result columns, bound by DuckDB over the empty inputs (a user's SQL error
    surfaces here, with DuckDB's message)."""
    try:
        return tuple(shadow.describe(body))
    except ShadowError as exc:
        message = str(exc).split("\nSQL:")[0]
        if "Permission Error" in message:
            raise PondSqlError(
                f"sql: the statement reads a file, URL or database that is not one of its inputs ({message.splitlines()[0]}); "
                f"pond plans over its named inputs only: give it as an input (sql(query, name=path)) and name it like a table"
                f"\nSQL: {body}"
            ) from None
        raise PondSqlError(f"sql: {on_user_sql(message, body)}\nSQL: {body}") from None


def _report_fallbacks(ctx: Context, body: str) -> None:
    """Every part that runs in one partition is logged; under strict it is an error."""
    chosen = [f for f in ctx.fallbacks if f.reason != "distribute=False"]
    if chosen and ctx.options.strict:
        listed = "\n".join(f"  - {f.describe()}" for f in chosen)
        raise PondSqlError(
            f"sql: strict planning: {len(chosen)} part(s) of the statement would run in one partition:\n{listed}\n"
            f"rewrite them (docs/sql.md lists what distributes) or plan without strict\nSQL: {body}"
        )
    for f in chosen:
        log.warning("pond sql: %s", f.describe())


def _plan(ctx: Context, body: str, output: tuple[tuple[str, str], ...], from_data: bool) -> tuple[Rel, PlanNode]:
    if not ctx.options.distribute:
        ctx.fallbacks.append(Fallback("whole query", "distribute=False"))
    elif from_data:
        ctx.fallbacks.append(Fallback("whole query", "PIVOT takes its columns from the data (no IN list): only the whole input tells them"))
    else:
        try:
            tree = _parse(ctx, body)
            env = Env({}, lambda e, env, label: _boundary(ctx, e, env, label))
            planned = _plan_node(ctx, tree, env, "query")
            rel = _finish(ctx, planned.rel, output)
            return rel, rel.node
        except NotDistributable as exc:  # a construct with no distributed plan: the whole query, exactly
            ctx.fallbacks.clear()
            ctx.fallbacks.append(Fallback("whole query", str(exc).split("\n")[0]))
        except PondSqlError:
            raise
        except Exception as exc:  # a planner bug: never hidden behind a one-partition run
            exc.add_note(f"pond's SQL planner failed on this statement (a bug; PlanOptions(distribute=False) runs it in one partition):\n{body}")
            raise
    names = list(ctx.tables)
    rels = [base_rel(dataclasses.replace(ctx, n=1), ctx.tables[name], [c for c, _ in ctx.tables[name].schema]) for name in names]
    rels = [gather(ctx, r, "the query runs in one partition") for r in rels]
    text = ctx.fallbacks[-1].sql_comment() + bind_named_inputs(body, names)  # `{i}` already: no sentinels
    plan = ctx.typed(Sql(inputs=tuple(r.plan for r in rels), query=text, name=_single_name(ctx.fallbacks[-1])), output)
    node = PlanNode(Op.SINGLE_PARTITION, "the statement as written, by DuckDB", Partitioning.single(), tuple(r.node for r in rels),
                    ctx.fallbacks[-1].reason)
    rel = Rel(plan, tuple(c for c, _ in output), tuple(t for _, t in output), Partitioning.single(), 0.0, tuple(8.0 for _ in output), "", node)
    return rel, node


def _parse(ctx: Context, body: str) -> exp.Expression:
    try:
        trees = sqlglot.parse(body, read=X.DIALECT)
    except Exception as exc:
        raise NotDistributable(f"sqlglot cannot parse the statement ({exc})") from exc
    if len(trees) != 1 or trees[0] is None:
        raise NotDistributable("more than one statement")
    tree = trees[0]
    if not isinstance(tree, (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery)):
        raise NotDistributable(f"a {type(tree).__name__} statement")
    for e in tree.find_all(exp.Exists):  # EXISTS (SELECT * ...) reads no column
        if isinstance(e.this, exp.Select):
            e.this.set("expressions", [exp.Literal.number(1)])
    schema = {name: {c: t for c, t in t_.schema} for name, t_ in ctx.tables.items()}
    try:
        return qualify(tree, schema=schema, dialect=X.DIALECT, validate_qualify_columns=True)
    except Exception as exc:
        raise NotDistributable(f"sqlglot cannot resolve the statement's columns ({exc})") from exc


def _plan_node(ctx: Context, e: exp.Expression, env: Env, label: str) -> Planned:
    with_ = e.args.get("with_")
    if with_ is not None:
        if with_.args.get("recursive"):
            raise NotDistributable("WITH RECURSIVE")
        for cte in with_.expressions:
            planned = _boundary(ctx, cte.this, env, f"CTE {cte.alias}")
            env = env.with_cte(cte.alias, planned)
    rule = RULES.get(type(e))
    if rule is None:
        raise NotDistributable(f"a {type(e).__name__}")
    return rule(ctx, e, env, label)


def _boundary(ctx: Context, e: exp.Expression, env: Env, label: str) -> Planned:
    """Plan a nested query; what cannot be distributed runs in one partition, exactly."""
    if _correlated(e):
        raise NotDistributable(f"{label} reads columns of an enclosing query")
    try:
        return _plan_node(ctx, e, env, label)
    except NotDistributable as exc:
        fallback = Fallback(label, str(exc).split("\n")[0])
        ctx.fallbacks.append(fallback)
        return _single(ctx, e, env, label, fallback)


def _correlated(e: exp.Expression) -> bool:
    inside = {id(n) for n in e.walk()}
    for c in e.find_all(exp.Column):
        b = X.binding_select(c)
        if b is not None and id(b) not in inside:
            return True
    return False


def _single(ctx: Context, e: exp.Expression, env: Env, label: str, fallback: Fallback) -> Planned:
    """The nested query's own SQL in one partition, its tables bound to gathered inputs."""
    local = {c.alias for c in e.find_all(exp.CTE)}
    copy = e.copy()
    rels: list[Rel] = []
    names: dict[str, str] = {}
    for orig, new in zip(list(e.walk()), list(copy.walk())):
        if not isinstance(orig, exp.Table) or not isinstance(orig.parent, (exp.From, exp.Join)):
            continue
        name = orig.name
        if name in local:
            continue
        if name not in names:
            if name in env.ctes:
                rel = gather(ctx, env.ctes[name].rel, f"{label} runs in one partition")
            elif name in ctx.tables:
                t = ctx.tables[name]
                rel = gather(ctx, base_rel(dataclasses.replace(ctx, n=1), t, [c for c, _ in t.schema]), f"{label} runs in one partition")
            else:
                raise NotDistributable(f"{name} is not an input")
            names[name] = sentinel(len(rels))
            rels.append(rel)
        new.replace(exp.Table(this=exp.Identifier(this=names[name], quoted=False), alias=exp.TableAlias(this=exp.Identifier(this=orig.alias_or_name, quoted=True))))
    if isinstance(copy, exp.Select) and copy.args.get("with_") is None and not rels:
        raise NotDistributable(f"{label} reads no input")
    rel = derive(ctx, fallback.sql_comment() + X.sql(copy), rels, part=Partitioning.single(), rows=max([r.rows for r in rels] or [1.0]),
                 op=Op.SINGLE_PARTITION, detail=f"{label} as written, by DuckDB", reason=fallback.reason)
    named = ctx.typed(dataclasses.replace(rel.plan, name=_single_name(fallback)), list(zip(rel.columns, rel.types)))
    rel = dataclasses.replace(rel, plan=named)
    return Planned(rel, rel.columns)


def _single_name(fallback: Fallback) -> str:
    """The stage computing a one-partition part says so in its name (plans, orchestrator tasks,
    the catalog's stage list): `whole_query_in_one_partition`, `cte_x_in_one_partition`."""
    return (slug(fallback.where)[: MAX_NAME - 20].strip("_") or "part") + "_in_one_partition"


def _finish(ctx: Context, rel: Rel, output: tuple[tuple[str, str], ...]) -> Rel:
    """Cast to DuckDB's result types and name the columns as DuckDB does."""
    if len(rel.columns) != len(output):
        raise AssertionError(f"planned {len(rel.columns)} columns, DuckDB gives {len(output)}")
    exprs = []
    changed = False
    for c, have, (name, want) in zip(rel.columns, rel.types, output):
        stored = STORED_AS.get(want.upper(), want)
        if have in (want, stored):
            exprs.append((quote_ident(c), name))
        else:
            exprs.append((f"CAST({quote_ident(c)} AS {want})", name))
            changed = True
        changed = changed or c != name
    if len({n.lower() for n, _ in output}) != len(output):
        # Parquet cannot hold two columns of one name: as DuckDB's COPY does, later ones get _1, _2.
        from pond_core.plan.sqlcompile.block import unique_names

        unique = unique_names([n for n, _ in output])
        exprs = [(e, u) for (e, _), u in zip(exprs, unique)]
        changed = True
    if not changed:
        return rel
    return project(ctx, rel, exprs, "result columns as DuckDB names and types them")


# The registry from a query expression to the rule that compiles it (as Ray Data's planner maps
# logical operators to physical ones): a new construct is a new entry, not a new branch.
Rule = Callable[[Context, exp.Expression, Env, str], Planned]


def _subquery(ctx: Context, e: exp.Expression, env: Env, label: str) -> Planned:
    return _plan_node(ctx, e.this, env, label)


def _select(ctx: Context, e: exp.Expression, env: Env, label: str) -> Planned:
    assert isinstance(e, exp.Select)
    return plan_select(ctx, e, env, label)


def _setop(ctx: Context, e: exp.Expression, env: Env, label: str) -> Planned:
    return plan_setop(ctx, e, env, label, lambda b, env_, lab: _boundary(ctx, b, env_, lab))


RULES: dict[type[exp.Expression], Rule] = {
    exp.Subquery: _subquery,
    exp.Select: _select,
    exp.Union: _setop,
    exp.Intersect: _setop,
    exp.Except: _setop,
}
