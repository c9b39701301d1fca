"""Small SQL helpers: placeholders and their one binder, column references (quoting:
pond_core.sql_quote).

A plan node's SQL names input i `{i}` (str.format style, literal braces doubled). Where pond
parses or rewrites such SQL (the SQL compiler, stage fusion, the one-statement check) the input
is named `__pond_in_<i>__` instead, a plain identifier every parser accepts; `inputs_as_names`,
`names_as_inputs` and `bind_input_names` convert between the two and bind names to relations.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Sequence

from pond_core.errors import PondConfigError
from pond_core.sql_quote import quote_ident, quote_str, sql_list

__all__ = ["quote_ident", "quote_str", "sql_list"]  # the one quoting helper lives in sql_quote


def placeholders(query: str) -> list[int]:
    """The input indexes `{0}`, `{1}` … a query uses; `{{` escapes a brace as in str.format."""
    found = []
    try:
        parsed = list(string.Formatter().parse(query))
    except ValueError as exc:
        raise PondConfigError(f"cannot parse placeholders in SQL ({exc}); write literal braces as '{{{{' and '}}}}': {query}") from exc
    for _, field, _, _ in parsed:
        if field is None:
            continue
        if not field.isdigit():
            raise PondConfigError(
                f"placeholder {{{field}}} is not an input index like {{0}}; write literal braces "
                f"as '{{{{' and '}}}}' in SQL: {query}"
            )
        found.append(int(field))
    return found


def check_placeholders(query: str, ninputs: int) -> None:
    for index in placeholders(query):
        if index >= ninputs:
            raise PondConfigError(
                f"placeholder {{{index}}} refers to input {index}, but the query has {ninputs} "
                f"input{'s' if ninputs != 1 else ''} ({{0}}..{{{max(ninputs - 1, 0)}}}): {query}"
            )


_INPUT_NAME = re.compile(r'"?__pond_in_(\d+)__"?')


def input_name(i: int) -> str:
    """What parsed or rewritten SQL calls input i (a plan node's `{i}`)."""
    return f"__pond_in_{i}__"


def inputs_as_names(query: str, ninputs: int) -> str:
    """A node's SQL with `{i}` as input names and literal braces single: text a parser reads."""
    return query.format(*[input_name(i) for i in range(ninputs)])


def names_as_inputs(text: str) -> str:
    """SQL naming its inputs `__pond_in_<i>__` as a node's SQL: `{i}`, literal braces doubled."""
    escaped = text.replace("{", "{{").replace("}", "}}")
    return _INPUT_NAME.sub(lambda m: "{" + m.group(1) + "}", escaped)


def bind_input_names(text: str, relations: Sequence[str]) -> str:
    """SQL naming its inputs `__pond_in_<i>__` with each bound to a relation (already quoted)."""
    return _INPUT_NAME.sub(lambda m: relations[int(m.group(1))], text)


def bind(query: str, names: list[str]) -> str:
    """Replace `{i}` with relation names (already quoted)."""
    return query.format(*names)


_LEADING_WITH = re.compile(r"^(\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*)WITH(\s+RECURSIVE)?\s", re.IGNORECASE | re.DOTALL)


def bind_named_inputs(sql: str, names: list[str] | tuple[str, ...]) -> str:
    """Plain SQL that names its inputs like tables, as a pond query: each name becomes a CTE over
    the placeholder `{i}` of input i, and the SQL's own braces are escaped."""
    body = sql.strip().rstrip(";").replace("{", "{{").replace("}", "}}")
    if not names:
        return body
    ctes = ", ".join(f"{quote_ident(name)} AS (SELECT * FROM {{{i}}})" for i, name in enumerate(names))
    match = _LEADING_WITH.match(body)
    if match:
        head = match.group(0)
        return f"{head}{ctes}, {body[len(head):]}"
    return f"WITH {ctes} {body}"


@functools.lru_cache(maxsize=4096)
def referenced_columns(query: str) -> frozenset[str] | None:
    """Column names a query may read, or None when it may read every column.

    Used to prune columns written through an exchange. Conservative: `*` anywhere but
    `count(*)`, NATURAL joins, COLUMNS(...) and anything that fails to parse give None.
    """
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(query, read="duckdb")
    except Exception:
        return None
    for node in tree.walk():
        if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
            return None
        if isinstance(node, exp.Join) and node.args.get("method") and "NATURAL" in str(node.args.get("method")).upper():
            return None
        if isinstance(node, exp.Anonymous) and str(node.name).upper() == "COLUMNS":
            return None
        if isinstance(node, exp.Columns if hasattr(exp, "Columns") else ()):
            return None
    names = {c.name for c in tree.find_all(exp.Column)}
    names |= {i.name for j in tree.find_all(exp.Join) for i in (j.args.get("using") or [])}
    return frozenset(names)


def referenced_columns_of(query: str, relation: str) -> frozenset[str] | None:
    """Like referenced_columns, but only what `query` may read from the table `relation`: a
    column qualified by an alias bound to another table is not that relation's. Unqualified
    columns, USING columns and columns qualified by anything unknown count (conservative)."""
    import sqlglot
    from sqlglot import exp

    if referenced_columns(query) is None:
        return None
    tree = sqlglot.parse_one(query, read="duckdb")
    tables = list(tree.find_all(exp.Table))
    mine = {t.alias_or_name for t in tables if t.name == relation}
    others = {t.alias_or_name for t in tables if t.name != relation} - mine
    names = {c.name for c in tree.find_all(exp.Column) if not c.table or c.table not in others}
    names |= {i.name for j in tree.find_all(exp.Join) for i in (j.args.get("using") or [])}
    return frozenset(names)
