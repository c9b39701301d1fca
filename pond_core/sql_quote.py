"""The one place a value becomes SQL text: string literals, identifiers, typed literals, and
`$name` parameters bound into a pipeline's query.

Every path, name and value pond puts into a DuckDB statement goes through this module, so a
data root, a job id, a dataset path, a partition value or a pipeline parameter holding `'`,
`\\`, `;`, `--`, a newline or any other character is data, never SQL. DuckDB's standard
strings treat only `'` specially (a backslash is an ordinary character), so doubling `'` is a
complete escape; a NUL character cannot be held by a DuckDB string at all and is refused.

Views cannot hold prepared-statement parameters, and a plan is SQL text that crosses
processes as JSON, so pipeline parameters are bound when the plan is built: `$name` in the
query (outside strings, quoted identifiers and comments) becomes the value's literal.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pond_core.errors import PondConfigError


def quote_str(value: str) -> str:
    """A SQL string literal holding exactly `value`."""
    text = str(value)
    if "\x00" in text:
        raise PondConfigError(f"a NUL character cannot be used in SQL text: {text!r}")
    return "'" + text.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    """A SQL identifier (column, view, schema) naming exactly `name`."""
    text = str(name)
    if "\x00" in text:
        raise PondConfigError(f"a NUL character cannot be used in a SQL name: {text!r}")
    return '"' + text.replace('"', '""') + '"'


def sql_list(values: Iterable[str]) -> str:
    """A DuckDB list literal of strings: ['a', 'b']."""
    return "[" + ", ".join(quote_str(v) for v in values) + "]"


def quote_path(path: str) -> str:
    """A SQL string literal naming the file `path` for DuckDB's readers (read_parquet, read_csv,
    parquet_metadata, ...), which treat every path as a glob: `*`, `?` and `[` are bracketed
    (`[*]`, `[?]`, `[[]`), so a file named `ds[x]/a*.parquet` is read as named, never matched."""
    return quote_str(re.sub(r"[*?\[]", lambda m: f"[{m.group()}]", str(path)))


def path_list(paths: Iterable[str]) -> str:
    """A DuckDB list literal of files, each read as named (see quote_path): ['a', 'b']."""
    return "[" + ", ".join(quote_path(p) for p in paths) + "]"


def sql_literal(value: Any) -> str:
    """A typed SQL literal for a Python value: NULL, TRUE/FALSE, a number, a string, a DATE,
    TIMESTAMP or TIME, a DECIMAL, or a list of those."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"CAST({quote_str(repr(value))} AS DOUBLE)"
        return repr(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise PondConfigError(f"cannot bind the decimal {value} as SQL")
        return f"{value}::DECIMAL(38,{max(0, -value.as_tuple().exponent)})"  # type: ignore[operator]
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP{'TZ' if value.tzinfo else ''} {quote_str(value.isoformat(sep=' '))}"
    if isinstance(value, dt.date):
        return f"DATE {quote_str(value.isoformat())}"
    if isinstance(value, dt.time):
        return f"TIME {quote_str(value.isoformat())}"
    if isinstance(value, str):
        return quote_str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(sql_literal(v) for v in value) + "]"
    raise PondConfigError(f"cannot bind a {type(value).__name__} as a SQL value: {value!r}")


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def bind_params(query: str, params: Mapping[str, Any] | None, *, format_braces: bool = False) -> str:
    """`query` with each `$name` replaced by the literal of `params[name]`.

    `format_braces`: the query still has `{0}` input placeholders (partial_sql), so braces in a
    value are doubled to survive str.format.

    `$name` is recognised outside string literals, quoted identifiers, dollar-quoted strings
    and comments, so a parameter's value can never start a statement or end a string. A
    `$name` with no value, or a value never used, is an error naming it.
    """
    if not params:
        return query
    for name in params:
        if not _NAME.fullmatch(str(name)):
            raise PondConfigError(f"parameter name {name!r} must be letters, digits and '_' (used as $name in SQL)")
    out: list[str] = []
    used: set[str] = set()
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        end = _skip_quoted(query, i)
        if end > i:
            out.append(query[i:end])
            i = end
            continue
        if c == "$":
            match = _NAME.match(query, i + 1)
            if match and not (i > 0 and (query[i - 1].isalnum() or query[i - 1] == "_")):
                name = match.group(0)
                if name not in params:
                    raise PondConfigError(
                        f"SQL parameter ${name} has no value (given: {', '.join(sorted(params)) or 'none'}): {query}"
                    )
                literal = sql_literal(params[name])
                out.append(literal.replace("{", "{{").replace("}", "}}") if format_braces else literal)
                used.add(name)
                i = match.end()
                continue
        out.append(c)
        i += 1
    unused = sorted(set(params) - used)
    if unused:
        raise PondConfigError(f"parameter {', '.join(unused)} is not used as ${unused[0]} in the SQL: {query}")
    return "".join(out)


_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def _skip_quoted(query: str, i: int) -> int:
    """The end of the string, quoted name or comment starting at `i`, or `i` when none does."""
    c = query[i]
    if c in ("'", '"'):
        j = i + 1
        while j < len(query):
            if query[j] == c:
                if j + 1 < len(query) and query[j + 1] == c:
                    j += 2
                    continue
                return j + 1
            j += 1
        return len(query)
    if query.startswith("--", i):
        j = query.find("\n", i)
        return len(query) if j < 0 else j
    if query.startswith("/*", i):
        j = query.find("*/", i + 2)
        return len(query) if j < 0 else j + 2
    if c == "$":
        tag = _DOLLAR_TAG.match(query, i)
        if tag:
            close = query.find(tag.group(0), tag.end())
            return len(query) if close < 0 else close + len(tag.group(0))
    return i
