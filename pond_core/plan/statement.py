"""One user statement, and only a query: checked before pond plans or runs anything.

pond runs a user's SQL text inside its own statements (`CREATE VIEW step AS <text>`, DESCRIBE
<text> while planning). DuckDB executes every statement of a string, so a text like
`SELECT ...; COPY (...) TO 'file'` would write the file while pond only meant to plan, and a
text that is a COPY, ATTACH, INSTALL, SET or CREATE is not a query at all. Both parsers must
agree that the text is exactly one query: DuckDB's (what runs it) and sqlglot's (what the planner
rewrites).

One DuckDB subtlety: a PIVOT whose values come from the data (no `IN (...)` list) is expanded by
DuckDB's parser into `CREATE TYPE` statements (an enum of the values) followed by the SELECT.
Those generated statements carry no text of their own; they are part of the one query.
"""

from __future__ import annotations

import functools

import duckdb

from pond_core.errors import PondSqlError
from pond_core.plan.sql import inputs_as_names

_QUERY = duckdb.StatementType.SELECT
_PIVOT_ENUM = duckdb.StatementType.CREATE


def strip_statement(sql: str) -> str:
    """The statement without surrounding blanks and trailing semicolons."""
    body = sql.strip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    return body


def check_one_query(sql: str, what: str = "sql") -> str:
    """`sql` without trailing semicolons; PondSqlError unless it is exactly one query.

    A text DuckDB cannot parse raises with DuckDB's message (the statement is wrong anyway)."""
    body = strip_statement(sql)
    try:
        statements = duckdb.extract_statements(body)
    except duckdb.Error as exc:
        raise PondSqlError(f"{what}: {str(exc).strip()}\nSQL: {body}") from None
    _check_duckdb(statements, body, what)
    _check_sqlglot(body, what)
    return body


@functools.lru_cache(maxsize=4096)
def check_partition_query(query: str) -> None:
    """The per-partition form (`partial_sql` and pond's own steps): `{i}` placeholders name the
    inputs. Text DuckDB cannot parse is left to fail when it runs, with the run's own error (no
    statement of an unparseable string runs)."""
    try:
        text = inputs_as_names(query, query.count("{") + 1)
    except (IndexError, KeyError, ValueError):
        return  # malformed placeholders: check_placeholders names them
    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error:
        return
    _check_duckdb(statements, text, "partial_sql")
    if len(statements) > 1:  # a PIVOT expanded by DuckDB: sqlglot must see one statement too
        _check_sqlglot(text, "partial_sql")


def _check_duckdb(statements: list[duckdb.Statement], body: str, what: str) -> None:
    if not statements:
        raise PondSqlError(f"{what}: the SQL text holds no statement; give one query (SELECT, WITH ... SELECT, VALUES, PIVOT)")
    kinds = [s.type for s in statements]
    queries = sum(k == _QUERY for k in kinds)
    pivot_expansion = all(k in (_QUERY, _PIVOT_ENUM) for k in kinds) and all(not s.query.strip() for s in statements[:-1])
    if len(statements) == 1 and queries == 1:
        return
    if queries == 1 and kinds[-1] == _QUERY and pivot_expansion:
        return
    if len(statements) > 1:
        found = ", ".join(k.name for k in kinds if not (k == _PIVOT_ENUM and pivot_expansion))
        raise PondSqlError(
            f"{what}: the SQL text holds more than one statement ({found}); pond runs exactly one query per call "
            f"and ran none of them\nSQL: {body}"
        )
    raise PondSqlError(
        f"{what}: a {kinds[0].name} statement is not a query; pond runs only queries (SELECT, WITH ... SELECT, VALUES, "
        f"PIVOT) and ran nothing\nSQL: {body}"
    )


def _check_sqlglot(body: str, what: str) -> None:
    import sqlglot

    try:
        trees = [t for t in sqlglot.parse(body, read="duckdb") if t is not None]
    except Exception:
        return  # sqlglot knows less SQL than DuckDB: DuckDB's parse above is the authority then
    if len(trees) > 1:
        raise PondSqlError(
            f"{what}: the SQL text holds {len(trees)} statements; pond runs exactly one query per call and ran none of them\nSQL: {body}"
        )


def pivot_values_from_data(query: str) -> bool:
    """True for one query holding a PIVOT whose values come from the data: its result columns
    are known only after reading the whole input, and DuckDB cannot make it a view."""
    try:
        return len(duckdb.extract_statements(query)) > 1
    except duckdb.Error:
        return False
